"""The map of all 737,280 dSprites images under dsprites-beta-vae, from a cold start: a fresh
server on an empty cache folder asked for GET /api/models/dsprites-beta-vae/map.bin?data=dsprites
&n=737280 answers 202 with the encoding's progress while it encodes every image in the
background, then the map. Prints the progress it was told, the time to the map, its bytes on
the wire and the server's memory.

    .venv/bin/python bench/map_cold_encoding.py [--model NAME] [--data SET] [--n N]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
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
                time.sleep(5)
            took = time.perf_counter() - started
            print(
                f"map of {args.n:,} points after {took:.0f} s ({took / 60:.1f} min), cold; "
                f"{len(body) / 1e6:.2f} MB on the wire; server RSS {rss_mib(server.pid):.0f} "
                f"MiB ({idle:.0f} MiB before the map)"
            )
        finally:
            server.terminate()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
