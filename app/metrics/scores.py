"""Disentanglement metrics on a representation of data with known factors.

Each follows disentanglement_lib (Locatello et al. 2019, `evaluation/metrics/*.py`) and its
default settings, named in the docstring. Inputs are plain arrays:

    codes    (N, D) float: the representation of N images (posterior means μ by default)
    factors  (N, K) int:   their ground-truth factor classes

so the same functions score a model, the ground truth itself, or noise (the tests do all three).
The two sampling-based scores (β-VAE, FactorVAE) take a `represent` function and a sampler.

Not here yet (the disentanglement issue): SAP and DCI. disentanglement_lib's DCI fits a
GradientBoostingClassifier per factor, which takes minutes on 10,000 points with 40
orientation classes; its discrete SAP cannot reach 1 even for the true factors of 32- and
40-valued factors (a linear SVM on one code separates few classes). Both need a documented choice.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.preprocessing import LabelBinarizer

Represent = Callable[[np.ndarray], np.ndarray]  # (N, K) factor classes → (N, D) codes


def discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """Histogram discretisation per code dimension (disentanglement_lib's
    `_histogram_discretize`, 20 bins): bin edges span each dimension's own range."""
    out = np.zeros(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], bins)[1]
        out[:, j] = np.digitize(codes[:, j], edges[:-1])
    return out


def mutual_info_matrix(codes_discrete: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(D, K) mutual information in nats between each discretised code and each factor."""
    d, k = codes_discrete.shape[1], factors.shape[1]
    return np.array([[mutual_info_score(factors[:, f], codes_discrete[:, c]) for f in range(k)]
                     for c in range(d)])  # fmt: skip


def entropy(factors: np.ndarray) -> np.ndarray:
    """(K,) entropy in nats of each discrete factor."""
    return np.array(
        [mutual_info_score(factors[:, f], factors[:, f]) for f in range(factors.shape[1])]
    )


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> dict[str, float | list[float]]:
    """Mutual Information Gap (Chen et al. 2018), disentanglement_lib `mig.py`: codes
    discretised into 20 bins; per factor, the gap between the two codes sharing most mutual
    information with it, divided by the factor's entropy; averaged over factors (10,000 points
    by default, chosen by the caller)."""
    mi = mutual_info_matrix(discretize(codes, bins), factors)
    top2 = np.sort(mi, axis=0)[::-1][:2] if mi.shape[0] > 1 else np.vstack([mi, np.zeros_like(mi)])
    per_factor = (top2[0] - top2[1]) / entropy(factors)
    return {"mig": float(per_factor.mean()), "per_factor": per_factor.tolist(),
            "mi_matrix": mi.tolist()}  # fmt: skip


def modularity_explicitness(
    codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray,
    bins: int = 20,
) -> dict[str, float]:  # fmt: skip
    """Modularity and explicitness (Ridgeway & Mozer 2018), disentanglement_lib
    `modularity_explicitness.py`: modularity from the mutual information of 20-bin discretised
    codes, per code 1 − (Σ MI² − max MI²) / (max MI² · (K − 1)), a code that carries nothing
    scoring 0, averaged over codes; explicitness: per factor, one-vs-rest LogisticRegression
    (sklearn defaults) on all codes, mean test ROC AUC over the factor's values (10,000 train /
    5,000 test points)."""
    mi = mutual_info_matrix(discretize(codes, bins), factors)  # (D, K)
    squared = mi**2
    top = squared.max(axis=1)
    k = mi.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (squared.sum(axis=1) - top) / (top * (k - 1))
    per_code = np.where(top > 0, 1.0 - delta, 0.0)  # a code that carries nothing scores 0
    modularity = float(per_code.mean())

    aucs = []
    for f in range(factors.shape[1]):
        y, y_test = factors[:, f], factors_test[:, f]
        if len(np.unique(y)) < 2:
            continue
        clf = LogisticRegression(max_iter=1000).fit(codes, y)
        binarizer = LabelBinarizer().fit(y)
        truth = binarizer.transform(y_test)
        scores = clf.predict_proba(codes_test)
        if truth.shape[1] == 1:  # two classes: LabelBinarizer gives one column
            aucs.append(roc_auc_score(truth[:, 0], scores[:, 1]))
            continue
        per_value = [roc_auc_score(truth[:, i], scores[:, i]) for i in range(truth.shape[1])
                     if 0 < truth[:, i].sum() < len(truth)]  # fmt: skip
        aucs.append(float(np.mean(per_value)))
    return {"modularity": modularity, "explicitness": float(np.mean(aucs))}


def beta_vae_score(
    represent: Represent, sample: Callable[[np.random.Generator, int], np.ndarray],
    rng: np.random.Generator, batch_size: int = 64, num_train: int = 10_000, num_eval: int = 5_000,
) -> dict[str, float]:  # fmt: skip
    """β-VAE score (Higgins et al. 2017), disentanglement_lib `beta_vae.py`: each point is the
    mean absolute difference of the codes of `batch_size` pairs of images that share one randomly
    chosen factor; a LogisticRegression (sklearn defaults) predicts which factor it was; the score
    is its accuracy on `num_eval` fresh points (64 pairs, 10,000 train / 5,000 eval points)."""
    x_train, y_train = _beta_vae_points(represent, sample, rng, batch_size, num_train)
    x_eval, y_eval = _beta_vae_points(represent, sample, rng, batch_size, num_eval)
    model = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    return {"train_accuracy": float(model.score(x_train, y_train)),
            "eval_accuracy": float(model.score(x_eval, y_eval))}  # fmt: skip


def _beta_vae_points(represent, sample, rng, batch_size, n):  # noqa: ANN001, ANN202
    k = sample(rng, 1).shape[1]
    feats, labels = [], []
    for _ in range(n):
        f = int(rng.integers(k))
        a, b = sample(rng, batch_size), sample(rng, batch_size)
        b[:, f] = a[:, f]
        feats.append(np.abs(represent(a) - represent(b)).mean(axis=0))
        labels.append(f)
    return np.array(feats), np.array(labels)


def factor_vae_score(
    represent: Represent, sample: Callable[[np.random.Generator, int], np.ndarray],
    rng: np.random.Generator, batch_size: int = 64, num_train: int = 10_000,
    num_eval: int = 5_000, num_variance_estimate: int = 10_000,
) -> dict[str, float | int]:  # fmt: skip
    """FactorVAE score (Kim & Mnih 2018), disentanglement_lib `factor_vae.py`: codes are divided
    by their global standard deviation (from 10,000 points) and codes with variance below 0.05
    are pruned; each vote fixes one factor over a batch of 64 images and names the code of least
    normalised variance; a majority-vote classifier from code to factor is trained on 10,000
    votes and scored on 5,000 fresh ones. With no active code it scores 0."""
    global_var = represent(sample(rng, num_variance_estimate)).var(axis=0)
    active = global_var > 0.05
    k = sample(rng, 1).shape[1]
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "active_codes": 0}
    train = _factor_vae_votes(represent, sample, rng, batch_size, num_train, global_var, active, k)
    classifier = train.argmax(axis=1)
    test = _factor_vae_votes(represent, sample, rng, batch_size, num_eval, global_var, active, k)
    return {
        "train_accuracy": float(train[np.arange(len(train)), classifier].sum() / train.sum()),
        "eval_accuracy": float(test[np.arange(len(test)), classifier].sum() / test.sum()),
        "active_codes": int(active.sum()),
    }


def _factor_vae_votes(represent, sample, rng, batch_size, n, global_var, active, k):  # noqa: ANN001, ANN202
    votes = np.zeros((len(global_var), k), dtype=np.int64)
    for _ in range(n):
        f = int(rng.integers(k))
        batch = sample(rng, batch_size)
        batch[:, f] = batch[0, f]
        local = np.full(len(global_var), np.inf)
        local[active] = represent(batch).var(axis=0)[active] / global_var[active]
        votes[int(np.argmin(local)), f] += 1
    return votes
