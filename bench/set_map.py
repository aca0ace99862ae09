"""How fast a data set's map is served once its encoding is kept: 10,000 colour scenes rendered
to a folder of 64×64 PNGs with their factor columns (examples/render_colour_scenes.py), encoded
once by checkpoints/shapes-beta-vae, then the PCA map of all 10,000 asked for by a server that
has just started (nothing of the map in memory: the Parquet file is read, the set's columns
taken, PCA run and the JSON written), and asked again (the JSON from memory).

    PYTHONPATH=. .venv/bin/python bench/set_map.py [--n 10000] [--repeats 3]

Each repeat is a new process, so nothing of the map or the encoding is in memory.

Prints the figures; asserts nothing."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from app.checkpoints import load_checkpoint
from app.data.sets import open_set
from app.encodings.run import encode_set
from app.main import create_app
from app.settings import Settings
from examples.render_colour_scenes import main as render

ROOT = Path(__file__).resolve().parent.parent
MODEL = "shapes-beta-vae"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # one cold run, in a child
    ns = parser.parse_args()
    if ns.serve is not None:
        serve_once(ns.serve, ns.n)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "datasets" / "scenes"
        t = time.perf_counter()
        render(["--out", str(folder), "--n", str(ns.n), "--seed", "0"])
        print(f"rendered {ns.n:,} scenes to PNGs in {time.perf_counter() - t:.1f} s")
        served = load_checkpoint(ROOT / "checkpoints" / MODEL).served()
        t = time.perf_counter()
        encode_set(served, open_set(folder), root / "cache")
        print(f"encoded them with {MODEL} in {time.perf_counter() - t:.1f} s")
        (root / "checkpoints").mkdir()
        (root / "checkpoints" / MODEL).symlink_to(ROOT / "checkpoints" / MODEL)
        for r in range(ns.repeats):
            out = subprocess.run(
                [sys.executable, __file__, "--serve", str(root), "--n", str(ns.n)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            print(f"run {r + 1}: {out.stdout.strip()}")


def serve_once(root: Path, n: int) -> None:
    """In a fresh process: start the server, ask for the map cold, then again."""
    settings = Settings(checkpoints_dir=root / "checkpoints", datasets_dir=root / "datasets",
                        cache_dir=root / "cache", max_map_points=max(20_000, n))  # fmt: skip
    url = f"/api/models/{MODEL}/map?data=scenes&n={n}"
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        t = time.perf_counter()
        cold = client.get(url)
        cold_s = time.perf_counter() - t
        assert cold.status_code == 200, cold.text[:200]
        t = time.perf_counter()
        client.get(url)
        warm_s = time.perf_counter() - t
    print(f"cold map of {n:,} points {cold_s * 1000:.0f} ms ({len(cold.content) / 1e6:.1f} MB "
          f"of JSON), again {warm_s * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
