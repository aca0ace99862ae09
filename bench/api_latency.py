"""Decode API latency and throughput against the floor of this stack, in one run.

Starts our server (`latent-explorer serve`) and a bare one-route FastAPI app serving the same
decoder (bench/bare_app.py), both under uvicorn with the same worker count, then drives each
with wrk (a fresh random z per request, so no cache helps): sequentially (1 connection) and at
8 and 32 concurrent connections. Prints p50/p95/p99 in ms and images/s, and our/bare ratios.

    python bench/api_latency.py [--seconds 10] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


@contextmanager
def server(args: list[str], port: int, threads: int):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_ready(port)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wrk(port: int, path: str, connections: int, seconds: int) -> dict[str, float]:
    env = {**os.environ, "DECODE_PATH": path}
    threads = min(connections, 2)
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "bench" / "decode.lua"),
            f"http://127.0.0.1:{port}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"RESULT (.*)", out)
    if not m:
        raise RuntimeError(out)
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--model", default="dsprites-beta-vae")
    a = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (make bench does)")
    threads = 1 if a.workers > 1 else 2
    results = {}
    for label, cmd, path in (
        (
            "ours",
            [PY, "-m", "app", "serve", "--workers", str(a.workers), "--port", "{port}"],
            f"/api/models/{a.model}/decode.png",
        ),
        (
            "bare",
            [PY, "bench/bare_app.py", "{port}", str(a.workers)],
            "/decode.png",
        ),
    ):
        port = free_port()
        with server([c.format(port=port) for c in cmd], port, threads):
            wrk(port, path, 4, 2)  # warm-up
            results[label] = {c: wrk(port, path, c, a.seconds) for c in (1, 8, 32)}
    print(f"decode API, {a.workers} worker(s), {os.cpu_count()} cores, {a.seconds}s per figure")
    head = ("clients", "p50 ms", "p95 ms", "p99 ms", "images/s", "errors")
    print(f"{'':6s}" + "".join(f"{h:>10s}" for h in head))
    for label, rows in results.items():
        for c, r in rows.items():
            print(
                f"{label:6s}{c:8d}{r['p50']:9.2f}{r['p95']:9.2f}{r['p99']:9.2f}{r['rps']:10.0f}"
                f"{int(r['errors']):8d}"
            )
    for c in (1, 8, 32):
        o, b = results["ours"][c], results["bare"][c]
        print(
            f"ours/bare at {c:2d} clients: p50 {o['p50'] / b['p50']:.2f}×, "
            f"throughput {o['rps'] / b['rps']:.2f}×"
        )


if __name__ == "__main__":
    main()
