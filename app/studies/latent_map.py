"""A map of a model's latent space: the encoder means μ of n held-out images, laid out in 2-D.

Where the images come from, by what the model has:
    ground truth   drawn uniformly from the dataset's factor combinations with a seed (dSprites,
                   colour shapes), so every point carries its factor classes;
    test split     a seeded subset of the dataset's published test images (Fashion-MNIST), each
                   with its class;
    data set       a served data set's kept encoding (app.encodings): its test split where it
                   has one, else all its images, or a seeded subset; every column of the set
                   comes with the points, to colour them by;
    prior          no data here: the model's own decodings of z from its prior, encoded again, a
                   map of what it makes rather than of a dataset.
A CVAE's μ is its encoder's given each image's own class.

The layouts (app.studies.layouts): PCA, exact and at once; t-SNE (openTSNE) and UMAP
(umap-learn), computed in the background (app.studies.layout_jobs) and kept per weights
digest; or a layout of a data set computed elsewhere and loaded (app.studies.layout_files).

Nothing here knows about HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from app import inference
from app.checkpoints.served import ServedModel
from app.data.sets import SPLITS, Column
from app.inference import DatasetImages, DrawnImages, InferenceError, TestImages
from app.studies.cache import SharedResults

METHODS = ("pca", "tsne", "umap")  # the layouts a map is computed in (and "loaded", by name)
ENCODE_BATCH = 256
# images are drawn and encoded on this many threads at once (torch and numpy release the GIL):
# a cold 10,000-point dSprites map is half the wall time on 2 cores that it is on one
ENCODE_THREADS = max(1, min(4, os.cpu_count() or 1))


class SampleTooLargeError(InferenceError):
    """More images asked for than the model's data holds (a test split of 10,000)."""


@dataclass(frozen=True)
class MapSample:
    source: str  # "ground-truth" | "test-split" | "data-set" | "prior"
    dataset: str | None  # "dSprites", "Fashion-MNIST"; None for the prior
    description: str  # "5,000 dSprites images drawn uniformly (seed 0)"
    indices: np.ndarray  # (n,) int64: dataset or test-split index (prior: the draw's number)
    mu: np.ndarray  # (n, D) float64 encoder means
    classes: np.ndarray | None  # (n,) int64 each image's class (dSprites: its shape)
    class_names: tuple[str, ...]
    factors: np.ndarray | None  # (n, K) int64 ground-truth factor classes
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    label_factor: int | None = None  # the categorical column of `factors` (the class)
    prior_z: np.ndarray | None = None  # (n, D) the prior draws, for source "prior"
    columns: tuple[Column, ...] = ()  # source "data-set": the set's columns, row per point
    data_set: str | None = None  # source "data-set": the served set's name (`data=NAME`)
    whole: bool = False  # source "data-set": every split's images of a set with a test split

    @property
    def n(self) -> int:
        return len(self.indices)


# --- encoding, on several threads -------------------------------------------------------------

Batch = Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor | None]]  # rows → images, labels


@torch.inference_mode()
def _encode_rows(ckpt: ServedModel, rows: np.ndarray, batch: Batch) -> np.ndarray:
    """μ (len(rows), D) float64, `batch` making each chunk's images (and a CVAE's labels) on the
    thread that encodes it."""

    def one(chunk: np.ndarray) -> np.ndarray:
        x, labels = batch(chunk)
        return ckpt.model.encode(x, labels).mean.double().numpy()

    chunks = [rows[i : i + ENCODE_BATCH] for i in range(0, len(rows), ENCODE_BATCH)]
    if ENCODE_THREADS == 1 or len(chunks) == 1:
        return np.concatenate([one(c) for c in chunks])
    with ThreadPoolExecutor(max_workers=ENCODE_THREADS) as pool:
        return np.concatenate(list(pool.map(one, chunks)))


def _drawn(ckpt: ServedModel, images: DrawnImages, n: int, seed: int) -> MapSample:
    truth = images.truth
    classes = truth.sample_classes(np.random.default_rng(seed), n)
    cvae = ckpt.description.kind == "cvae"

    def batch(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        c = classes[rows]
        labels = torch.from_numpy(c[:, truth.label_factor]) if cvae else None
        return torch.from_numpy(truth.render(c)), labels

    mu = _encode_rows(ckpt, np.arange(n), batch)
    index = np.ravel_multi_index(tuple(classes.T), truth.factor_sizes).astype(np.int64)
    return MapSample(
        source="ground-truth",
        dataset=truth.name,
        description=f"{n:,} {truth.name} images drawn uniformly from its "
        f"{truth.n_images:,} (seed {seed})",
        indices=index,
        mu=mu,
        classes=classes[:, truth.label_factor].astype(np.int64),
        class_names=truth.label_names,
        factors=classes.astype(np.int64),
        factor_names=truth.factor_names,
        factor_sizes=truth.factor_sizes,
        label_factor=truth.label_factor,
    )


def check_sample_size(ckpt: ServedModel, images: DatasetImages | None, n: int) -> None:
    """A SampleTooLargeError where n is more images than a test split holds; at once, before
    anything is drawn or encoded (ground truth and the prior draw any number)."""
    if isinstance(images, TestImages) and n > images.n_images:
        total = images.n_images
        raise SampleTooLargeError(
            f"n is {n:,}, but {images.name}'s test split holds {total:,} images: n must be at "
            f"most {total:,} for model {ckpt.name}"
        )


def _test_split(ckpt: ServedModel, images: TestImages, n: int, seed: int) -> MapSample:
    check_sample_size(ckpt, images, n)
    total = images.n_images
    # all of them in order, or a seeded subset, ascending
    index = np.arange(total) if n == total else np.sort(
        np.random.default_rng(seed).choice(total, size=n, replace=False)
    )  # fmt: skip
    split = images.split
    labels = split.labels[index].astype(np.int64)
    cvae = ckpt.description.kind == "cvae"

    def batch(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        # grey as published, as the pages encode a test image (TestSplit.image)
        x = torch.from_numpy(split.images[index[rows]].astype(np.float32) / np.float32(255))
        return x, (torch.from_numpy(labels[rows]) if cvae else None)

    mu = _encode_rows(ckpt, np.arange(n), batch)
    which = "all" if n == total else f"{n:,} of the"
    return MapSample(
        source="test-split",
        dataset=images.name,
        description=f"{which} {total:,} {images.name} test images"
        + ("" if n == total else f" (a random subset, seed {seed})"),
        indices=index.astype(np.int64),
        mu=mu,
        classes=labels,
        class_names=images.label_names,
        factors=None,
    )


def _prior(ckpt: ServedModel, n: int, seed: int) -> MapSample:
    cfg = ckpt.description
    z = inference.sample_model_prior(ckpt, n, seed)
    # a CVAE with no data here: its classes in turn
    labels = torch.arange(n) % cfg.n_labels if cfg.kind == "cvae" else None

    def batch(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        r = torch.from_numpy(rows)
        lab = None if labels is None else labels[r]
        return ckpt.model.decode(z[r], lab), lab

    mu = _encode_rows(ckpt, np.arange(n), batch)
    return MapSample(
        source="prior",
        dataset=None,
        description=f"{n:,} images {ckpt.name} decoded from z ~ {ckpt.prior.symbol} (seed {seed}), "
        "encoded "
        f"again: its training data ({cfg.dataset or 'unnamed'}) is not here, so this maps what "
        "the model makes",
        indices=np.arange(n, dtype=np.int64),
        mu=mu,
        classes=None if labels is None else labels.numpy().astype(np.int64),
        class_names=cfg.label_names if labels is not None else (),
        factors=None,
        prior_z=z.double().numpy(),
    )


def encoded_rows(
    indices: np.ndarray, ok: np.ndarray, split: np.ndarray | None,
    labels: np.ndarray | None = None, whole: bool = False,
) -> np.ndarray:  # fmt: skip
    """The rows of a kept encoding a map draws from: images that could be read (and, for a
    CVAE, have a class), of the test split where the set has one unless `whole`."""
    usable = ok.copy()
    if labels is not None:
        usable &= labels[indices] >= 0
    if split is not None and not whole:
        test = split[indices] == SPLITS.index("test")
        if (usable & test).any():
            usable &= test
    return np.flatnonzero(usable)


def encoded_sample(
    set_name: str,
    indices: np.ndarray,
    ok: np.ndarray,
    mu: np.ndarray,
    columns: tuple[Column, ...],
    split: np.ndarray | None,
    n: int,
    seed: int,
    labels: np.ndarray | None = None,
    class_names: tuple[str, ...] = (),
    whole: bool = False,
) -> MapSample:
    """n points of a data set's kept encoding (`indices`, `ok`, `mu` row per image): those
    `encoded_rows` keeps (`whole`: every split's), all of them in order or a seeded subset,
    ascending. `labels` (a CVAE's class per set image, −1 for none) become the points'
    classes."""
    rows = encoded_rows(indices, ok, split, labels, whole)
    which = (
        " test"
        if split is not None and (split[indices[rows]] == SPLITS.index("test")).all() and len(rows)
        else ""
    )
    total = len(rows)
    if total == 0:
        raise InferenceError(f"data set {set_name!r} has no image that could be read and encoded")
    if n > total:
        raise SampleTooLargeError(
            f"n is {n:,}, but data set {set_name!r} has {total:,}{which} images that could be "
            f"read: n must be at most {total:,}"
        )
    if n < total:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=n, replace=False))
    chosen = indices[rows].astype(np.int64)
    unread = int((~ok).sum())
    note = f"; {unread:,} of its images could not be read" if unread else ""
    return MapSample(
        source="data-set",
        dataset=set_name,
        description=(f"all {total:,}" if n == total else f"{n:,} of the {total:,}")
        + f"{which} images of data set {set_name}"
        + ("" if n == total else f" (a random subset, seed {seed})")
        + note,
        indices=chosen,
        mu=np.asarray(mu[rows], dtype=np.float64),
        classes=None if labels is None else labels[chosen].astype(np.int64),
        class_names=class_names,
        factors=None,
        columns=tuple(c.take(chosen) for c in columns),
        data_set=set_name,
        whole=whole and split is not None and bool((split != SPLITS.index("test")).any()),
    )


def compute_sample(ckpt: ServedModel, images: DatasetImages | None, n: int, seed: int) -> MapSample:
    """The μ of n held-out images of the model's data (`images`, from
    inference.dataset_images_of), or of its own prior samples where it has none. Uncached."""
    if n < 1:
        raise InferenceError(f"n must be at least 1, got {n}")
    if isinstance(images, DrawnImages):
        return _drawn(ckpt, images, n, seed)
    if isinstance(images, TestImages):
        return _test_split(ckpt, images, n, seed)
    return _prior(ckpt, n, seed)


_samples: SharedResults[MapSample] = SharedResults(8)


def map_sample(ckpt: ServedModel, images: DatasetImages | None, n: int, seed: int) -> MapSample:
    """compute_sample, cached per weights digest: concurrent first callers share one."""
    if not ckpt.digest:
        return compute_sample(ckpt, images, n, seed)
    source = None if images is None else (images.name, images.n_images)
    return _samples.get(
        ("sample", ckpt.digest, source, n, seed), lambda: compute_sample(ckpt, images, n, seed)
    )
