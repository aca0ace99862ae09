"""Directions in latent space: which way in z carries a ground-truth factor, and which way moves
one class to another, read from the encoder means μ of a sample of images.

factor direction   A straight-line read-out of the factor, ŷ = w·μ + b, fitted by least squares
                   on a seeded 80% of the sample, y being the factor's class scaled to 0..1
                   over its classes; its fit is R² on the held-out 20%. The vector is the
                   read-out's pattern (Haufe et al. 2014, "On the interpretation of weight
                   vectors of linear models in multivariate neuroimaging"): Σw / wᵀΣw, Σ the
                   covariance of μ, i.e. Cov(μ, ŷ) / Var(ŷ), how μ moves on average as the
                   read-out rises, sized so that ŷ rises by exactly 1 along it (w·v = 1): from
                   the factor's lowest class to its highest. Not w/|w|², the shortest such step:
                   w is a filter, and leans on whatever latent best cancels noise or reads the
                   factor most sharply, however little it moves. In dsprites-beta-vae (5,000
                   images, seed 0) the shortest step for scale put 91% of its squared length
                   on an unused latent (Var(μ) = 0.0006) that the decoder ignores, a step of
                   0.26 that changes no image; the pattern puts 99.7% on the scale latent
                   (Var(μ) = 1.0), a step of 3.3 that grows the sprite from smallest to largest.
class direction    From class `source`'s mean μ to class `target`'s, over the 80%: the
                   attribute vector of Latent Space Cartography (Liu et al. 2019). The fit is
                   the share of the held-out images of the two classes that fall on their own
                   class's side of the midpoint, projected on the vector (chance: the larger
                   class's share of them).

How a direction is spread over the latents: its shares v_i²/|v|² and their participation
ratio (Σ v_i²)² / Σ v_i⁴, 1 along one latent and D spread evenly over D.

On a data set (the latent map's sample of its kept encoding) a direction is read from one of its
columns, a generating factor or an attribute alike: an ordered column as a factor, its values
scaled to 0..1 from the column's lowest value in the set to its highest; a categorical column
from one of its categories to another. Images without a value in the column are left out, and
the fit says how many.

`model_direction` reads the sample the latent map draws (app.studies.latent_map) and caches
each answer per model weights; the rest is numpy on arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from app.checkpoints.served import ServedModel
from app.inference import InferenceError
from app.studies.cache import SharedResults
from app.studies.latent_map import Column, MapSample

HELD_OUT = 0.2  # the share of the sample the fit is scored on, never fitted on
MIN_SAMPLE = 100  # fewer images leave too few held out to score a fit


class DirectionError(InferenceError):
    """A sample that cannot give the direction asked: a class or factor it has not, too few
    images of a class, held-out images that all share one class of the factor."""


def held_out_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices 0..n−1 split at random (seeded) into the fitted 80% and the held-out 20%."""
    order = np.random.default_rng(seed).permutation(n)
    n_held = max(1, round(HELD_OUT * n))
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def participation_ratio(v: np.ndarray) -> float:
    """(Σ v_i²)² / Σ v_i⁴: how many latents the vector is spread over (1 along one latent, D
    spread evenly over D). 0 for the zero vector."""
    sq = np.asarray(v, dtype=np.float64) ** 2
    fourth = float((sq**2).sum())
    return float(sq.sum() ** 2 / fourth) if fourth > 0 else 0.0


def shares(v: np.ndarray) -> np.ndarray:
    """Each latent's share v_i² / |v|² of the vector's squared length (they sum to 1)."""
    sq = np.asarray(v, dtype=np.float64) ** 2
    total = sq.sum()
    return sq / total if total > 0 else sq


@dataclass(frozen=True)
class Fit:
    """How well the direction reads the factor or separates the classes, on held-out images."""

    measure: str  # "R²" or "accuracy"
    value: float
    held_out: int  # images scored
    chance: float | None  # what guessing scores (accuracy: the larger class's share)
    about: str
    left_out: int = 0  # images of the sample without a value in the data set's column


@dataclass(frozen=True)
class Direction:
    vector: np.ndarray  # (D,) the step in z
    centre: np.ndarray  # (D,) where a strip along it is centred: mean μ, or the classes' midpoint
    fit: Fit

    @property
    def length(self) -> float:
        return float(np.linalg.norm(self.vector))

    @property
    def participation_ratio(self) -> float:
        return participation_ratio(self.vector)

    @property
    def shares(self) -> np.ndarray:
        return shares(self.vector)


def factor_direction(
    mu: np.ndarray, classes: np.ndarray, n_classes: int, seed: int, factor: str = "the factor"
) -> Direction:
    """The step in z along which μ moves with the factor (`classes` (n,), in 0..n_classes−1,
    scaled to 0..1), sized to carry its straight-line read-out from the lowest class to the
    highest; see the module."""
    if n_classes < 2:
        raise DirectionError(f"{factor} has one class: there is nothing for a line to read")
    y = np.asarray(classes, dtype=np.float64) / (n_classes - 1)
    return read_out_direction(mu, y, seed, factor, "its classes scaled to 0..1")


def read_out_direction(
    mu: np.ndarray, y: np.ndarray, seed: int, factor: str = "the factor",
    scaled: str = "scaled to 0..1",
) -> Direction:  # fmt: skip
    """The pattern of the straight-line read-out of `y` (n,) from μ (n, D), y running 0..1 from
    the factor's lowest to its highest (`scaled` says how, in the fit's words); see the
    module."""
    mu = np.asarray(mu, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    fit, held = held_out_split(len(y), seed)
    centre, y_mean = mu[fit].mean(axis=0), y[fit].mean()
    centred = mu[fit] - centre  # (n_fit, D)
    if not centred.any():
        raise DirectionError(f"no latent's μ varies over the sample: nothing can read {factor}")
    w = np.linalg.lstsq(centred, y[fit] - y_mean, rcond=None)[0]  # the read-out ŷ = w·(μ − centre)
    read_out = centred @ w
    variance = float(read_out @ read_out)
    if variance <= 1e-12 * len(fit):
        raise DirectionError(f"{factor} is the same in every fitted image: no line reads it")
    # Haufe et al.'s pattern Σw / wᵀΣw: Σw = Cov(μ, ŷ), how μ moves with the read-out
    vector = centred.T @ read_out / variance
    predicted = (mu[held] - centre) @ w + y_mean
    residual = float(((y[held] - predicted) ** 2).sum())
    total = float(((y[held] - y[held].mean()) ** 2).sum())
    if total == 0:
        raise DirectionError(
            f"the {len(held)} held-out images all have the same {factor}: R² needs more; "
            "take a larger sample"
        )
    about = (
        f"R² of a straight-line read-out of {factor} ({scaled}) from μ, "
        f"fitted on {len(fit):,} images and scored on {len(held):,} held out"
    )
    return Direction(vector, centre, Fit("R²", 1 - residual / total, len(held), None, about))


def class_direction(
    mu: np.ndarray,
    classes: np.ndarray,
    source: int,
    target: int,
    seed: int,
    names: tuple[str, str] = ("the first class", "the second class"),
) -> Direction:
    """From class `source`'s mean μ to class `target`'s (`classes` (n,) each image's class),
    scored by how many held-out images of the two fall on their own side of the midpoint."""
    mu = np.asarray(mu, dtype=np.float64)
    classes = np.asarray(classes)
    fit, held = held_out_split(len(classes), seed)
    means = []
    for label, name in zip((source, target), names, strict=True):
        members = fit[classes[fit] == label]
        if not len(members):
            raise DirectionError(
                f"the {len(fit):,} fitted images hold no {name}: take a larger sample"
            )
        means.append(mu[members].mean(axis=0))
    vector = means[1] - means[0]
    centre = (means[0] + means[1]) / 2
    pair = held[np.isin(classes[held], (source, target))]
    if not len(pair):
        raise DirectionError(
            f"the {len(held):,} held-out images hold no {names[0]} and no {names[1]}: "
            "take a larger sample"
        )
    toward_target = (mu[pair] - centre) @ vector > 0
    correct = float((toward_target == (classes[pair] == target)).mean())
    n_target = int((classes[pair] == target).sum())
    chance = max(n_target, len(pair) - n_target) / len(pair)
    about = (
        f"share of the {len(pair):,} held-out {names[0]} and {names[1]} images on their own "
        f"class's side of the midpoint between the class means (fitted on {len(fit):,} images)"
    )
    return Direction(vector, centre, Fit("accuracy", correct, len(pair), chance, about))


# --- a model's directions, from the latent map's sample ---------------------------------------


@dataclass(frozen=True)
class DirectionRequest:
    """A factor's direction (`factor`) or a class-to-class one (`source` → `target`), by name
    as the sample names them, from a sample of `n` images drawn with `seed`. On a data set,
    `factor` is an ordered column and `column` the categorical column whose categories
    `source` and `target` are."""

    factor: str | None
    source: str | None
    target: str | None
    n: int
    seed: int
    column: str | None = None


def sample_direction(
    sample: MapSample, request: DirectionRequest, set_columns: Sequence[Column] = ()
) -> Direction:
    """The direction asked, from a sample's μ and its factors or classes, or a data set's
    column (`set_columns`: the set's whole columns, whose low..high scale an ordered one)."""
    if sample.source == "data-set":
        return column_direction(sample, request, set_columns)
    if request.factor is not None:
        if sample.factors is None or request.factor not in sample.factor_names:
            raise DirectionError(f"the sample has no factor {request.factor!r}")
        k = sample.factor_names.index(request.factor)
        if k == sample.label_factor:
            raise DirectionError(f"{request.factor} is categorical: its classes have no order")
        return factor_direction(
            sample.mu, sample.factors[:, k], sample.factor_sizes[k], request.seed, request.factor
        )
    if request.source is None or request.target is None:
        raise DirectionError("a direction needs a factor, or two classes to go from and to")
    names = (request.source, request.target)
    if sample.classes is None or not set(names) <= set(sample.class_names):
        raise DirectionError(f"the sample has no classes {request.source!r} and {request.target!r}")
    source, target = (sample.class_names.index(c) for c in names)
    return class_direction(sample.mu, sample.classes, source, target, request.seed, names)


def column_span(column: Column) -> tuple[float, float]:
    """An ordered column's lowest and highest value (NaN, where no image has one)."""
    known = column.values[~np.isnan(column.values)]
    return (float(known.min()), float(known.max())) if len(known) else (np.nan, np.nan)


def column_direction(
    sample: MapSample, request: DirectionRequest, set_columns: Sequence[Column] = ()
) -> Direction:
    """A direction read from a data set's column over the sample's images that have a value in
    it (the others are left out and counted in the fit): an ordered column (`request.factor`)
    as a factor scaled to 0..1 by its low..high over the whole set (`set_columns`; over the
    sample where the set's are not given), a categorical one (`request.column`) from category
    `request.source` to `request.target`."""
    name = request.factor if request.factor is not None else request.column
    where = f"data set {sample.data_set or sample.dataset}"
    column = next((c for c in sample.columns if c.name == name), None)
    if name is None or column is None:
        have = ", ".join(c.name for c in sample.columns) or "none"
        raise DirectionError(f"{where} has no column {name!r} (its columns: {have})")
    if request.factor is not None:
        if column.kind != "ordered":
            raise DirectionError(f"column {name!r} of {where} is categorical: no order to read")
        whole = next((c for c in set_columns if c.name == name), column)
        low, high = column_span(whole)
        has = ~np.isnan(column.values)
        if not has.any():
            raise DirectionError(f"none of the sample's {sample.n:,} images has a {name}")
        if not high > low:
            raise DirectionError(
                f"every image of {where} that has a {name} has the same one ({low:g}): "
                "there is nothing for a line to read"
            )
        y = (column.values[has] - low) / (high - low)
        scaled = f"its values scaled to 0..1 from {low:g} to {high:g}"
        d = read_out_direction(sample.mu[has], y, request.seed, name, scaled)
    else:
        if column.kind != "categorical":
            raise DirectionError(f"column {name!r} of {where} is ordered: it has no categories")
        names = (request.source or "", request.target or "")
        missing = [c for c in names if c not in column.categories]
        if missing:
            raise DirectionError(
                f"column {name!r} of {where} has no category {missing[0]!r} "
                f"(its categories: {', '.join(column.categories)})"
            )
        has = column.values >= 0
        if not has.any():
            raise DirectionError(f"none of the sample's {sample.n:,} images has a {name}")
        source, target = (column.categories.index(c) for c in names)
        nouns = (_category_noun(name, names[0]), _category_noun(name, names[1]))
        d = class_direction(sample.mu[has], column.values[has], source, target, request.seed, nouns)
    left_out = int((~has).sum())
    if not left_out:
        return d
    about = (
        f"{d.fit.about}; {left_out:,} of the {sample.n:,} images have no {name} and are left out"
    )
    return replace(d, fit=replace(d.fit, about=about, left_out=left_out))


def _category_noun(column: str, category: str) -> str:
    """How the fit's text names a category: itself ("sneaker"), or with its column where it
    says nothing alone ("smiling=true", "age=3")."""
    bare = category.lower() in ("true", "false") or category.replace(".", "", 1).isdigit()
    return f"{column}={category}" if bare else category


MAX_CACHED = 64  # (weights, request) pairs kept: a handful of directions per model
_results: SharedResults[tuple[Direction, MapSample]] = SharedResults(MAX_CACHED)


def model_direction(
    ckpt: ServedModel,
    request: DirectionRequest,
    sample: Callable[[], MapSample],
    source: Hashable = None,
    set_columns: Sequence[Column] = (),
) -> tuple[Direction, MapSample]:
    """The direction asked of the model and the sample it was read from (`sample`: the latent
    map's, of request.n images drawn with request.seed), cached by the weights' digest and
    `source` (what names the images: a data set and its encoding; None for the model's own):
    concurrent first callers share one computation, and a failure is not kept."""

    def compute() -> tuple[Direction, MapSample]:
        drawn = sample()
        return sample_direction(drawn, request, set_columns), drawn

    if not ckpt.digest:  # a ServedModel built by hand, not loaded: nothing names its weights
        return compute()
    return _results.get((ckpt.digest, source, request), compute)
