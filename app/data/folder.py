"""A user's own pictures: a folder of PNG/JPEG files of any size, grey or colour.

Images are resized (centre crop to square, then area-resampled) to `image_size` and held in
memory as uint8. Labels come from first-level sub-folders when there are any (`cats/`, `dogs/`),
so a CVAE can be conditioned on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from app.data.base import Batch, DatasetError
from app.imaging import to_model_input

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def load_square(path: Path, size: int, channels: int) -> np.ndarray:
    """One file → (C, size, size) uint8: EXIF-rotated, centre-cropped square, resized."""
    with Image.open(path) as opened:
        return to_model_input(ImageOps.exif_transpose(opened), size, channels)


class ImageFolder:
    binary = False
    factor_names: tuple[str, ...] = ()

    def __init__(self, root: str | Path, image_size: int = 64, channels: int | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: not a folder of images")
        files = sorted(
            p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise DatasetError(f"{self.root}: holds no .png, .jpg or .jpeg files")
        subdirs = sorted(
            {p.relative_to(self.root).parts[0] for p in files if p.parent != self.root}
        )
        loose = [p for p in files if p.parent == self.root]
        if subdirs and loose:
            raise DatasetError(
                f"{self.root}: mixes images at the top level with labelled sub-folders"
                f" ({', '.join(subdirs)}); put every image in a sub-folder, or none"
            )
        self.label_names = tuple(subdirs) if subdirs else ()
        if channels is None:
            channels = 1 if all(_is_grey(p) for p in files) else 3
        self.name = f"folder:{self.root.name}"
        self.channels = channels
        self.image_size = image_size
        images, labels = [], []
        for p in files:
            try:
                images.append(load_square(p, image_size, channels))
            except (OSError, ValueError) as e:
                raise DatasetError(f"{p}: cannot read it as an image ({e})") from e
            labels.append(subdirs.index(p.relative_to(self.root).parts[0]) if subdirs else 0)
        self.images = np.stack(images)
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        idx = rng.integers(0, len(self.images), size=n)
        return Batch(images=self.images[idx], labels=self.labels[idx])


def _is_grey(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            return im.mode in ("1", "L", "LA", "I", "I;16", "F")
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read it as an image ({e})") from e
