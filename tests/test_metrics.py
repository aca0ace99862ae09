"""Disentanglement metrics that would catch a wrong implementation: the ground truth scores ≈ 1,
noise ≈ 0 (or chance), a permuted/rescaled/sign-flipped truth still ≈ 1, and a code that carries
two factors is penalised."""

from __future__ import annotations

import numpy as np
import pytest

from app.metrics import scores

SIZES = np.array([3, 6, 40, 32, 32])  # dSprites: shape, scale, orientation, x, y


def sample(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, SIZES, size=(n, len(SIZES)))


def truth(classes: np.ndarray) -> np.ndarray:
    """The factors themselves as a representation: values in [0, 1]."""
    return classes / (SIZES - 1)


def shuffled_truth(classes: np.ndarray) -> np.ndarray:
    """A permuted, rescaled and sign-flipped copy of the factors, with 5 idle codes."""
    codes = truth(classes)[:, [3, 0, 4, 2, 1]] * np.array([-2.0, 5.0, 1.5, -1.0, 7.0])
    idle = np.zeros((len(classes), 5))
    return np.concatenate([codes, idle], axis=1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return sample(rng, 3000), sample(rng, 1500), rng


def noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 10))


def test_mig(data):
    train, _, _ = data
    assert scores.mig(truth(train), train)["mig"] > 0.85  # 20 bins cap the 32- and 40-value factors
    assert scores.mig(shuffled_truth(train), train)["mig"] > 0.85
    assert scores.mig(noise(len(train), 1), train)["mig"] < 0.05
    entangled = truth(train).copy()
    entangled[:, 3] = entangled[:, 3] + 8 * entangled[:, 4]  # x and y in one code
    assert scores.mig(entangled, train)["mig"] < scores.mig(truth(train), train)["mig"] - 0.2


def test_modularity_and_explicitness(data):
    train, test, _ = data
    good = scores.modularity_explicitness(truth(train), train, truth(test), test)
    assert good["modularity"] > 0.95 and good["explicitness"] > 0.8
    bad = scores.modularity_explicitness(noise(len(train), 1), train, noise(len(test), 2), test)
    assert bad["explicitness"] < 0.6


def test_beta_vae_score(data):
    rng = np.random.default_rng(3)
    good = scores.beta_vae_score(truth, sample, rng, batch_size=16, num_train=300, num_eval=150)
    assert good["eval_accuracy"] > 0.95
    chance = scores.beta_vae_score(
        lambda c: noise(len(c), int(rng.integers(1 << 30))),
        sample,
        rng,
        batch_size=16,
        num_train=300,
        num_eval=150,
    )
    assert chance["eval_accuracy"] < 0.45  # chance is 1/5


def test_factor_vae_score(data):
    rng = np.random.default_rng(4)
    kw = dict(batch_size=32, num_train=300, num_eval=150, num_variance_estimate=2000)
    good = scores.factor_vae_score(shuffled_truth, sample, rng, **kw)
    assert good["eval_accuracy"] > 0.95 and good["active_codes"] == 5
    chance = scores.factor_vae_score(
        lambda c: noise(len(c), int(rng.integers(1 << 30))), sample, rng, **kw
    )
    assert chance["eval_accuracy"] < 0.45


def entangled(classes: np.ndarray) -> np.ndarray:
    """The truth with x and y mixed into one code (y also keeps its own)."""
    codes = truth(classes).copy()
    codes[:, 3] = codes[:, 3] + 8 * codes[:, 4]
    return codes


def test_sap(data):
    train, test, _ = data
    for represent in (truth, shuffled_truth):  # a tree on one code ignores its order and scale
        good = scores.sap(represent(train), train, represent(test), test)
        assert good["sap"] > 0.95 and min(good["per_factor"]) > 0.9
    assert scores.sap(noise(len(train), 1), train, noise(len(test), 2), test)["sap"] < 0.05
    mixed = scores.sap(entangled(train), train, entangled(test), test)
    assert mixed["per_factor"][3] < 0.2  # x alone is no longer predictable from one code


def test_dci(data):
    train, test, _ = data
    for represent in (truth, shuffled_truth):
        good = scores.dci(represent(train), train, represent(test), test)
        assert good["disentanglement"] > 0.95 and good["completeness"] > 0.95
        assert good["informativeness"] > 0.95
    bad = scores.dci(noise(len(train), 1), train, noise(len(test), 2), test)
    assert bad["disentanglement"] < 0.05 and bad["completeness"] < 0.05
    chance = np.mean(1 / SIZES)  # informativeness is the library's plain accuracy
    assert abs(bad["informativeness"] - chance) < 0.03
    mixed = scores.dci(entangled(train), train, entangled(test), test)
    assert mixed["disentanglement"] < 0.9  # the truth scores 1


def test_dci_weights_codes_by_their_importance():
    one_factor_per_code = np.eye(3)
    assert scores.importance_weighted_purity(one_factor_per_code) == pytest.approx(1.0)
    everything_everywhere = np.ones((3, 3))
    assert scores.importance_weighted_purity(everything_everywhere) == pytest.approx(0.0, abs=1e-6)
    idle_code = np.vstack([np.eye(3), np.zeros((1, 3))])  # an unused code weighs nothing
    assert scores.importance_weighted_purity(idle_code) == pytest.approx(1.0)
