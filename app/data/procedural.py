"""The procedural dSprites dataset: every batch rendered on demand from random factors."""

from __future__ import annotations

import numpy as np

from app.data.base import Batch
from app.data.dsprites import FACTOR_NAMES, N_IMAGES, SHAPE_NAMES, render, sample_classes


class ProceduralDSprites:
    name = "dsprites"
    channels = 1
    image_size = 64
    binary = True
    label_names: tuple[str, ...] = SHAPE_NAMES  # a CVAE on dSprites is conditioned on the shape
    factor_names: tuple[str, ...] = FACTOR_NAMES

    def __len__(self) -> int:
        return N_IMAGES

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        classes = sample_classes(rng, n)
        return Batch(images=render(classes)[:, None], labels=classes[:, 0], factors=classes)
