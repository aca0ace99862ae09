"""The map of all 737,280 dSprites images under dsprites-beta-vae, from a cold start: a fresh
server on an empty cache folder asked for GET /api/models/dsprites-beta-vae/map.bin?data=dsprites
&n=737280 answers 202 with the encoding's progress while it encodes every image in the
background, then the map. Prints the progress it was told, the time to the map, its bytes on
the wire and the server's memory, and how fast the server answered a slider meanwhile: between
polls it decodes a different z ten times (GET decode.png, as a drag does), and the same while
idle after the map.

    .venv/bin/python bench/map_cold_encoding.py [--model NAME] [--data SET] [--n N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def slider_ms(base: str, model: str, latents: int, rng: random.Random, times: list[float]) -> None:
    """Ten decode.png requests of new z's, as a drag sends them; each one's milliseconds."""
    for _ in range(10):
        z = ",".join(f"{rng.uniform(-2, 2):.3f}" for _ in range(latents))
        t = time.perf_counter()
        with urllib.request.urlopen(f"{base}/api/models/{model}/decode.png?z={z}", timeout=60):
            pass
        times.append((time.perf_counter() - t) * 1000)


def percentiles(times: list[float]) -> str:
    ordered = sorted(times)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {ordered[-1]:.1f} ms ({len(ordered)} decodes)"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="dsprites-beta-vae")
    ap.add_argument("--data", default="dsprites")
    ap.add_argument("--n", type=int, default=737_280)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        env = dict(os.environ, LATENT_EXPLORER_CACHE_DIR=cache)
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/latent-explorer"), "serve", "--port", str(port)],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen(f"{base}/api/models", timeout=5)
                    break
                except OSError:
                    time.sleep(0.5)
            idle = rss_mib(server.pid)
            with urllib.request.urlopen(f"{base}/api/models/{args.model}", timeout=30) as r:
                latents = int(json.loads(r.read())["latent_dim"])
            rng, busy, quiet = random.Random(0), [], []
            url = f"{base}/api/models/{args.model}/map.bin?data={args.data}&n={args.n}"
            started = time.perf_counter()
            last = ""
            while True:
                req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
                with urllib.request.urlopen(req, timeout=600) as r:
                    body = r.read()
                    if r.status == 200:
                        break
                    detail = json.loads(body)["detail"]
                if detail != last:
                    print(f"{time.perf_counter() - started:6.1f} s  202: {detail}", flush=True)
                    last = detail
                slider_ms(base, args.model, latents, rng, busy)
                time.sleep(5)
            took = time.perf_counter() - started
            print(
                f"map of {args.n:,} points after {took:.0f} s ({took / 60:.1f} min), cold; "
                f"{len(body) / 1e6:.2f} MB on the wire; server RSS {rss_mib(server.pid):.0f} "
                f"MiB ({idle:.0f} MiB before the map)"
            )
            for _ in range(len(busy) // 10):
                slider_ms(base, args.model, latents, rng, quiet)
            print(f"a slider's decode.png while it encoded: {percentiles(busy)}")
            print(f"                      after, idle:     {percentiles(quiet)}")
        finally:
            server.terminate()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
