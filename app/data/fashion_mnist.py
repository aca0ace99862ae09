"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017; Zalando Research, MIT licence): 70,000 grey 28×28
photographs of clothes in 10 classes, 60,000 for training and 10,000 for test, as the four idx
files Debian's `dataset-fashion-mnist` puts in /usr/share/datasets/fashion-mnist/ (gzipped or
not; `fashion-mnist:PATH` names another folder).

Training draws dynamically binarised images (Burda et al. 2016; Salakhutdinov & Murray 2008):
each time an image is drawn, every pixel is 1 with probability its intensity, drawn from the
step's generator (so a resumed run sees the same bits). The Bernoulli likelihood is then a true
probability of the data it scores, log p(x) ≤ 0 and comparable with the binarised-MNIST
literature; and the decoder's pixel means estimate the grey intensities themselves. The test
split is binarised once, with a fixed seed (`binarised_test`), for judging; the pages show the
grey images.

At 28×28 (the MLP network) the images are as published; for our Burgess conv network, which
halves an image to 4×4 (32 → 16 → 8 → 4), they are padded with 2 black pixels on every side to
32×32: the garments already sit on a black ground, so the padding adds no information, and
disentangling-vae's MNIST models are 32×32 too. Training only ever sees the train split; the
test split is opened by name, for judging.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from app.data.base import Batch, DatasetError

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
LABEL_NAMES = (
    "T-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip
SIDE, PADDED = 28, 32
TEST_BINARISATION_SEED = 0  # the one fixed binarisation of the test split that scores are on
SPLITS = {"train": "train", "test": "t10k"}  # the files' prefixes (60,000 and 10,000 images)
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801  # idx: ubyte data, 3 or 1 dimensions
INSTALL = (
    "install Debian's package (sudo apt-get install dataset-fashion-mnist, which `make test` "
    "does) or give --dataset fashion-mnist:PATH, a folder with train-images-idx3-ubyte, "
    "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (.gz or not)"
)


def _find(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise DatasetError(f"{root}: {stem}(.gz) is missing; {INSTALL}")


def _read(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as e:  # a truncated .gz ends early
        raise DatasetError(f"{path}: cannot be read ({e}); {INSTALL}") from e


def read_idx(path: Path, magic: int, dims: int) -> np.ndarray:
    """An idx file (big-endian int32 magic and dimension sizes, then uint8 data) → its array,
    checked against the magic number and its own header's sizes."""
    data = _read(path)
    header = 4 + 4 * dims
    if len(data) < header:
        raise DatasetError(f"{path}: {len(data)} bytes, shorter than an idx header; {INSTALL}")
    got_magic, *sizes = np.frombuffer(data[:header], dtype=">i4").tolist()
    if got_magic != magic:
        raise DatasetError(
            f"{path}: not an idx file of {dims}-dimensional bytes (magic {got_magic:#010x}, "
            f"expected {magic:#010x})"
        )
    shape = tuple(sizes)
    body = np.frombuffer(data, dtype=np.uint8, offset=header)
    if body.size != int(np.prod(shape)):
        raise DatasetError(
            f"{path}: truncated: {body.size:,} bytes of data, expected {int(np.prod(shape)):,}; "
            f"{INSTALL}"
        )
    return body.reshape(shape)


class FashionMNIST:
    """One split of Fashion-MNIST: `images` (N, 1, S, S) uint8 grey levels (0..255) at S = 28 or
    padded to 32, their classes in `labels`; `sample` draws them binarised."""

    name = "fashion-mnist"
    channels = 1
    binary = True  # what `sample` returns: each pixel drawn 1 with probability its intensity
    label_names: tuple[str, ...] = LABEL_NAMES
    factor_names: tuple[str, ...] = ()

    def __init__(
        self, root: str | Path = DEFAULT_ROOT, split: str = "train", image_size: int = PADDED
    ) -> None:
        if split not in SPLITS:
            raise DatasetError(f"split must be train or test, got {split!r}")
        if image_size not in (SIDE, PADDED):
            raise DatasetError(
                f"Fashion-MNIST is served at {SIDE}×{SIDE} or padded to {PADDED}×{PADDED}, "
                f"not {image_size}"
            )
        self.image_size = image_size
        self.root, self.split = Path(root), split
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such folder; {INSTALL}")
        prefix = SPLITS[split]
        images = read_idx(_find(self.root, f"{prefix}-images-idx3-ubyte"), IMAGES_MAGIC, 3)
        labels = read_idx(_find(self.root, f"{prefix}-labels-idx1-ubyte"), LABELS_MAGIC, 1)
        if images.shape[1:] != (SIDE, SIDE):
            raise DatasetError(
                f"{self.root}: {prefix}-images holds {images.shape[1]}×{images.shape[2]} images; "
                f"Fashion-MNIST's are {SIDE}×{SIDE}"
            )
        if len(labels) != len(images):
            raise DatasetError(
                f"{self.root}: {prefix}-images holds {len(images):,} images but {prefix}-labels "
                f"{len(labels):,} labels"
            )
        n = len(images)
        if n == 0:
            raise DatasetError(f"{self.root}: {prefix}-images holds no image")
        if labels.max() >= len(LABEL_NAMES):
            bad = int(np.argmax(labels >= len(LABEL_NAMES)))
            raise DatasetError(
                f"{self.root}: {prefix}-labels holds class {int(labels[bad])} at image {bad}; "
                f"Fashion-MNIST has classes 0..9"
            )
        pad = (image_size - SIDE) // 2
        self.images = np.zeros((n, 1, image_size, image_size), dtype=np.uint8)
        self.images[:, 0, pad : pad + SIDE, pad : pad + SIDE] = images
        self.labels = labels.astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        """n images drawn with replacement, each binarised afresh from the same generator."""
        idx = rng.integers(0, len(self), n)
        return Batch(images=binarise(self.images[idx], rng), labels=self.labels[idx])

    def binarised(self, seed: int = TEST_BINARISATION_SEED) -> np.ndarray:
        """The whole split binarised once from `seed`: (N, 1, S, S) uint8 in {0, 1}, the same
        bits for the same seed on any machine (a padded pixel is 0 and stays 0)."""
        return binarise(self.images, np.random.default_rng(seed))


def binarise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 grey levels → {0, 1}, each pixel 1 with probability level/255."""
    return (rng.random(images.shape, dtype=np.float32) * 255.0 < images).astype(np.uint8)
