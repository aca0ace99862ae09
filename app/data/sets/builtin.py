"""The data sets this project draws or knows, served as every other set is.

    dsprites        all 737,280 dSprites images, drawn from their five factors on demand
    shapes3d        all 480,000 colour scenes, drawn from their six factors on demand
    fashion-mnist   Fashion-MNIST's 70,000 images (60,000 train, 10,000 test) from Debian's package

The drawn sets' columns are their generating factors at their true values (scale 0.5…1,
orientation in radians, position 0…1; shape as a category); Fashion-MNIST's class is an
attribute (a class is not a generating factor). Nothing is read or drawn until it is asked for.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from app.data import dsprites, shapes3d
from app.data.base import DatasetError
from app.data.fashion_mnist import DEFAULT_ROOT as FASHION_ROOT
from app.data.fashion_mnist import LABEL_NAMES, PADDED, FashionMNIST
from app.data.ground_truth import DSPRITES, SHAPES3D, GroundTruth
from app.data.sets.fit import fit_array
from app.data.sets.record import SPLITS, Column, Fitting, ImageSet, columns_digest, digest_of

BUILT_IN = ("dsprites", "shapes3d", "fashion-mnist")


class DrawnSet(ImageSet):
    """Every factor combination of a ground truth, image i being combination i (row-major, the
    first factor slowest)."""

    location = "built-in"

    def __init__(
        self, name: str, truth: GroundTruth, values: tuple[np.ndarray, ...], renderer: Path
    ) -> None:
        self.name = name
        self.truth = truth
        self.source = f"built-in ({truth.name}, drawn from its factors)"
        self._values = values
        self._renderer = renderer

    def __len__(self) -> int:
        return self.truth.n_images

    @property
    def binary(self) -> bool:
        return self.truth.channels == 1  # dSprites: pixels are 0 or 1

    @functools.cached_property
    def columns(self) -> tuple[Column, ...]:
        classes = self.truth.index_to_classes(np.arange(len(self)))  # (n, K)
        out = []
        for k, name in enumerate(self.truth.factor_names):
            if k == self.truth.label_factor:
                out.append(
                    Column(name, "categorical", "factor", classes[:, k].astype(np.int64),
                           self.truth.label_names)
                )  # fmt: skip
            else:
                out.append(Column(name, "ordered", "factor", self._values[k][classes[:, k]]))
        return tuple(out)

    def classes(self, indices: np.ndarray) -> np.ndarray:
        """(B, K) factor classes of images `indices`."""
        return self.truth.index_to_classes(np.asarray(indices, dtype=np.int64))

    def content_digest(self) -> str:
        # the images are what the renderer draws: its source is their content
        return digest_of(["drawn-v1", self.name, self._renderer.read_bytes()])

    def native(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name} index must be in 0..{len(self) - 1}, got {index}")
        return _to_uint8(self.truth.render(self.classes(np.array([index])))[0])

    def fitted(self, indices: np.ndarray, fitting: Fitting) -> tuple[np.ndarray, np.ndarray]:
        x = self.truth.render(self.classes(indices))  # (B, C, 64, 64) float32 in [0, 1]
        if fitting.channels != x.shape[1] or fitting.size != x.shape[2]:
            x = np.stack([fit_array(_to_uint8(i), fitting) for i in x]).astype(np.float32) / 255
        return x, np.ones(len(x), dtype=bool)


class FashionSet(ImageSet):
    """Fashion-MNIST, train then test: image i < 60,000 is train image i, the rest test image
    i − 60,000 (the order of the published files). Grey as published; padded to 32 for the conv
    network, as it is trained."""

    name = "fashion-mnist"
    source = "built-in (Fashion-MNIST, Debian's dataset-fashion-mnist)"

    def __init__(self, root: Path = FASHION_ROOT) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    @functools.cached_property
    def _splits(self) -> tuple[FashionMNIST, FashionMNIST]:
        return (
            FashionMNIST(self.root, split="train", image_size=28),
            FashionMNIST(self.root, split="test", image_size=28),
        )

    @functools.cached_property
    def _images(self) -> np.ndarray:
        return np.concatenate([s.images for s in self._splits])  # (70000, 1, 28, 28) uint8

    def __len__(self) -> int:
        return len(self._images)

    @property
    def pad_sizes(self) -> tuple[int, ...]:
        return (PADDED,)

    @functools.cached_property
    def columns(self) -> tuple[Column, ...]:
        labels = np.concatenate([s.labels for s in self._splits]).astype(np.int64)
        return (Column("label", "categorical", "attribute", labels, LABEL_NAMES),)

    @functools.cached_property
    def split(self) -> np.ndarray:
        train, test = self._splits
        return np.concatenate([
            np.full(len(train.labels), SPLITS.index("train"), dtype=np.int8),
            np.full(len(test.labels), SPLITS.index("test"), dtype=np.int8),
        ])  # fmt: skip

    def content_digest(self) -> str:
        files = sorted(p for p in self.root.iterdir() if "ubyte" in p.name)
        stats = [f"{p.name}|{p.stat().st_size}|{p.stat().st_mtime_ns}" for p in files]
        return digest_of(["fashion-v1", *stats, *columns_digest(self.columns)])

    def native(self, index: int) -> np.ndarray:
        return self._images[index]

    def fitted(self, indices: np.ndarray, fitting: Fitting) -> tuple[np.ndarray, np.ndarray]:
        chosen = self._images[np.asarray(indices, dtype=np.int64)]
        if fitting.channels != 1 or fitting.size != 28:
            chosen = np.stack([fit_array(i, fitting) for i in chosen])
        return chosen.astype(np.float32) / np.float32(255), np.ones(len(chosen), dtype=bool)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def built_in(name: str, fashion_root: Path = FASHION_ROOT) -> ImageSet:
    if name == "dsprites":
        return DrawnSet(name, DSPRITES, dsprites.FACTOR_VALUES, Path(dsprites.__file__))
    if name == "shapes3d":
        return DrawnSet(name, SHAPES3D, shapes3d.FACTOR_VALUES, Path(shapes3d.__file__))
    if name == "fashion-mnist":
        return FashionSet(fashion_root)
    raise DatasetError(f"no built-in data set {name!r} (there are: {', '.join(BUILT_IN)})")
