"""Disentanglement metrics computed as google-research/disentanglement_lib computes them
(Locatello et al. 2019, `evaluation/metrics/*.py` at commit 86a644d, with the settings of its
`unsupervised_study_v1` metric configs): the numbers a published table quotes under these names.

Written here, not imported (the library needs TensorFlow 1 and gin), and shown equal to a copy of
the library's own functions in the tests (tests/reference/, with its Apache-2.0 licence): to 1e-9
on the same arrays, and for the two sampling-based scores the same result from the same seed, the
draws made in the library's order from a `numpy.random.RandomState`.

Arrays as in app/metrics/scores.py: codes (N, D) float, factors (N, K) int classes. MIG and
modularity are scores.py's own (they already are the library's, bin for bin); the fast variants
that depart from the library (scores.dci, scores.sap) keep names of their own on the card.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.svm import LinearSVC

from app.metrics.scores import (
    dci_scores,
    discretize,
    mig,
    modularity_of,
    mutual_info_matrix,
)

__all__ = ["beta_vae", "dci", "explicitness", "factor_vae", "mig", "modularity", "sap"]

# factor classes (n, K) → codes (n, D): rendering the images and encoding them, or any function
Represent = Callable[[np.ndarray], np.ndarray]
PRUNE_STD = 0.05  # FactorVAE: codes of standard deviation below this are left out (its gin)


def _logistic(x: np.ndarray, y: np.ndarray) -> LogisticRegression:
    """LogisticRegression() fitted as the library fits it: sklearn's defaults, 100 iterations of
    lbfgs, which stop before convergence on some codes (the number is still the library's; the
    warning saying so is silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression().fit(x, y)


def modularity(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """Modularity (Ridgeway & Mozer 2018), the library's `modularity` of the mutual information
    of 20-bin discretised codes (scores.py's, which is it)."""
    return modularity_of(mutual_info_matrix(discretize(codes, bins), factors))


def dci(
    codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray,
    random_state: np.random.RandomState | None = None,
    on_factor: Callable[[int, int], None] | None = None,
) -> dict[str, float | list[list[float]]]:  # fmt: skip
    """DCI (Eastwood & Williams 2018), the library's `dci.py`: per factor a
    GradientBoostingClassifier (sklearn's defaults: 100 stages of depth-3 trees, one tree per
    class per stage) on all codes; its absolute impurity importances fill that factor's column
    of the (D, K) importance matrix; disentanglement and completeness are its importance-weighted
    1 − entropy by rows and by columns; informativeness its mean test accuracy (and train).
    Minutes per model: `on_factor(k, K)` is called as factor k of K starts, for progress.

    The boosted trees draw from a random state to order the codes they try at each split, which
    decides between equally good splits: the library leaves it to numpy's global one, so its
    DCI is not reproducible (on 200 dSprites points two calls gave D 0.330 and 0.335). Here every
    factor's model draws from `random_state` in turn (None: numpy's global one, as the library);
    one made from a seed gives what the library gives after `np.random.seed` of that seed."""
    d, k = codes.shape[1], factors.shape[1]
    importance = np.zeros((d, k))
    train_acc, test_acc = [], []
    for f in range(k):
        if on_factor is not None:
            on_factor(f, k)
        model = GradientBoostingClassifier(random_state=random_state)
        model.fit(codes, factors[:, f])
        importance[:, f] = np.abs(model.feature_importances_)
        train_acc.append(float(np.mean(model.predict(codes) == factors[:, f])))
        test_acc.append(float(np.mean(model.predict(codes_test) == factors_test[:, f])))
    return dci_scores(importance, train_acc, test_acc)


def sap(
    codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray
) -> dict[str, float | list[list[float]]]:
    """SAP (Kumar et al. 2018), the library's `sap_score.py` with discrete factors: per code and
    factor, LinearSVC(C=0.01, class_weight="balanced") fitted on that code alone, scored by plain
    test accuracy; per factor the gap between its two best codes, averaged over factors. (An
    unrelated code scores chance, 1/K_f, so a perfect code's gap is at most 1 − 1/K_f.)"""
    d, k = codes.shape[1], factors.shape[1]
    score = np.zeros((d, k))
    for c in range(d):
        for f in range(k):
            svc = LinearSVC(C=0.01, class_weight="balanced").fit(codes[:, [c]], factors[:, f])
            score[c, f] = np.mean(svc.predict(codes_test[:, [c]]) == factors_test[:, f])
    ordered = np.sort(score, axis=0)
    return {"sap": float(np.mean(ordered[-1] - ordered[-2])), "score_matrix": score.tolist()}


def explicitness(
    codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray
) -> dict[str, float]:
    """Explicitness (Ridgeway & Mozer 2018), the library's `modularity_explicitness.py`: codes
    standardised by the training points' mean and standard deviation; per factor
    LogisticRegression() (sklearn's defaults, 100 iterations) on all codes, scored by ROC AUC
    of its class probabilities against the one-hot classes, averaged over classes (macro);
    averaged over factors, on the test points (and the training points). Two cases where the
    library fails instead: a constant code (it divides by zero) is left unscaled, and a class
    the test points lack (it binarises their labels alone, so the columns no longer match the
    classifier's; only with far fewer points than its 5,000) is left out of the average."""
    mean, std = codes.mean(axis=0), codes.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x, x_test = (codes - mean) / std, (codes_test - mean) / std
    train: list[float] = []
    test: list[float] = []
    for f in range(factors.shape[1]):
        model = _logistic(x, factors[:, f])
        for points, y, out in ((x, factors[:, f], train), (x_test, factors_test[:, f], test)):
            # one-hot over the classifier's classes: MultiLabelBinarizer's columns where the
            # points hold every class
            truth = (y[:, None] == model.classes_[None, :]).astype(np.int64)
            held = truth.sum(axis=0)
            scored = (held > 0) & (held < len(y))
            out.append(roc_auc_score(truth[:, scored], model.predict_proba(points)[:, scored]))
    return {"explicitness": float(np.mean(test)), "explicitness_train": float(np.mean(train))}


def sample_factors(
    factor_sizes: Sequence[int], n: int, random_state: np.random.RandomState
) -> np.ndarray:
    """n factor-class rows drawn as the library's ground-truth data sets draw them: a column at a
    time, `random_state.randint(size, size=n)`."""
    out = np.zeros((n, len(factor_sizes)), dtype=np.int64)
    for i, size in enumerate(factor_sizes):
        out[:, i] = random_state.randint(size, size=n)
    return out


def beta_vae(
    represent: Represent, factor_sizes: Sequence[int], random_state: np.random.RandomState,
    batch_size: int = 64, num_train: int = 10_000, num_eval: int = 5_000,
) -> dict[str, float]:  # fmt: skip
    """The β-VAE score (Higgins et al. 2017), the library's `beta_vae.py`: a point is the mean
    |Δcode| over `batch_size` pairs of images that share one factor (drawn uniformly); a
    LogisticRegression() (sklearn's defaults) learns which factor from `num_train` points and is
    scored on `num_eval` more. Every draw is made in the library's order; the codes of all points
    are asked for in one call (the representation draws nothing)."""
    x_train, y_train = _beta_vae_points(represent, factor_sizes, random_state, batch_size,
                                        num_train)  # fmt: skip
    model = _logistic(x_train, y_train)
    x_eval, y_eval = _beta_vae_points(represent, factor_sizes, random_state, batch_size, num_eval)
    return {
        "train_accuracy": float(np.mean(model.predict(x_train) == y_train)),
        "eval_accuracy": float(model.score(x_eval, y_eval)),
    }


def _beta_vae_points(
    represent: Represent, factor_sizes: Sequence[int], random_state: np.random.RandomState,
    batch_size: int, n: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    labels, firsts, seconds = np.zeros(n, dtype=np.int64), [], []
    for i in range(n):
        labels[i] = random_state.randint(len(factor_sizes))
        first = sample_factors(factor_sizes, batch_size, random_state)
        second = sample_factors(factor_sizes, batch_size, random_state)
        second[:, labels[i]] = first[:, labels[i]]
        firsts.append(first)
        seconds.append(second)
    codes = represent(np.concatenate(firsts + seconds))
    a, b = codes.reshape(2, n, batch_size, -1)
    return np.abs(a - b).mean(axis=1), labels


def factor_vae(
    represent: Represent, factor_sizes: Sequence[int], random_state: np.random.RandomState,
    batch_size: int = 64, num_train: int = 10_000, num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
) -> dict[str, float | int]:  # fmt: skip
    """The FactorVAE score (Kim & Mnih 2018), the library's `factor_vae.py`: each code's variance
    (ddof 1) over `num_variance_estimate` images; codes of standard deviation below 0.05 left
    out; a vote fixes one factor over `batch_size` images and names the kept code of least
    variance relative to its own; each code votes for the factor it names most often over
    `num_train` votes, scored on `num_eval` more. `active_codes` is the number kept (the library
    reports the number of codes there)."""
    global_var = represent(sample_factors(factor_sizes, num_variance_estimate, random_state)).var(
        axis=0, ddof=1
    )
    active = np.sqrt(global_var) >= PRUNE_STD
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "active_codes": 0}
    train = _factor_vae_votes(represent, factor_sizes, random_state, batch_size, num_train,
                              global_var, active)  # fmt: skip
    classifier = np.argmax(train, axis=0)
    columns = np.arange(train.shape[1])
    test = _factor_vae_votes(represent, factor_sizes, random_state, batch_size, num_eval,
                             global_var, active)  # fmt: skip
    return {
        "train_accuracy": float(train[classifier, columns].sum() / train.sum()),
        "eval_accuracy": float(test[classifier, columns].sum() / test.sum()),
        "active_codes": int(active.sum()),
    }


def _factor_vae_votes(
    represent: Represent, factor_sizes: Sequence[int], random_state: np.random.RandomState,
    batch_size: int, n: int, global_var: np.ndarray, active: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """(K, D) votes; as the library, a vote's column is the code's place among the kept codes."""
    fixed, batches = np.zeros(n, dtype=np.int64), []
    for i in range(n):
        fixed[i] = random_state.randint(len(factor_sizes))
        batch = sample_factors(factor_sizes, batch_size, random_state)
        batch[:, fixed[i]] = batch[0, fixed[i]]
        batches.append(batch)
    codes = represent(np.concatenate(batches)).reshape(n, batch_size, -1)
    local = codes.var(axis=1, ddof=1)[:, active] / global_var[active]
    votes = np.zeros((len(factor_sizes), len(global_var)), dtype=np.int64)
    np.add.at(votes, (fixed, local.argmin(axis=1)), 1)
    return votes
