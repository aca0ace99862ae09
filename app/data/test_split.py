"""The held-out images of a real dataset, for a model that learned from one: what the pages pick
from (encode, interpolate, compress, denoise) and what `evaluate` judges a model on. Only
Fashion-MNIST has one so far: its 10,000 test images, grey as published (the pages) or binarised
once with a fixed seed (the likelihood scores), at the model's own size (28, or padded to 32).

Opened on first use and kept (7.8 MB at 28×28); a model whose dataset is not installed still
serves, and what needs its images says how to install them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.data.base import DatasetError
from app.data.fashion_mnist import LABEL_NAMES, TEST_BINARISATION_SEED, FashionMNIST, binarise


@dataclass(frozen=True)
class TestSplit:
    """A dataset's test split at one image size: grey `images` (N, C, S, S) uint8, `labels`
    (N,) class indices named by `label_names`."""

    name: str  # what people call it ("Fashion-MNIST")
    images: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]

    __test__ = False  # not a pytest class, whatever its name

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> np.ndarray:
        """Image `index` as float32 (C, S, S) in [0, 1]."""
        return self.images[index].astype(np.float32) / 255.0

    def first_of_class(self, label: int) -> int:
        """The lowest index of a test image of class `label`."""
        return int(np.flatnonzero(self.labels == label)[0])

    @functools.cached_property
    def binarised(self) -> np.ndarray:
        """The whole split binarised once (fashion_mnist.TEST_BINARISATION_SEED): the bits the
        likelihood scores are computed on, the same on every machine."""
        return binarise(self.images, np.random.default_rng(TEST_BINARISATION_SEED))


DATASETS = {"fashion-mnist": "Fashion-MNIST"}


def has_test_split(dataset: str) -> bool:
    return dataset in DATASETS


def test_split(dataset: str, image_size: int, root: Path) -> TestSplit | None:
    """The test split of `dataset` at `image_size`, read from `root`; None for a dataset with
    none (dSprites is drawn from its factors; CelebA is not here). A DatasetError, saying how
    to install the data, when it has one that cannot be read."""
    if not has_test_split(dataset):
        return None
    return _open(str(root), image_size)


@functools.lru_cache(maxsize=4)
def _open(root: str, image_size: int) -> TestSplit:
    if image_size not in (28, 32):
        raise DatasetError(f"Fashion-MNIST's images are 28×28 (or padded to 32), not {image_size}")
    split = FashionMNIST(root, split="test", image_size=image_size)
    return TestSplit("Fashion-MNIST", split.images, split.labels, LABEL_NAMES)
