"""The official dSprites file, `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`, when a user has it.

The file holds `imgs` (N, 64, 64) uint8, `latents_classes` and `latents_values` (N, 6) with a
constant colour factor first, and a pickled `metadata` dict. Only the arrays are read, with
`allow_pickle=False`: nothing is ever unpickled.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from app.data.base import Batch, DatasetError
from app.data.dsprites import FACTOR_NAMES, FACTOR_SIZES, SHAPE_NAMES


class NpzDSprites:
    channels = 1
    image_size = 64
    binary = True
    label_names: tuple[str, ...] = SHAPE_NAMES
    factor_names: tuple[str, ...] = FACTOR_NAMES

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"dsprites-npz:{self.path.name}"
        try:
            with np.load(self.path, allow_pickle=False) as f:
                lacking = [k for k in ("imgs", "latents_classes") if k not in f.files]
                if lacking:
                    raise DatasetError(
                        f"{self.path}: not a dSprites file, it lacks the array {lacking[0]!r}"
                        " (expected 'imgs' and 'latents_classes')"
                    )
                imgs = f["imgs"]
                classes = f["latents_classes"]
        except FileNotFoundError as e:
            raise DatasetError(f"{self.path}: no such file") from e
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise DatasetError(f"{self.path}: cannot read it as .npz ({e})") from e
        if imgs.ndim != 3 or imgs.shape[1:] != (64, 64):
            raise DatasetError(f"{self.path}: 'imgs' has shape {imgs.shape}, expected (N, 64, 64)")
        if classes.shape != (len(imgs), 6):
            raise DatasetError(
                f"{self.path}: 'latents_classes' has shape {classes.shape},"
                f" expected ({len(imgs)}, 6)"
            )
        classes = classes[:, 1:].astype(np.int64)  # drop the constant colour factor
        if (classes < 0).any() or (classes >= FACTOR_SIZES).any():
            raise DatasetError(f"{self.path}: 'latents_classes' holds values out of range")
        self.images = (imgs > 0).astype(np.uint8)
        self.classes = classes

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        idx = rng.integers(0, len(self.images), size=n)
        classes = self.classes[idx]
        return Batch(images=self.images[idx][:, None], labels=classes[:, 0], factors=classes)
