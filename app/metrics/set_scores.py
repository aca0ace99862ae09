"""A model's scores on any data set, from per-image arrays: what `evaluate` computes on drawn
ground truth (app/metrics/evaluate.py) and on a test split (app/metrics/test_scores.py), made to
work on a fixed set of images whose columns say what is known of each.

    factor_classes(column)           a factor column → one class per image (−1 where none)
    disentanglement(mu, ...)         MIG, DCI, SAP, modularity, explicitness over the factors
    column_probes(mu, ...)           a linear probe of each categorical column from μ
    encoding_elbo(nll, kl)           −log p(x | z = μ) − KL per image, from a kept encoding
    likelihood(model, batches, ...)  the ELBO and the importance-weighted bound L_k, re-encoded

The disentanglement metrics are app.metrics.scores' own functions, called one factor at a time
on the images that have that factor's value (a set may leave a value out), so that each factor
sees exactly its images; with no value missing this is the same computation as scoring every
factor at once (each score is per factor before it is averaged or combined).

The β-VAE and FactorVAE scores are left out: each of their points fixes one factor and draws
the others afresh, which a fixed set of images gives only approximately (images that share one
factor's value have whatever values the set holds for the rest, not fresh independent draws).
`latent-explorer evaluate` computes them on a model's own ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from app.data.fashion_mnist import TEST_BINARISATION_SEED, binarise
from app.data.sets.record import Column
from app.metrics import reference, scores
from app.metrics.evaluate import EvaluationError
from app.metrics.likelihood import bits_per_dim, importance_weighted_bound
from app.metrics.names import LABELS
from app.metrics.test_scores import (
    ELBO_SAMPLES,
    PROBE_C_GRID,
    PROBE_FOLDS,
    PROBE_MAX_ITER,
    SAMPLING_SEED,
    elbo_terms,
    linear_probe,
)
from app.models.interface import LatentModel
from app.models.priors import Prior, StandardNormal, prior_kl

# an ordered factor with at most this many distinct values has one class per value (a rendered
# factor has at most 40: dSprites' orientation); past it, its values are binned
MAX_FACTOR_CLASSES = 64
FACTOR_BINS = 20  # equal-count bins of an ordered factor with many values
LIKELIHOOD_BATCH = 32  # images per step, as test_scores.likelihood_scores takes them
Progress = Callable[[float, str], None]  # (fraction done, what is being done)
LEFT_OUT = {
    "beta_vae": "each point fixes one factor over 64 image pairs and draws the others afresh; "
    "a fixed set of images has such pairs only approximately (images sharing one factor's "
    "value have whatever values the set holds for the rest): left out for data sets "
    "(latent-explorer evaluate computes it on a model's own ground truth)",
    "factor_vae": "each vote fixes one factor over 64 images and draws the others afresh; a "
    "fixed set of images has such batches only approximately: left out for data sets "
    "(latent-explorer evaluate computes it on a model's own ground truth)",
}
# on a data set: MIG, modularity and explicitness as disentanglement_lib computes them, DCI and
# SAP by our faster variants (the library's boosting would take minutes per factor, in a page)
METRIC_LABELS = {
    k: LABELS[k]
    for k in ("mig", "dci_et_disentanglement", "dci_et_completeness", "dci_et_informativeness",
              "sap_tree", "modularity", "explicitness")
}  # fmt: skip


@dataclass(frozen=True)
class SetScoreSettings:
    """How a model is scored on a data set. The metrics' sample sizes are evaluate's defaults
    (disentanglement_lib's: 10,000 train / 5,000 test images)."""

    points: int = 10_000  # images the metrics' estimators are fitted on
    test_points: int = 5_000  # images DCI, SAP and explicitness are scored on
    bins: int = 20  # histogram bins per latent for the mutual information (MIG, modularity)
    seed: int = 0  # which images are drawn, the held-out share, the trees' randomness
    held_out_share: float = 0.2  # of a set without a test split: the images scored as held out
    probe_images: int = 10_000  # at most this many of the held-out images are probed
    k: int = 1_000  # draws of q(z|x) per image for L_k (Burda et al. 2016 report k = 5,000)
    # at most this many held-out images get L_k: at k = 1,000 one image of a 64×64 conv model
    # took 0.52 s (dSprites VAE) to 0.72 s (CelebA β-TCVAE) on one thread of our loaded 2-core
    # machine, so 500 take 4-6 minutes; the 28×28 MLP's, 11-35 ms (docs/metrics.md)
    likelihood_images: int = 500

    def __post_init__(self) -> None:
        if self.points < 20 or self.test_points < 10:
            raise EvaluationError("points must be ≥ 20 and test points ≥ 10")
        if self.bins < 2:
            raise EvaluationError(f"bins must be at least 2, got {self.bins}")
        if not 0 < self.held_out_share <= 1:
            raise EvaluationError(
                f"the held-out share must be in (0, 1], got {self.held_out_share}"
            )
        if self.k < 1 or self.likelihood_images < 1 or self.probe_images < 2 * PROBE_FOLDS:
            raise EvaluationError(
                f"k and likelihood images must be ≥ 1, probe images ≥ {2 * PROBE_FOLDS}"
            )

    def fields(self) -> dict[str, Any]:
        return asdict(self)


# --- factor classes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FactorClasses:
    """One factor column as classes: `classes` (n,) int64, −1 where an image has no value."""

    name: str
    kind: str  # "categorical" | "ordered"
    classes: np.ndarray
    n_classes: int
    how: str  # in words: "its 4 categories", "its 15 distinct values, each a class", ...


def factor_classes(
    column: Column, max_classes: int = MAX_FACTOR_CLASSES, bins: int = FACTOR_BINS
) -> FactorClasses:
    """A categorical column's codes; an ordered column's distinct values as classes in ascending
    order where there are at most `max_classes` (every rendered factor), else `bins` bins of
    equal count (edges at its quantiles; tied values never split, so a bin may hold more)."""
    if column.kind == "categorical":
        codes = column.values.astype(np.int64)
        return FactorClasses(
            column.name, "categorical", codes, len(column.categories),
            f"its {len(column.categories)} categories",
        )  # fmt: skip
    values = column.values
    known = ~np.isnan(values)
    classes = np.full(len(values), -1, dtype=np.int64)
    distinct = np.unique(values[known])
    if len(distinct) <= max_classes:
        classes[known] = np.searchsorted(distinct, values[known])
        how = f"its {len(distinct)} distinct values, each a class (ascending)"
        return FactorClasses(column.name, "ordered", classes, len(distinct), how)
    edges = np.unique(np.quantile(values[known], np.arange(1, bins) / bins))
    binned = np.searchsorted(edges, values[known], side="right")
    used, classes[known] = np.unique(binned, return_inverse=True)
    how = (
        f"its {len(distinct):,} distinct values (more than {max_classes}) binned into "
        f"{len(used)} equal-count bins at its {bins}-quantiles"
    )
    return FactorClasses(column.name, "ordered", classes, len(used), how)


# --- the disentanglement metrics ---------------------------------------------------------------


def disentanglement_rows(usable: np.ndarray, s: SetScoreSettings) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) image indices, ascending, drawn from the `usable` images (encoded) with
    the settings' seed: `test_points` test and `points` train images, disjoint; a set with
    fewer than both gives a third of its images to test and the rest to train."""
    rows = np.flatnonzero(usable)
    order = np.random.default_rng(s.seed).permutation(rows)
    if len(rows) >= s.points + s.test_points:
        test, train = order[: s.test_points], order[s.test_points : s.test_points + s.points]
    else:
        n_test = len(rows) // 3
        test, train = order[:n_test], order[n_test:]
    return np.sort(train), np.sort(test)


def modularity_of(mi: np.ndarray) -> float | None:
    """Modularity (Ridgeway & Mozer 2018) from a (D, K) mutual-information matrix, as
    scores.modularity_explicitness computes it; None for one factor, where it is undefined."""
    k = mi.shape[1]
    if k < 2:
        return None
    squared = mi**2
    top = squared.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (squared.sum(axis=1) - top) / (top * (k - 1))
    return float(np.where(top > 0, 1.0 - delta, 0.0).mean())


def _one_factor(
    mu: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, s: SetScoreSettings
) -> dict[str, Any]:
    """Every per-factor piece of the metrics for one factor (classes y) on its own images."""
    x, x_test = mu[train], mu[test]
    f, f_test = y[train][:, None], y[test][:, None]  # (N, 1): one factor
    mig = scores.mig(x, f, s.bins)
    dci = scores.dci(x, f, x_test, f_test, seed=s.seed)
    sap = scores.sap(x, f, x_test, f_test)
    explicit: float | None
    try:
        explicit = reference.explicitness(x, f, x_test, f_test)["explicitness"]
    except ValueError:  # a test set lacking a class the training set has: no ROC curve
        explicit = None
    return {
        "mig": float(np.asarray(mig["per_factor"])[0]),
        "mi": np.asarray(mig["mi_matrix"])[:, 0],
        "importance": np.asarray(dci["importance"])[:, 0],
        "accuracy": float(dci["informativeness"]),  # type: ignore[arg-type]
        "sap": float(np.asarray(sap["per_factor"])[0]),
        "explicitness": None if explicit is None or math.isnan(explicit) else float(explicit),
    }


def disentanglement(
    mu: np.ndarray,
    usable: np.ndarray,
    factors: list[FactorClasses],
    s: SetScoreSettings,
    code: str = "code = posterior mean μ",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """MIG, DCI, SAP, modularity and explicitness of codes `mu` (n, D) over `factors`, on the
    `usable` images (n,) bool, each factor on those of them that have its value → {"factors":
    what each factor is and how many images scored it, "scores": name → {"value",
    "per_factor", "settings"}, "left_out": name → why, "mi_matrix": (D, K) nats}."""
    train, test = disentanglement_rows(usable, s)
    out: dict[str, Any] = {"factors": [], "scores": {}, "left_out": dict(LEFT_OUT),
                           "mi_matrix": None, "train": len(train), "test": len(test)}  # fmt: skip
    per: dict[str, dict[str, Any]] = {}
    for i, fc in enumerate(factors):
        if progress is not None:
            progress(i / max(len(factors), 1), f"scoring factor {fc.name}")
        tr, te = train[fc.classes[train] >= 0], test[fc.classes[test] >= 0]
        info = {"name": fc.name, "kind": fc.kind, "classes": fc.n_classes, "how": fc.how,
                "train": len(tr), "test": len(te), "skipped": None}  # fmt: skip
        present = len(np.unique(fc.classes[tr]))
        if present < 2 or len(te) == 0:
            info["skipped"] = (
                f"its training images hold {present} class{'es' if present != 1 else ''} and its "
                f"test images {len(te)}: nothing to score"
            )
        else:
            per[fc.name] = _one_factor(mu, fc.classes, tr, te, s)
        out["factors"].append(info)
    if not per:
        return out
    names = list(per)
    mi = np.stack([per[n]["mi"] for n in names], axis=1)  # (D, K)
    importance = np.stack([per[n]["importance"] for n in names], axis=1)  # (D, K)
    settings = describe(s, len(train), len(test), code, len(names))

    def entry(name: str, value: float | None, per_factor: dict[str, float | None] | None) -> None:
        out["scores"][name] = {"value": None if value is None else round(value, 4),
                               "per_factor": per_factor, "settings": settings[name]}  # fmt: skip

    entry("mig", float(np.mean([per[n]["mig"] for n in names])),
          {n: round(per[n]["mig"], 4) for n in names})  # fmt: skip
    entry("dci_et_disentanglement", scores.importance_weighted_purity(importance), None)
    entry("dci_et_completeness", scores.importance_weighted_purity(importance.T), None)
    entry("dci_et_informativeness", float(np.mean([per[n]["accuracy"] for n in names])),
          {n: round(per[n]["accuracy"], 4) for n in names})  # fmt: skip
    entry("sap_tree", float(np.mean([per[n]["sap"] for n in names])),
          {n: round(per[n]["sap"], 4) for n in names})  # fmt: skip
    entry("modularity", modularity_of(mi), None)
    explicit = {n: per[n]["explicitness"] for n in names}
    known = [v for v in explicit.values() if v is not None]
    entry("explicitness", float(np.mean(known)) if known else None,
          {n: None if v is None else round(v, 4) for n, v in explicit.items()})  # fmt: skip
    out["mi_matrix"] = np.round(mi, 4).tolist()
    out["scored_factors"] = names
    return out


def describe(s: SetScoreSettings, train: int, test: int, code: str, k: int) -> dict[str, str]:
    """Each metric's settings on a data set, in words."""
    split = (f"{train:,} train / {test:,} test images drawn from the set's encoded images "
             f"(seed {s.seed}; all splits; images without a factor's value left out for "
             "it)")  # fmt: skip
    factors = f"{k} factor{'s' if k != 1 else ''}"
    mi = f"{s.bins}-bin histogram of each latent over its own range, MI in nats"
    dci = (f"{split}; per factor ExtraTreesClassifier(50 trees, all latents at every split, "
           f"min leaf 0.5%, seed {s.seed}), impurity importances")  # fmt: skip
    return {
        "mig": f"{split} (the train images); {code}; {mi}; top-two gap ÷ factor entropy, mean "
        f"over {factors}",
        "dci_et_disentanglement": f"{dci}; importance-weighted 1 − entropy of each latent's "
        f"importances over factors; {code}; {factors}",
        "dci_et_completeness": f"{dci}; importance-weighted 1 − entropy of each factor's "
        f"importances over latents; {code}; {factors}",
        "dci_et_informativeness": f"{dci}; mean test accuracy over {factors}; {code}",
        "sap_tree": f"{split}; per latent and factor a DecisionTreeClassifier(min leaf 1%) on that "
        f"latent alone, chance-adjusted balanced test accuracy; top-two gap per factor, mean "
        f"over {factors}; {code}",
        "modularity": f"{split} (the train images); {mi}; per latent 1 − spread of its MI² over "
        f"factors, mean over latents; {code}; {factors} (undefined for one)",
        "explicitness": f"{split}; latents standardised; per factor LogisticRegression "
        f"(sklearn's defaults, as disentanglement_lib), macro test ROC AUC over its values, mean "
        f"over {factors}; {code}",
    }


# --- linear probes -----------------------------------------------------------------------------


def column_probes(
    mu: np.ndarray, rows: np.ndarray, columns: Iterable[Column], seed: int = 0,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """For each categorical column, test_scores.linear_probe of its class from μ on the images
    `rows` that have a value (held-out accuracy, 5-fold stratified cross-validation, C chosen
    in each fold), beside chance: the most common class's share (always guessing it) and one
    over the classes present. A column that cannot be probed says why."""
    cols = [c for c in columns if c.kind == "categorical"]
    out = []
    for i, c in enumerate(cols):
        if progress is not None:
            progress(i / max(len(cols), 1), f"probing column {c.name}")
        r = rows[c.values[rows] >= 0]
        labels = c.values[r]
        counts = np.bincount(labels, minlength=len(c.categories)) if len(r) else np.zeros(1)
        entry: dict[str, Any] = {
            "column": c.name, "role": c.role, "classes": int((counts > 0).sum()),
            "images": len(r), "mean": None, "std": None, "converged": None, "skipped": None,
            "chance_majority": round(float(counts.max() / len(r)), 4) if len(r) else None,
            "chance_uniform": round(1 / max(int((counts > 0).sum()), 1), 4),
        }  # fmt: skip
        try:
            probe = linear_probe(mu[r], labels, seed=seed, choose_c=True)
        except EvaluationError as e:
            entry["skipped"] = str(e)
        else:
            entry |= {k: probe[k] for k in ("mean", "std", "converged")}
        out.append(entry)
    return out


PROBE_SETTINGS = (
    f"logistic regression (L2, C chosen in each fold by an inner 3-fold cross-validation from "
    f"{', '.join(f'{c:g}' for c in PROBE_C_GRID)}; lbfgs, at most {PROBE_MAX_ITER:,} "
    f"iterations) on standardised μ, {PROBE_FOLDS}-fold stratified cross-validation (shuffled, "
    "seed as set); held-out accuracy, mean ± std over folds (test_scores.linear_probe)"
)


# --- the likelihood ----------------------------------------------------------------------------


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(values.mean()), se


def _bpd(nats: float, dims: int) -> float:
    return round(float(bits_per_dim(torch.tensor(nats, dtype=torch.float64), dims)), 5)


def estimate(values: np.ndarray, dims: int, estimator: str) -> dict[str, Any]:
    """Mean ± standard error over images of per-image log-likelihood figures (nats), and in
    bits per dimension."""
    mean, se = _mean_se(values)
    return {
        "mean": round(mean, 4), "se": round(se, 4), "bits_per_dim": _bpd(mean, dims),
        "bits_per_dim_se": round(se / (dims * math.log(2)), 5), "estimator": estimator,
    }  # fmt: skip


def encoding_elbo(nll: np.ndarray, kl: np.ndarray) -> np.ndarray:
    """Per image, −log p(x | z = μ) − KL(q(z|x) ‖ p(z)), nats, from an encoding's `nll` (n,)
    and `kl`: per latent (n, D), summed (against N(0, I)), or each image's total (n,)
    (encoding_kl): the ELBO with its reconstruction term read at the posterior mean instead of
    averaged over q(z|x) (one decoder pass per image, kept in the encoding)."""
    kl = kl.astype(np.float64)
    return -(nll.astype(np.float64) + (kl.sum(axis=1) if kl.ndim == 2 else kl))


def encoding_kl(prior: Prior, mu: np.ndarray, logvar: np.ndarray, kl: np.ndarray) -> np.ndarray:
    """Each image's KL(q(z|x) ‖ p(z)) (n,) from a kept encoding's μ, log σ² and KL per latent
    (n, D): the per-latent KL summed where the prior is N(0, I); else estimated again from μ and
    log σ² (app.models.priors.prior_kl), a mixture prior's per-latent figures being marginal
    KLs, which do not sum to it."""
    if isinstance(prior, StandardNormal):
        return kl.astype(np.float64).sum(axis=1)
    total = prior_kl(torch.from_numpy(mu).float(), torch.from_numpy(logvar).float(), prior).total
    return total.double().numpy()


def binarised(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Images in [0, 1] (B, C, S, S) → {0, 1} float32, each pixel 1 with probability its grey
    level (fashion_mnist.binarise, on the levels as 8-bit values: the same bits as the
    built-in test split's for the same images and generator)."""
    levels = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    return binarise(levels, rng).astype(np.float32)


Batches = Iterable[tuple[np.ndarray, np.ndarray | None]]  # (images in [0, 1], CVAE labels)


def likelihood(
    model: LatentModel, batches: Batches, k: int, total: int, progress: Progress | None = None
) -> dict[str, np.ndarray]:
    """Per image: "reconstruction" E_q[log p(x|z)] over ELBO_SAMPLES draws, "kl", "elbo" and
    the bound "bound" L_k (app.metrics.likelihood), float64 nats, as
    test_scores.likelihood_scores computes them (the same generators, seeded SAMPLING_SEED for
    L_k and SAMPLING_SEED + 1 for the ELBO, and the same draws for the same images in the same
    order, LIKELIHOOD_BATCH at a time). A Bernoulli model's images are binarised once from a
    generator seeded TEST_BINARISATION_SEED, in order."""
    d = model.description
    if not d.stochastic:
        raise EvaluationError("an autoencoder has no posterior: its likelihood has no bound")
    bound_gen = torch.Generator().manual_seed(SAMPLING_SEED)
    elbo_gen = torch.Generator().manual_seed(SAMPLING_SEED + 1)
    bits = np.random.default_rng(TEST_BINARISATION_SEED)
    recon, kl, bound, done = [], [], [], 0
    for images, labels in batches:
        for start in range(0, len(images), LIKELIHOOD_BATCH):
            x = images[start : start + LIKELIHOOD_BATCH]
            if d.likelihood == "bernoulli":
                x = binarised(x, bits)
            xb = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            lb = None if labels is None else torch.from_numpy(labels[start : start + len(x)])
            r, q = elbo_terms(model, xb, ELBO_SAMPLES, elbo_gen, lb)
            recon.append(r.numpy())
            kl.append(q.numpy())
            bound.append(importance_weighted_bound(model, xb, k, bound_gen, lb).numpy())
            done += len(x)
            if progress is not None:
                progress(done / max(total, 1), f"L_k, k = {k:,}: {done:,} of {total:,} images")
    out = {"reconstruction": np.concatenate(recon), "kl": np.concatenate(kl)}
    return out | {"elbo": out["reconstruction"] - out["kl"], "bound": np.concatenate(bound)}


def likelihood_named(likelihood: str, gaussian_sigma: float) -> str:
    """The likelihood the bound is under, in words."""
    if likelihood == "bernoulli":
        return (f"Bernoulli on binarised pixels (the scored images binarised once, in index "
                f"order, from seed {TEST_BINARISATION_SEED}, each pixel 1 with probability its "
                "grey level)")  # fmt: skip
    return (f"Gaussian with fixed σ = {gaussian_sigma:g} on levels in [0, 1] (a density: not "
            "comparable with Bernoulli figures)")  # fmt: skip
