"""Time the importance-weighted bound (app/metrics/likelihood.py) on a model of the served ones,
and project it to a test set: how long k samples per image take over N images on this machine.

    python bench/iwae_speed.py [--model disvae-btcvae-mnist] [--k 1000] [--images 20]
        [--threads 2] [--test-size 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.checkpoints import load_checkpoint  # noqa: E402
from app.metrics.likelihood import importance_weighted_bound  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="disvae-btcvae-mnist")
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--test-size", type=int, default=10_000)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    served = load_checkpoint(Path("checkpoints") / a.model).served()
    d = served.description
    x = torch.rand(a.images, *d.shape, generator=torch.Generator().manual_seed(0))
    importance_weighted_bound(served.model, x[:1], 10, torch.Generator().manual_seed(0))  # warm
    t = time.perf_counter()
    importance_weighted_bound(served.model, x, a.k, torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - t
    rate = a.images * a.k / seconds
    print(
        f"{a.model} ({'×'.join(map(str, d.shape))}), k = {a.k:,}, {a.threads} thread(s): "
        f"{seconds / a.images * 1000:.0f} ms per image, {rate:,.0f} decodes/s; "
        f"{a.test_size:,} images would take {a.test_size * seconds / a.images / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
