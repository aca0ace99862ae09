"""Latent map speed through the API, as the server answers it (one intra-op thread per worker
process; the map's own encoding runs on app.studies.latent_map.ENCODE_THREADS threads): the
first request for a PCA map of n points in a fresh process (cold: nothing drawn, encoded or
projected yet) and the same request again (cached), per model. With --tsne, also how long a
t-SNE of that many points takes in the background, from the first 202 to the 200.

    python bench/map_speed.py [--n 10000] [--repeat 3] [--tsne] [NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT = (
    "dsprites-beta-vae",  # drawn by the renderer, 64×64 conv encoder
    "shapes-beta-vae",  # colour scenes, drawn, 64×64 conv encoder
    "fashion-vae",  # Fashion-MNIST's test split, 28×28 MLP
    "disvae-btcvae-celeba",  # no data here: its own prior samples decoded, then encoded
)


def one_process(name: str, n: int, tsne: bool) -> dict[str, float]:
    """Runs in a fresh process: the cold request, the cached one, and a t-SNE if asked."""
    from fastapi.testclient import TestClient  # noqa: PLC0415

    from app.main import create_app  # noqa: PLC0415
    from app.settings import Settings  # noqa: PLC0415
    from app.web import latent_map  # noqa: PLC0415

    out: dict[str, float] = {}
    with TestClient(create_app(Settings()), base_url="http://localhost") as client:
        url = f"/api/models/{name}/map?n={n}"
        t = time.perf_counter()
        r = client.get(url)
        out["cold_s"] = time.perf_counter() - t
        assert r.status_code == 200, r.text
        out["kb"] = len(r.content) / 1000
        t = time.perf_counter()
        client.get(url)
        out["cached_ms"] = (time.perf_counter() - t) * 1000
        if tsne:
            t = time.perf_counter()
            assert client.get(f"{url}&method=tsne").status_code == 202
            latent_map.layout_jobs(None).join()
            r = client.get(f"{url}&method=tsne")
            out["tsne_s"] = time.perf_counter() - t
            out["tsne_reported_s"] = r.json()["settings"]["seconds"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=list(DEFAULT))
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per model")
    parser.add_argument("--tsne", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_process(args.child, args.n, args.tsne)))
        return
    print(f"PCA map of {args.n:,} points, {os.cpu_count()} cores; cold = first request in a "
          f"fresh process (median of {args.repeat})")  # fmt: skip
    for name in args.names:
        runs = []
        for k in range(args.repeat):
            command = [sys.executable, __file__, "--child", name, "--n", str(args.n)]
            if args.tsne and k == 0:
                command.append("--tsne")
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        cold = statistics.median(r["cold_s"] for r in runs)
        cached = statistics.median(r["cached_ms"] for r in runs)
        each = ", ".join(f"{r['cold_s']:.2f}" for r in runs)
        line = (
            f"{name:24s} cold {cold:5.2f} s (runs {each})"
            f"  cached {cached:5.1f} ms  {runs[0]['kb']:,.0f} kB"
        )
        if "tsne_s" in runs[0]:
            line += f"  t-SNE {runs[0]['tsne_s']:.0f} s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
