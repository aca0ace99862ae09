"""A data set is one kind of thing: images plus an optional table of per-image values.

Whether our renderer draws the images (dSprites, colour scenes), Debian's package holds them
(Fashion-MNIST) or they sit in a person's folder or a saved Hugging Face dataset, everything above
this package sees an `ImageSet`: n images by index, typed `Column`s (categorical or ordered; a
generating factor or an attribute), an optional split per image, and a content digest that
changes when the images or the table change. A model sees an image through a `Fitting` (its
channels and side), so any set can be shown to any model whose input the images can be fitted to.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from app.data.base import DatasetError
from app.data.sets.record_file import SetRecord, read_record

ColumnKind = Literal["categorical", "ordered"]
ColumnRole = Literal["factor", "attribute"]
SPLITS = ("train", "validation", "test")  # the splits a set may have; anything else is a column


class ImageUnreadable(DatasetError):
    """One image that cannot be decoded (corrupt, truncated, not an image): the set's other
    images still serve; encoding skips it and counts it."""


@dataclass(frozen=True)
class Column:
    """One value per image. Categorical: `values` are int64 codes into `categories` (−1 where a
    row has none); ordered: float64 numbers (NaN where a row has none). A factor is a generating
    factor the disentanglement metrics score latents against; an attribute is anything else
    known about an image (a class, CelebA's "Smiling")."""

    name: str
    kind: ColumnKind
    role: ColumnRole
    values: np.ndarray
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "categorical":
            if self.values.dtype != np.int64:
                raise TypeError(f"column {self.name!r}: categorical codes must be int64")
            if len(self.values) and int(self.values.max(initial=-1)) >= len(self.categories):
                raise ValueError(
                    f"column {self.name!r}: a code past its {len(self.categories)} categories"
                )
        elif self.values.dtype != np.float64:
            raise TypeError(f"column {self.name!r}: ordered values must be float64")

    def __len__(self) -> int:
        return len(self.values)

    @property
    def missing(self) -> int:
        """How many images have no value in this column."""
        if self.kind == "categorical":
            return int((self.values < 0).sum())
        return int(np.isnan(self.values).sum())

    def value_text(self, index: int) -> str:
        """Image `index`'s value in words ("sneaker", "0.25", "" where it has none)."""
        v = self.values[index]
        if self.kind == "categorical":
            return self.categories[int(v)] if v >= 0 else ""
        return "" if np.isnan(v) else f"{float(v):g}"

    def summary(self) -> ColumnSummary:
        if self.kind == "categorical":
            counts = np.bincount(self.values[self.values >= 0], minlength=len(self.categories))
            return ColumnSummary(
                self.name,
                self.kind,
                self.role,
                self.missing,
                categories=self.categories,
                counts=tuple(int(c) for c in counts),
            )
        known = self.values[~np.isnan(self.values)]
        low, high = (float(known.min()), float(known.max())) if len(known) else (None, None)
        return ColumnSummary(
            self.name,
            self.kind,
            self.role,
            self.missing,
            low=low,
            high=high,
            distinct=int(len(np.unique(known))),
        )

    def take(self, rows: np.ndarray) -> Column:
        return Column(self.name, self.kind, self.role, self.values[rows], self.categories)


@dataclass(frozen=True)
class ColumnSummary:
    """What `GET /api/datasets` and `data check` say of a column."""

    name: str
    kind: ColumnKind
    role: ColumnRole
    missing: int
    categories: tuple[str, ...] = ()
    counts: tuple[int, ...] = ()  # images per category
    low: float | None = None  # ordered: the smallest and largest value
    high: float | None = None
    distinct: int | None = None  # ordered: how many different values


@dataclass(frozen=True)
class Problem:
    """Something found wrong while reading a set: what it concerns (a file, a row of the table)
    and what is wrong. The set still serves; `data check` lists every one."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass(frozen=True)
class Fitting:
    """How an image becomes a model's input: converted to `channels` (1 grey, 3 colour), made
    `size`×`size` by `method`: "resize" (centre-cropped square, area-resampled, as every upload
    is) or "pad" (black border around a smaller image, as Fashion-MNIST is padded from 28 to 32
    for the conv network)."""

    channels: int
    size: int
    method: Literal["resize", "pad"] = "resize"

    @property
    def key(self) -> str:
        """What an encoding cache is keyed by: "1x28x28-resize"."""
        return f"{self.channels}x{self.size}x{self.size}-{self.method}"


@dataclass(frozen=True)
class SetSummary:
    """A set as `GET /api/datasets` lists it."""

    name: str
    source: str
    location: str
    n_images: int
    columns: tuple[ColumnSummary, ...]
    splits: dict[str, int] = field(default_factory=dict)  # split name → images
    problems: int = 0


class ImageSet(ABC):
    """n images by index, with typed columns. Subclasses read one source; nothing above this
    package knows which."""

    name: str  # the name it is served under (`data=NAME`)
    source: str  # in words: "folder (class sub-folders)", "built-in (drawn from its factors)"
    location: str  # a path, or "built-in"

    @abstractmethod
    def __len__(self) -> int: ...

    @property
    @abstractmethod
    def columns(self) -> tuple[Column, ...]: ...

    @property
    def split(self) -> np.ndarray | None:
        """(n,) int8 index into SPLITS per image, or None where the set has no split."""
        return None

    @property
    def problems(self) -> tuple[Problem, ...]:
        """What reading the set's listing and table found wrong (not image decoding: see
        `check`)."""
        return ()

    @property
    def model_dataset(self) -> str | None:
        """The data set name a model's config gives when it was trained on these images
        (dataset.json's `model_dataset`: "celeba"), so such models view this set by default."""
        return None

    @property
    def binary(self) -> bool:
        """Pixels are 0 or 1 by construction (dSprites)."""
        return False

    @property
    def pad_sizes(self) -> tuple[int, ...]:
        """Sides this set's images are padded to rather than resized to (Fashion-MNIST: 32)."""
        return ()

    @abstractmethod
    def content_digest(self) -> str:
        """A hex digest that changes when any image or any column value changes: what an
        encoding of the set is keyed by, so it is never served stale."""

    @abstractmethod
    def fitted(self, indices: np.ndarray, fitting: Fitting) -> tuple[np.ndarray, np.ndarray]:
        """Images `indices` as a model sees them: ((B, C, S, S) float32 in [0, 1], (B,) bool
        whether each could be read). An unreadable image is zeros with False, never a raise."""

    def native(self, index: int) -> np.ndarray:
        """Image `index` as stored: (C, H, W) uint8 (C is 1 or 3). ImageUnreadable if it cannot
        be decoded."""
        raise NotImplementedError

    def inspect(self, index: int) -> tuple[int, int, str]:
        """Image `index` decoded, as `data check` reports it: (width, height, its PIL mode as
        stored: "L", "RGB", "RGBA", "P", "I;16", …). ImageUnreadable if it cannot be decoded.
        Sets whose images are not files say what `native` gives ("L" or "RGB")."""
        c, h, w = self.native(index).shape
        return w, h, "L" if c == 1 else "RGB"

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.columns) or "none"
        raise KeyError(f"data set {self.name!r} has no column {name!r} (its columns: {known})")

    @property
    def factors(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.role == "factor")

    def split_indices(self, name: str) -> np.ndarray:
        """The indices of the images in split `name` ("test"), ascending; all where the set has
        no split."""
        split = self.split
        if split is None:
            return np.arange(len(self), dtype=np.int64)
        return np.flatnonzero(split == SPLITS.index(name)).astype(np.int64)

    def summary(self) -> SetSummary:
        split = self.split
        counts = (
            {}
            if split is None
            else {s: int((split == i).sum()) for i, s in enumerate(SPLITS) if (split == i).any()}
        )
        return SetSummary(
            name=self.name,
            source=self.source,
            location=self.location,
            n_images=len(self),
            columns=tuple(c.summary() for c in self.columns),
            splits=counts,
            problems=len(self.problems),
        )

    def fitting_for(self, channels: int, size: int) -> Fitting:
        """The fitting a model taking (channels, size, size) sees this set's images through."""
        return Fitting(channels, size, "pad" if size in self.pad_sizes else "resize")


class ListedSet(ImageSet):
    """A set read from a person's files (a folder, a saved Hugging Face dataset): its record
    (dataset.json), columns, split and listing problems are read once, when it is opened, and
    kept in these attributes."""

    root: Path
    record: SetRecord
    _columns: tuple[Column, ...]
    _split: np.ndarray | None
    _problems: tuple[Problem, ...]

    def _open_folder(self, root: str | Path, name: str | None) -> None:
        """The folder (resolved), its location, its dataset.json and the set's name: the
        served name given, else the record's, else the folder's. DatasetError where it is not
        a folder, or its record is wrong."""
        path = Path(root)
        if not path.is_dir():
            raise DatasetError(f"{path}: not a folder")
        self.root = path.resolve()
        self.location = str(self.root)
        self.record = read_record(self.root)
        self.name = name or self.record.name or self.root.name

    @property
    def model_dataset(self) -> str | None:
        return self.record.model_dataset

    @property
    def columns(self) -> tuple[Column, ...]:
        return self._columns

    @property
    def split(self) -> np.ndarray | None:
        return self._split

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self._problems


def digest_of(parts: Iterable[bytes | str]) -> str:
    """sha256 over parts, each length-prefixed (so ("ab", "c") and ("a", "bc") differ)."""
    h = hashlib.sha256()
    for part in parts:
        b = part.encode() if isinstance(part, str) else part
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def columns_digest(columns: Sequence[Column]) -> Iterable[bytes | str]:
    """The parts of a digest that say what the columns hold."""
    for c in columns:
        yield f"{c.name}|{c.kind}|{c.role}|" + "\x1f".join(c.categories)
        yield np.ascontiguousarray(c.values).tobytes()
