"""Disentanglement metrics on a representation of data with known factors.

Each follows disentanglement_lib (Locatello et al. 2019, `evaluation/metrics/*.py`) and its
default settings, named in the docstring. Inputs are plain arrays:

    codes    (N, D) float: the representation of N images (posterior means μ by default)
    factors  (N, K) int:   their ground-truth factor classes

so the same functions score a model, the ground truth itself, or noise (the tests do all three).
The two sampling-based scores (β-VAE, FactorVAE) take a `represent` function and a sampler.

Two depart from the library where it could not be used as written, each saying how and why:
`dci` (an extremely randomised forest instead of gradient boosting, ~150× faster) and `sap` (a
one-code decision tree scored by chance-adjusted balanced accuracy, instead of a linear SVM
scored by accuracy, which cannot reach 1 even for the true factors).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, mutual_info_score, roc_auc_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.tree import DecisionTreeClassifier

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
    modularity = modularity_of(mutual_info_matrix(discretize(codes, bins), factors))
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


def modularity_of(mi: np.ndarray) -> float:
    """Modularity from the (D, K) mutual information matrix (disentanglement_lib's
    `modularity`): per code 1 − (Σ MI² − max MI²) / (max MI² · (K − 1)), a code that carries
    nothing scoring 0, averaged over codes."""
    squared = mi**2
    top = squared.max(axis=1)
    k = mi.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (squared.sum(axis=1) - top) / (top * (k - 1))
    per_code = np.where(top > 0, 1.0 - delta, 0.0)  # a code that carries nothing scores 0
    return float(per_code.mean())


def dci(
    codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray,
    n_estimators: int = 50, min_samples_leaf: float = 0.005, seed: int = 0,
) -> dict[str, float | list[list[float]]]:  # fmt: skip
    """Disentanglement, completeness and informativeness (Eastwood & Williams 2018),
    disentanglement_lib `dci.py` (10,000 train / 5,000 test points). Per factor, a classifier
    predicts its class from all codes; its feature importances fill that factor's column of a
    (D, K) importance matrix R. Disentanglement: per code, 1 − entropy of its row of R (base K),
    weighted by the code's share of all importance; completeness: per factor, 1 − entropy of its
    column (base D), weighted by the factor's share; informativeness: the classifiers' mean test
    accuracy (chance is the mean of 1/K_f over factors, 0.118 on dSprites).

    Differs from the library in the classifier only. The library's GradientBoostingClassifier
    (sklearn defaults: 100 stages of depth-3 trees) grows one tree per class per stage, so the 40
    orientation and 32 position classes make it slow: 6–8 min per 10,000 points on our 2-core
    machine. We use ExtraTreesClassifier(n_estimators=50, max_features=None,
    min_samples_leaf=0.5 % of the points): impurity importances as the library's, every code
    considered at every split as in boosting, and leaves of at least 0.5 % of the points so that,
    like boosting's shallow trees, the trees stop before fitting noise in idle codes (fully grown
    trees spread importance over them: D falls from 0.21 to 0.05 on our β-VAE). About 2 s, ~150×
    faster. On the same codes of three checkpoints (the β-VAE at two training steps and the VAE;
    10,000 / 5,000 points), boosting gave D 0.211, 0.244, 0.188 and these trees 0.216, 0.253,
    0.224; C 0.250, 0.290, 0.243 against 0.272, 0.313, 0.295; I 0.449, 0.487, 0.421 against
    0.468, 0.499, 0.432: ours reads a little higher, by at most 0.04 (D), 0.05 (C) and 0.02 (I)
    (`bench/metrics_speed.py --compare-dci` measures both).
    """
    d, k = codes.shape[1], factors.shape[1]
    importance = np.zeros((d, k))  # (D codes, K factors)
    train_acc, test_acc = [], []
    for f in range(k):
        forest = ExtraTreesClassifier(
            n_estimators=n_estimators, max_features=None, min_samples_leaf=min_samples_leaf,
            random_state=seed,
        ).fit(codes, factors[:, f])  # fmt: skip
        importance[:, f] = np.abs(forest.feature_importances_)
        train_acc.append(forest.score(codes, factors[:, f]))
        test_acc.append(forest.score(codes_test, factors_test[:, f]))
    return dci_scores(importance, train_acc, test_acc)


def dci_scores(
    importance: np.ndarray, train_acc: list[float], test_acc: list[float]
) -> dict[str, float | list[list[float]]]:
    """D, C and I from a (D, K) importance matrix and each factor's classifier's accuracies."""
    return {
        "disentanglement": importance_weighted_purity(importance),
        "completeness": importance_weighted_purity(importance.T),
        "informativeness": float(np.mean(test_acc)),
        "informativeness_train": float(np.mean(train_acc)),
        "importance": importance.tolist(),
    }


def importance_weighted_purity(importance: np.ndarray) -> float:
    """Σ_rows (1 − H_base=cols(row)) · row's share of the total: DCI disentanglement on an
    importance matrix R (D codes × K factors), completeness on Rᵀ (disentanglement_lib's
    `disentanglement` and `completeness`; the 1e-11 keeps an all-zero row finite)."""
    rows, cols = importance.shape
    if cols == 1:  # one column: every row is as pure as it can be
        purity = np.ones(rows)
    else:
        purity = 1.0 - stats.entropy(importance.T + 1e-11, base=cols)
    total = importance.sum()
    weight = importance.sum(axis=1) / total if total > 0 else np.full(rows, 1.0 / rows)
    return float(np.sum(purity * weight))


def sap(
    codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray,
    min_samples_leaf: float = 0.01,
) -> dict[str, float | list[float] | list[list[float]]]:  # fmt: skip
    """Separated Attribute Predictability (Kumar et al. 2018), disentanglement_lib `sap_score.py`
    with discrete factors (its default; 10,000 train / 5,000 test points): a (D, K) matrix of how
    well each code alone predicts each factor; per factor, the gap between its two best codes;
    averaged over factors.

    Differs from the library in the per-(code, factor) score, so that one code that carries a
    factor can score 1. The library fits LinearSVC(C=0.01, class_weight="balanced") on the single
    code and takes its test accuracy: one-vs-rest lines on one input separate only a few of the
    6, 32 or 40 classes (the true orientation code scores 0.05), and an unrelated code still
    scores chance, 1/K_f, so even a perfect code's gap is at most 1 − 1/K_f (0.65 for shape):
    the true factors themselves score 0.18 on dSprites. We fit
    DecisionTreeClassifier(min_samples_leaf=1 % of the points) on the code — on one input a tree
    is a set of intervals, so it separates every class the code orders or clusters, in any
    order, scale or sign, and its 1 % leaves keep it from fitting a noise code point by point —
    and score it by sklearn's balanced_accuracy_score(adjusted=True) on the test points:
    1 perfect, 0 chance (below chance counts as 0). The true factors score 0.99, noise 0.00.
    """
    d, k = codes.shape[1], factors.shape[1]
    score = np.zeros((d, k))  # (D codes, K factors)
    for c in range(d):
        for f in range(k):
            tree = DecisionTreeClassifier(min_samples_leaf=min_samples_leaf, random_state=0)
            tree.fit(codes[:, [c]], factors[:, f])
            predicted = tree.predict(codes_test[:, [c]])
            with warnings.catch_warnings():  # a small test set may lack a predicted class
                warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
                score[c, f] = balanced_accuracy_score(factors_test[:, f], predicted, adjusted=True)
    score = np.clip(score, 0.0, None)
    top2 = np.sort(score, axis=0)[::-1][:2] if d > 1 else np.vstack([score, np.zeros_like(score)])
    per_factor = top2[0] - top2[1]
    return {"sap": float(per_factor.mean()), "per_factor": per_factor.tolist(),
            "score_matrix": score.tolist()}  # fmt: skip


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
    # all n points' pairs are drawn first (in the library's order), then represented in one call
    k = sample(rng, 1).shape[1]
    labels, firsts, seconds = [], [], []
    for _ in range(n):
        f = int(rng.integers(k))
        a, b = sample(rng, batch_size), sample(rng, batch_size)
        b[:, f] = a[:, f]
        labels.append(f)
        firsts.append(a)
        seconds.append(b)
    codes = represent(np.concatenate(firsts + seconds))  # (2·n·batch, D)
    a_codes, b_codes = codes.reshape(2, n, batch_size, -1)
    return np.abs(a_codes - b_codes).mean(axis=1), np.array(labels)  # (n, D), (n,)


def factor_vae_score(
    represent: Represent, sample: Callable[[np.random.Generator, int], np.ndarray],
    rng: np.random.Generator, batch_size: int = 64, num_train: int = 10_000,
    num_eval: int = 5_000, num_variance_estimate: int = 10_000,
    variance_codes: np.ndarray | None = None,
) -> dict[str, float | int]:  # fmt: skip
    """FactorVAE score (Kim & Mnih 2018), disentanglement_lib `factor_vae.py`: codes are divided
    by their global standard deviation (from 10,000 points, or the given `variance_codes` of
    fresh random images) and codes with variance below 0.05 are pruned; each vote fixes one
    factor over a batch of 64 images and names the code of least normalised variance; a
    majority-vote classifier from code to factor is trained on 10,000 votes and scored on 5,000
    fresh ones. With no active code it scores 0."""
    if variance_codes is None:
        variance_codes = represent(sample(rng, num_variance_estimate))
    global_var = variance_codes.var(axis=0)
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
    # all n batches are drawn first (in the library's order), then represented in one call
    fixed, batches = [], []
    for _ in range(n):
        f = int(rng.integers(k))
        batch = sample(rng, batch_size)
        batch[:, f] = batch[0, f]
        fixed.append(f)
        batches.append(batch)
    codes = represent(np.concatenate(batches)).reshape(n, batch_size, -1)  # (n, batch, D)
    local = np.full((n, len(global_var)), np.inf)
    local[:, active] = codes.var(axis=1)[:, active] / global_var[active]
    votes = np.zeros((len(global_var), k), dtype=np.int64)
    np.add.at(votes, (local.argmin(axis=1), np.array(fixed)), 1)
    return votes
