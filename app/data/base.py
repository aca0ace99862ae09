"""What every dataset gives the training loop: random batches of uint8 images, with labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Batch:
    images: np.ndarray  # (B, C, H, W) uint8; binary datasets hold {0, 1}, others 0..255
    labels: np.ndarray  # (B,) int64 class per image (zeros when the dataset has no labels)
    factors: np.ndarray | None = None  # (B, n_factors) ground-truth factor classes, if known


class Dataset(Protocol):
    """A source of batches. Sampling is a pure function of the generator, so a run that draws
    from `np.random.default_rng((seed, rank, step))` sees the same data when it is resumed."""

    name: str
    channels: int
    image_size: int
    binary: bool  # True: pixels in {0, 1} (Bernoulli likelihood); False: 0..255 (Gaussian)
    label_names: tuple[str, ...]
    factor_names: tuple[str, ...]

    def __len__(self) -> int: ...

    def sample(self, rng: np.random.Generator, n: int) -> Batch: ...


class DatasetError(ValueError):
    """A dataset that cannot be opened, with a message that says why."""
