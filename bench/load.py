"""Load: 32 concurrent clients against decode and encode for a fixed number of requests, with 1
and 2 workers. Prints errors (must be 0), latency percentiles and requests/s as the clients saw
them, and the server's resident memory (all its processes) before and after each run, so any
growth shows.

    python bench/load.py [--requests 4000] [--clients 32] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.data.dsprites import render, sample_classes  # noqa: E402
from bench.api_latency import PY, free_port, server  # noqa: E402

MODEL = "dsprites-beta-vae"


def rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, MiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            rss = next(ln for ln in status.splitlines() if ln.startswith("VmRSS"))
            total += int(rss.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total / 1024


def pngs(n: int) -> list[bytes]:
    images = render(sample_classes(np.random.default_rng(0), n))
    out = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray((im * 255).astype(np.uint8)).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


async def drive(base: str, kind: str, requests: int, clients: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    zs = [",".join(f"{v:.2f}" for v in row) for row in rng.normal(size=(requests, 10))]
    uploads = pngs(64)
    latencies: list[float] = []
    errors = 0
    queue = iter(range(requests))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        for i in queue:
            t0 = time.perf_counter()
            if kind == "decode":
                r = await http.get(f"/api/models/{MODEL}/decode.png", params={"z": zs[i]})
            else:
                files = {"file": ("s.png", uploads[i % len(uploads)], "image/png")}
                r = await http.post(f"/api/models/{MODEL}/encode", files=files)
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += r.status_code != 200

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100)
    return {"p50": q[49], "p95": q[94], "p99": q[98], "rps": requests / wall, "errors": errors}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=4000)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    a = p.parse_args()
    print(f"{a.clients} clients, {a.requests} requests per row, model {MODEL}")
    print(f"{'workers':>7s} {'route':>7s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} "
          f"{'req/s':>7s} {'errors':>6s} {'RSS before → after (MiB)':>26s}")  # fmt: skip
    for workers in a.workers:
        port = free_port()
        cmd = [PY, "-m", "app", "serve", "--workers", str(workers), "--port", str(port)]
        with server(cmd, port, 1) as proc:
            base = f"http://127.0.0.1:{port}"
            asyncio.run(drive(base, "decode", 200, 8))  # warm-up
            for kind in ("decode", "encode"):
                before = rss_mib(proc.pid)
                r = asyncio.run(drive(base, kind, a.requests, a.clients))
                after = rss_mib(proc.pid)
                print(f"{workers:7d} {kind:>7s} {r['p50']:8.1f} {r['p95']:8.1f} {r['p99']:8.1f} "
                      f"{r['rps']:7.0f} {r['errors']:6d} {before:12.0f} → {after:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
