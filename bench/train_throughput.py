"""Training throughput on this machine: our loop (`app.training.train`, as the CLI runs it)
against a plain PyTorch loop of the same network, in the same run.

The plain loop is what a first implementation looks like: batch 64, NCHW tensors, each batch
rendered inline before its step. Ours renders ahead on a thread, uses channels_last and can take
bigger batches (the learning rate scales by √(batch/64)). Figures are images per second over the
whole call, start-up and the final save included (which only counts against us).

    python bench/train_throughput.py [--steps 300] [--device cpu|cuda] [--compile]
                                     [--render-workers N] [--fashion]

`--fashion` also times our loop on Fashion-MNIST (binarised batches, β=1) with the mlp network at
its own 28×28 and the conv network on the images padded to 32×32, beside the 64×64 dSprites
figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from app.data import open_dataset
from app.models import VAE, ModelConfig
from app.models.elbo import reconstruction_nll
from app.models.objectives import BetaELBO
from app.training import TrainArgs, train


def plain_loop(steps: int, device: str, batch: int = 64) -> float:
    ds = open_dataset("dsprites")
    torch.manual_seed(0)
    model = VAE(ModelConfig(beta=4.0)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    objective = BetaELBO(4.0)
    rng = np.random.default_rng(0)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for step in range(steps):
        b = ds.sample(rng, batch)
        x = torch.from_numpy(b.images).float().to(device)
        eps = torch.randn(batch, 10, device=device)
        decoded, mu, logvar, z = model(x, None, eps)
        terms = objective(reconstruction_nll(decoded, x, "bernoulli"), mu, logvar, z, step)
        opt.zero_grad()
        terms.loss.backward()
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def our_loop(
    steps: int, device: str, batch: int, compile: bool, workers: int = 1,
    dataset: str = "dsprites", architecture: str = "conv",
) -> float:  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainArgs(
            out=Path(tmp) / "ck",
            run_dir=Path(tmp) / "run",
            dataset=dataset,
            architecture=architecture,
            kind="vae",
            beta=4.0 if dataset == "dsprites" else 1.0,
            steps=steps,
            batch_size=batch,
            device=device,
            save_every=10**9,
            eval_images=64,
            compile=compile,
            render_workers=workers,
            command="bench",
        )
        t0 = time.perf_counter()
        train(args)
        return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batches", default="64,128,256")
    p.add_argument("--compile", action="store_true", help="also time torch.compile")
    p.add_argument("--render-workers", type=int, default=1, help="our loop's render threads")
    p.add_argument("--fashion", action="store_true", help="also Fashion-MNIST at 28 and 32")
    a = p.parse_args()
    print(
        f"device {a.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{a.render_workers} render thread(s)"
    )
    base = plain_loop(a.steps, a.device)
    print(f"plain loop, batch 64:              {base:8,.0f} images/s")
    for batch in (int(b) for b in a.batches.split(",")):
        steps = max(20, a.steps * 64 // batch)
        for compile in (False, True) if a.compile else (False,):
            rate = our_loop(steps, a.device, batch, compile, a.render_workers)
            label = f"ours, batch {batch}{' + compile' if compile else ''}:"
            print(f"{label:35s}{rate:8,.0f} images/s  ({rate / base:.2f}× plain)")
    if a.fashion:
        for arch, side in (("mlp", 28), ("conv", 32)):
            steps = max(20, a.steps * 64 // 128)
            rate = our_loop(steps, a.device, 128, False, a.render_workers, "fashion-mnist", arch)
            label = f"ours, Fashion-MNIST {side}×{side} {arch}, batch 128:"
            print(f"{label:50s}{rate:8,.0f} images/s")


if __name__ == "__main__":
    main()
