"""The training data stream: each step's batch and noise drawn from (seed, rank, step), rendered
ahead on background threads and handed to the loop in step order.

Every step's randomness (its batch of factors and its ε for z = μ + σ·ε) comes from
`np.random.default_rng((seed, rank, step))`, so a resumed run sees exactly the data and noise the
uninterrupted run would have seen, on any device, and each DDP rank draws its own data; and any
number of render threads gives the same stream.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from app.corruption import training_corruption
from app.data import Dataset

if TYPE_CHECKING:
    from app.training import TrainArgs


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
    q: queue.Queue[StepData | BaseException | None] = queue.Queue(maxsize=depth)
    done = threading.Event()
    next_step = iter(range(start, stop))
    lock = threading.Lock()
    ready: dict[int, StepData] = {}
    turn = threading.Condition(lock)
    cursor = [start]  # the next step to hand to the queue

    def work() -> None:
        try:
            while not done.is_set():
                with lock:
                    step = next(next_step, None)
                if step is None:
                    return
                item = step_data(dataset, args.seed, rank, step, args.batch_size, args.latents,
                                 args.denoise)  # fmt: skip
                with turn:  # hand batches over in step order
                    ready[step] = item
                    while cursor[0] in ready and not done.is_set():
                        out = ready.pop(cursor[0])
                        while not done.is_set():
                            try:
                                q.put(out, timeout=0.1)
                                break
                            except queue.Full:
                                continue
                        cursor[0] += 1
                    if cursor[0] == stop:
                        q.put(None)
        except BaseException as e:  # surfaced in the training thread
            q.put(e)

    threads = [threading.Thread(target=work, name=f"render-ahead-{i}", daemon=True)
               for i in range(workers)]  # fmt: skip
    for t in threads:
        t.start()
    if start >= stop:
        return
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        done.set()
        for t in threads:
            t.join(timeout=5)
