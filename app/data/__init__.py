"""Datasets with ground-truth factors where they are known. `open_dataset` picks one by name."""

from __future__ import annotations

from pathlib import Path

from app.data.base import Batch, Dataset, DatasetError
from app.data.fashion_mnist import DEFAULT_ROOT as FASHION_MNIST_ROOT
from app.data.fashion_mnist import FashionMNIST
from app.data.folder import ImageFolder
from app.data.npz import NpzDSprites
from app.data.procedural import ProceduralDSprites
from app.data.shapes3d import ProceduralShapes3D

__all__ = ["Batch", "Dataset", "DatasetError", "open_dataset"]


def open_dataset(spec: str, image_size: int = 64, architecture: str = "conv") -> Dataset:
    """`dsprites` or `shapes3d` (both procedural), `fashion-mnist` (Debian's package) or
    `fashion-mnist:PATH` (its train split: a test split is never trained on; 28×28 for the mlp
    network, padded to 32×32 for the conv one), a path to the official dSprites `.npz`, or a
    folder of images (at `image_size`)."""
    if spec == "fashion-mnist" or spec.startswith("fashion-mnist:"):
        root = spec.split(":", 1)[1] if ":" in spec else FASHION_MNIST_ROOT
        return FashionMNIST(root, image_size=28 if architecture == "mlp" else 32)
    if spec == "dsprites":
        return ProceduralDSprites()
    if spec == "shapes3d":
        return ProceduralShapes3D()
    path = Path(spec)
    if path.suffix == ".npz":
        return NpzDSprites(path)
    if path.is_dir():
        return ImageFolder(path, image_size=image_size)
    raise DatasetError(
        f"unknown dataset {spec!r}: use 'dsprites', 'shapes3d', 'fashion-mnist[:PATH]', a path "
        "to a dSprites .npz, or a folder of images"
    )
