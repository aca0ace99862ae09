"""Decoding time per model, as the server decodes (one intra-op thread, batch-invariant): one z
at a time, and 32 at once, for the models named (default: one of each size and origin). The
models take turns, block by block, so a machine that gets busier or quieter during the run
shifts every model's figures alike.

    python bench/decode_speed.py [--repeat 300] [--plugin examples.mlp_vae:build] [NAME ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.inference import decode_latents  # noqa: E402
from app.registry import load_registry  # noqa: E402
from app.settings import Settings  # noqa: E402

DEFAULT = (
    "dsprites-beta-vae",  # trained here, 64×64 grey
    "disvae-btcvae-dsprites",  # imported, the same network and size
    "shapes-beta-vae",  # trained here, 64×64 colour
    "disvae-btcvae-celeba",  # imported, 64×64 colour
    "disvae-btcvae-mnist",  # imported, 32×32 grey: one transposed convolution fewer
    "example-mlp-vae",  # a plugin: an MLP at 28×28
)


def per_image_ms(model, batch: int, repeat: int) -> list[float]:  # noqa: ANN001
    d = model.description.latent_dim
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(repeat):
        z = torch.randn(batch, d, generator=g)
        t = time.perf_counter()
        decode_latents(model, z)
        times.append((time.perf_counter() - t) * 1000 / batch)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("names", nargs="*")
    ap.add_argument("--repeat", type=int, default=300)
    ap.add_argument("--plugin", action="append", default=["examples.mlp_vae:build"])
    a = ap.parse_args()
    torch.set_num_threads(1)  # as each server worker runs
    registry = load_registry(Settings().checkpoints_dir, tuple(a.plugin))
    names = a.names or [n for n in DEFAULT if n in registry]
    one: dict[str, list[float]] = {n: [] for n in names}
    many: dict[str, list[float]] = {n: [] for n in names}
    for name in names:
        per_image_ms(registry[name], 1, 20)  # warm up
    for _ in range(10):  # ten turns each
        for name in names:
            one[name] += per_image_ms(registry[name], 1, max(a.repeat // 10, 1))
            many[name] += per_image_ms(registry[name], 32, max(a.repeat // 100, 1))
    print(f"{'model':24s} {'size':>9s}  {'1 z: p50':>9s} {'p95':>7s}  {'32 z: per image':>16s}")
    for name in names:
        d = registry[name].description
        ordered = sorted(one[name])
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        print(
            f"{name:24s} {d.channels}×{d.height}×{d.width:<3d}"
            f"  {statistics.median(one[name]):7.3f}ms"
            f" {p95:6.3f}ms  {statistics.median(many[name]):13.3f}ms"
        )


if __name__ == "__main__":
    main()
