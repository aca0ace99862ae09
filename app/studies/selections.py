"""A selection on the latent map: a set of images, by their index in the data the map shows,
and what they have in common: their encoder means μ, their mean reconstruction, a summary of
their columns; two selections make a direction, from the mean μ of one to the other's (a class
direction when the selections are exactly two classes: app.studies.directions reads those from
the same arithmetic).

Where μ comes from, by what the map shows:
    a data set    the set's kept encoding (app.encodings): a row lookup, any number of images;
    ground truth  the images drawn from their factors and encoded now (dSprites by index);
    test split    the published test images, encoded now.
A selection of a model's own drawn or test images holds at most `limit` images (the map of
them holds no more); a data set's, as many as the set.

Nothing here knows about HTTP."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from app.checkpoints.served import ServedModel
from app.encodings.record import DataEncoding
from app.inference import DatasetImages, DrawnImages, InferenceError, SetImages, TestImages

BATCH = 256
RECONSTRUCTED = 256  # images whose reconstructions are averaged, a seeded sample past this
SHOWN = 24  # images a selection shows by default
TOP = 12  # a categorical column's most frequent values listed


class SelectionError(InferenceError):
    """A selection the data cannot give: an index it does not hold, an image it could not
    read, more images than can be encoded at once."""


@dataclass(frozen=True)
class Selected:
    """The images of a selection (unique, ascending) and their μ, row for row; `labels` the
    classes a CVAE decodes them with (None for other models)."""

    indices: np.ndarray  # (k,) int64
    mu: np.ndarray  # (k, D) float64
    labels: np.ndarray | None = None  # (k,) int64

    @property
    def count(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class ValueCount:
    value: str
    count: int


@dataclass(frozen=True)
class ColumnSummary:
    """One column over a selection: a categorical column's most frequent values, an ordered
    one's mean and range; `missing` images without a value."""

    name: str
    kind: str  # "categorical" | "ordered"
    missing: int
    counts: tuple[ValueCount, ...] = ()
    mean: float | None = None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class SelectionDirection:
    vector: np.ndarray  # (D,) mean μ of `to` − mean μ of `source`
    source_mean: np.ndarray
    target_mean: np.ndarray
    source_count: int
    target_count: int
    shared: int  # images in both


def unique_indices(indices: np.ndarray, n_images: int, noun: str) -> np.ndarray:
    """The selection's indices, unique and ascending; a SelectionError naming the first one the
    data does not hold."""
    idx = np.unique(np.asarray(indices, dtype=np.int64))
    if len(idx) == 0:
        raise SelectionError("a selection needs at least one image")
    bad = idx[(idx < 0) | (idx >= n_images)]
    if len(bad):
        raise SelectionError(
            f"image {int(bad[0]):,} is not a {noun}: indices run 0..{n_images - 1:,}"
        )
    return idx


def _labels_of(images: DatasetImages, idx: np.ndarray, cvae: bool) -> np.ndarray | None:
    if not cvae:
        return None
    if isinstance(images, DrawnImages):
        truth = images.truth
        return truth.index_to_classes(idx)[:, truth.label_factor].astype(np.int64)
    if isinstance(images, TestImages):
        return images.split.labels[idx].astype(np.int64)
    return np.array([images.label(int(i)) for i in idx], dtype=np.int64)


def _pixels(images: DatasetImages, idx: np.ndarray) -> np.ndarray:
    """(B, C, H, W) float32 in [0, 1], as the map encodes them."""
    if isinstance(images, DrawnImages):
        return images.truth.render(images.truth.index_to_classes(idx))
    if isinstance(images, TestImages):
        return images.split.images[idx].astype(np.float32) / np.float32(255)
    raise TypeError(images)


@torch.inference_mode()
def selected(
    model: ServedModel,
    images: DatasetImages,
    indices: np.ndarray,
    encoding: DataEncoding | None = None,
    labels: np.ndarray | None = None,
    limit: int = 20_000,
) -> Selected:
    """μ of each image of a selection: from a data set's kept `encoding` (and `labels`, a
    CVAE's class per set image, as the encoding used them), else encoded now (at most `limit`
    images)."""
    cvae = model.description.kind == "cvae"
    idx = unique_indices(indices, images.n_images, images.noun)
    if isinstance(images, SetImages):
        if encoding is None:
            raise TypeError("a data set's selection reads its kept encoding")
        order = np.argsort(encoding.indices, kind="stable")
        rows = order[np.searchsorted(encoding.indices, idx, sorter=order)]
        unread = idx[~encoding.ok[rows]]
        if len(unread):
            raise SelectionError(
                f"{len(unread):,} of the selected images of data set {images.name} could not be "
                f"read (image {int(unread[0]):,} first): leave them out"
            )
        own = None if labels is None or not cvae else labels[idx].astype(np.int64)
        return Selected(idx, np.asarray(encoding.mu[rows], dtype=np.float64), own)
    if len(idx) > limit:
        raise SelectionError(
            f"a selection of {model.name}'s own {images.name} images holds at most {limit:,} "
            f"(it has {len(idx):,}); map a data set (data=NAME) to select more"
        )
    own = _labels_of(images, idx, cvae)
    parts = []
    for start in range(0, len(idx), BATCH):
        chunk = idx[start : start + BATCH]
        x = torch.from_numpy(_pixels(images, chunk))
        lab = None if own is None else torch.from_numpy(own[start : start + BATCH])
        parts.append(model.model.encode(x, lab).mean.double().numpy())
    return Selected(idx, np.concatenate(parts), own)


@torch.inference_mode()
def mean_reconstruction(
    model: ServedModel, chosen: Selected, most: int = RECONSTRUCTED, seed: int = 0
) -> tuple[torch.Tensor, int]:
    """The mean of the selection's reconstructions (each decoded from its μ), over all of it or
    a seeded sample of `most`: (C, H, W) in [0, 1], and how many were averaged."""
    rows = np.arange(chosen.count)
    if chosen.count > most:
        rows = np.sort(np.random.default_rng(seed).choice(chosen.count, size=most, replace=False))
    total: torch.Tensor | None = None
    for start in range(0, len(rows), BATCH):
        part = rows[start : start + BATCH]
        z = torch.from_numpy(chosen.mu[part]).float()
        lab = None if chosen.labels is None else torch.from_numpy(chosen.labels[part])
        x = model.model.decode(z, lab).double().sum(dim=0)
        total = x if total is None else total + x
    assert total is not None
    return (total / len(rows)).float().clamp(0, 1), len(rows)


def shown(chosen: Selected, count: int = SHOWN, seed: int = 0) -> np.ndarray:
    """`count` of the selection's images to show (all where it has no more), a seeded sample
    in index order."""
    if chosen.count <= count:
        return chosen.indices
    pick = np.random.default_rng(seed).choice(chosen.count, size=count, replace=False)
    return chosen.indices[np.sort(pick)]


def _categorical(name: str, codes: np.ndarray, names: tuple[str, ...]) -> ColumnSummary:
    known = codes[codes >= 0]
    counts = np.bincount(known, minlength=len(names))
    top = np.argsort(-counts, kind="stable")[:TOP]
    listed = tuple(ValueCount(names[k], int(counts[k])) for k in top if counts[k] > 0)
    return ColumnSummary(name, "categorical", int((codes < 0).sum()), counts=listed)


def _ordered(name: str, values: np.ndarray) -> ColumnSummary:
    known = values[~np.isnan(values)]
    missing = int(len(values) - len(known))
    if not len(known):
        return ColumnSummary(name, "ordered", missing)
    return ColumnSummary(
        name, "ordered", missing,
        mean=float(known.mean()), low=float(known.min()), high=float(known.max()),
    )  # fmt: skip


def column_summaries(images: DatasetImages, idx: np.ndarray) -> tuple[ColumnSummary, ...]:
    """Each column of the selection's images: a data set's columns, a ground truth's factors
    (the class factor by name, the others by their class number), a test split's class."""
    if isinstance(images, SetImages):
        out = []
        for c in images.set.columns:
            if c.kind == "categorical":
                out.append(_categorical(c.name, c.values[idx], c.categories))
            else:
                out.append(_ordered(c.name, c.values[idx].astype(np.float64)))
        return tuple(out)
    if isinstance(images, DrawnImages):
        truth = images.truth
        classes = truth.index_to_classes(idx)
        return tuple(
            _categorical(name, classes[:, k], truth.label_names)
            if k == truth.label_factor
            else _ordered(name, classes[:, k].astype(np.float64))
            for k, name in enumerate(truth.factor_names)
        )
    if isinstance(images, TestImages):
        labels = images.split.labels[idx].astype(np.int64)
        return (_categorical("class", labels, images.label_names),)
    return ()


def direction(source: Selected, target: Selected) -> SelectionDirection:
    """From the mean μ of `source` to the mean μ of `target`."""
    a = source.mu.mean(axis=0)
    b = target.mu.mean(axis=0)
    shared = len(np.intersect1d(source.indices, target.indices, assume_unique=True))
    return SelectionDirection(b - a, a, b, source.count, target.count, shared)


def inside(x: np.ndarray, y: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Which points (x, y) lie inside `polygon` ((m, 2), closed implicitly), by the even-odd
    rule: a boolean mask."""
    px, py = polygon[:, 0], polygon[:, 1]
    qx, qy = np.roll(px, -1), np.roll(py, -1)
    result = np.zeros(len(x), dtype=bool)
    for x0, y0, x1, y1 in zip(px, py, qx, qy, strict=True):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        result ^= crosses & (x < at)
    return result
