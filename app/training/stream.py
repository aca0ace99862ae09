"""The training data stream: each step's batch and noise drawn from (seed, rank, step), rendered
ahead on background threads and handed to the loop in step order.

Every step's randomness (its batch of factors and its ε for z = μ + σ·ε) comes from
`np.random.default_rng((seed, rank, step))`, so a resumed run sees exactly the data and noise the
uninterrupted run would have seen, on any device, and each DDP rank draws its own data; and any
number of render threads gives the same stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

import numpy as np
import torch

from app.data import Dataset
from app.data.corruption import training_corruption

if TYPE_CHECKING:
    from app.training.args import TrainArgs


@dataclass
class StepData:
    step: int
    x: torch.Tensor  # (B, C, 64, 64) float in [0, 1]: the model's input
    labels: torch.Tensor  # (B,)
    eps: torch.Tensor  # (B, D) the step's noise for the reparameterisation
    target: torch.Tensor  # (B, C, 64, 64): what it should reconstruct (x, or x uncorrupted)


def step_data(
    dataset: Dataset, seed: int, rank: int, step: int, batch: int, latents: int,
    denoise: bool = False,
) -> StepData:  # fmt: skip
    rng = np.random.default_rng((seed, rank, step))
    b = dataset.sample(rng, batch)
    scale = 1.0 if dataset.binary else 1.0 / 255.0
    x = torch.from_numpy(b.images).float().mul_(scale)
    eps = torch.from_numpy(rng.standard_normal((batch, latents), dtype=np.float32))
    if not denoise:
        return StepData(step, x, torch.from_numpy(b.labels), eps, target=x)
    # drawn after ε, so a denoising run's data and ε are those of a plain run with its seed
    noisy = torch.from_numpy(training_corruption(x.numpy(), rng))
    return StepData(step, noisy, torch.from_numpy(b.labels), eps, target=x)


def prefetch(
    dataset: Dataset, args: TrainArgs, rank: int, start: int, stop: int
) -> Iterator[StepData]:
    """Render batches for steps start..stop−1 on `args.render_workers` background threads,
    `args.prefetch` ahead, yielded in step order."""
    workers = max(1, args.render_workers)
    depth = max(1, args.prefetch, workers)

    def render(step: int) -> StepData:
        return step_data(dataset, args.seed, rank, step, args.batch_size, args.latents,
                         args.denoise)  # fmt: skip

    steps = iter(range(start, stop))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="render-ahead")
    pending = deque(pool.submit(render, step) for step in islice(steps, depth))
    try:
        while pending:
            item = pending.popleft().result()  # a render's exception surfaces here
            if (step := next(steps, None)) is not None:
                pending.append(pool.submit(render, step))
            yield item
    finally:  # done, or the loop stopped early: drop what is queued, finish what is running
        pool.shutdown(wait=True, cancel_futures=True)
