"""Datasets drawn from known factors, looked up by a model's `config.dataset`.

What the metrics, the Figure 2 view and the explorer's dataset images need of a dataset is the
same: its factors, a way to draw factor classes, and a renderer from classes to the images a
model sees. One lookup answers "does this model have ground truth, and which?", so the answer is
the same everywhere (a model trained on the official dSprites `.npz` has dSprites' ground truth:
our renderer reproduces its images; an image folder has none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.data import dsprites, shapes3d


@dataclass(frozen=True)
class GroundTruth:
    name: str  # what people call the dataset ("dSprites")
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]  # classes per factor
    channels: int
    label_factor: int  # the factor a CVAE on this dataset is conditioned on
    label_names: tuple[str, ...]
    render_classes: Callable[[np.ndarray], np.ndarray]  # (B, K) classes → (B, C, H, W) in [0, 1]
    sample_classes: Callable[[np.random.Generator, int], np.ndarray]  # → (n, K) int64
    index_to_classes: Callable[[np.ndarray | int], np.ndarray]  # → (B, K)
    image_size: int = 64  # the side of every image the renderer draws

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return (self.channels, self.image_size, self.image_size)

    @property
    def n_images(self) -> int:
        return int(np.prod(self.factor_sizes))

    @property
    def middle_index(self) -> int:
        """The image with every factor at the middle of its range: a typical picture to open on
        (dSprites: an ellipse of middle size at the centre). Indices run over the factors in
        row-major order, the first factor slowest, in both datasets."""
        return int(np.ravel_multi_index([n // 2 for n in self.factor_sizes], self.factor_sizes))

    def describe(self, classes: np.ndarray) -> str:
        """One image's factor classes (K,) in words: "ellipse; scale 4 of 6; orientation 21 of
        40; ..." (the labelled factor by name, the rest by class)."""
        parts = []
        for k, (name, c, n) in enumerate(
            zip(self.factor_names, classes.tolist(), self.factor_sizes, strict=True)
        ):
            label = self.label_names[c] if k == self.label_factor else f"{c + 1} of {n}"
            parts.append(label if k == self.label_factor else f"{name.replace('_', ' ')} {label}")
        return "; ".join(parts)

    def render(self, classes: np.ndarray) -> np.ndarray:
        """(B, K) factor classes → (B, C, H, W) float32 images in [0, 1], as a model sees them."""
        return self.render_classes(classes)

    def image(self, index: int) -> np.ndarray:
        """Image number `index` (0 ≤ index < n_images) → (C, H, W) float32 in [0, 1]."""
        if not 0 <= index < self.n_images:
            raise IndexError(f"{self.name} index must be in 0..{self.n_images - 1}, got {index}")
        return self.render(self.index_to_classes(index))[0]


def _render_dsprites(classes: np.ndarray) -> np.ndarray:
    return dsprites.render(classes)[:, None].astype(np.float32)  # (B, 1, 64, 64)


DSPRITES = GroundTruth(
    name="dSprites",
    factor_names=dsprites.FACTOR_NAMES,
    factor_sizes=tuple(int(n) for n in dsprites.FACTOR_SIZES),
    channels=1,
    label_factor=0,  # shape
    label_names=dsprites.SHAPE_NAMES,
    render_classes=_render_dsprites,
    sample_classes=dsprites.sample_classes,
    index_to_classes=dsprites.index_to_classes,
)


def _render_shapes3d(classes: np.ndarray) -> np.ndarray:
    rgb = shapes3d.render(classes)  # (B, 64, 64, 3) uint8
    return rgb.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)  # (B, 3, 64, 64)


SHAPES3D = GroundTruth(
    name="colour shapes",
    factor_names=shapes3d.FACTOR_NAMES,
    factor_sizes=tuple(int(n) for n in shapes3d.FACTOR_SIZES),
    channels=3,
    label_factor=shapes3d.FACTOR_NAMES.index("shape"),
    label_names=shapes3d.SHAPE_NAMES,
    render_classes=_render_shapes3d,
    sample_classes=shapes3d.sample_classes,
    index_to_classes=shapes3d.index_to_classes,
)


def ground_truth(dataset: str, shape: tuple[int, int, int] | None = None) -> GroundTruth | None:
    """The ground truth of a model's training data (`config.dataset`), or None for data without
    known factors (an image folder, CelebA). With the model's image `shape` (C, H, W): None too
    where the renderer's images are not that shape, since the model could not take them."""
    truth = None
    if dataset == "dsprites" or dataset.startswith("dsprites-npz:"):
        truth = DSPRITES
    elif dataset == "shapes3d":
        truth = SHAPES3D
    if truth is not None and shape is not None and tuple(shape) != truth.shape:
        return None
    return truth
