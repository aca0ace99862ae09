"""app/metrics/reference.py against disentanglement_lib's own functions (a copy in
tests/reference/, Apache-2.0): the same numbers on the same arrays — the shipped
dsprites-beta-vae's μ of dSprites images drawn with a fixed seed (tests/data/reference_codes.npz,
written by bench/reference_arrays.py) — and for the two sampling-based scores the same result
from the same seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.metrics import reference, scores
from tests.reference import disentanglement_lib_metrics as lib

ARRAYS = Path(__file__).parent / "data" / "reference_codes.npz"
# the library's own LogisticRegression stops at sklearn's 100 iterations, as it always has
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def arrays():
    data = np.load(ARRAYS)
    # the library's arrays are (codes or factors, points): transposed views of the same values
    return {k: data[k] for k in ("codes", "factors", "codes_test", "factors_test")}


def test_the_stored_arrays_are_a_models_codes_not_noise(arrays):
    # the β-VAE's μ carry the factors: MIG well above what shuffled codes give
    shuffled = np.random.default_rng(0).permutation(arrays["codes"])
    mig = scores.mig(arrays["codes"], arrays["factors"])["mig"]
    assert mig > 0.1 > scores.mig(shuffled, arrays["factors"])["mig"]


def test_mig_and_modularity_equal_the_librarys(arrays):
    c, f = arrays["codes"], arrays["factors"]
    theirs = lib._compute_mig(c.T, f.T)["discrete_mig"]
    assert reference.mig(c, f)["mig"] == pytest.approx(theirs, abs=1e-9)
    both = lib.modularity_explicitness_of(
        c.T, f.T, arrays["codes_test"].T, arrays["factors_test"].T
    )
    assert reference.modularity(c, f) == pytest.approx(both["modularity_score"], abs=1e-9)


def test_explicitness_equals_the_librarys(arrays):
    c, f, ct, ft = (arrays[k] for k in ("codes", "factors", "codes_test", "factors_test"))
    theirs = lib.modularity_explicitness_of(c.T, f.T, ct.T, ft.T)
    ours = reference.explicitness(c, f, ct, ft)
    assert ours["explicitness"] == pytest.approx(theirs["explicitness_score_test"], abs=1e-9)
    assert ours["explicitness_train"] == pytest.approx(theirs["explicitness_score_train"], abs=1e-9)


def test_sap_equals_the_librarys_and_is_not_our_fast_variant(arrays):
    c, f, ct, ft = (arrays[k] for k in ("codes", "factors", "codes_test", "factors_test"))
    theirs = lib._compute_sap(c.T, f.T, ct.T, ft.T, continuous_factors=False)["SAP_score"]
    ours = reference.sap(c, f, ct, ft)
    assert ours["sap"] == pytest.approx(theirs, abs=1e-9)
    np.testing.assert_allclose(
        ours["score_matrix"], lib.compute_score_matrix(c.T, f.T, ct.T, ft.T, False), atol=1e-9
    )
    # the tree variant reads the same codes very differently (issue of names, not of bugs)
    assert abs(scores.sap(c, f, ct, ft)["sap"] - ours["sap"]) > 0.05


def test_dci_equals_the_librarys_from_the_same_seed(arrays):
    # 100 / 50 of the points: the library's boosting takes ~7 s on them
    c, f = arrays["codes"][:100], arrays["factors"][:100]
    ct, ft = arrays["codes_test"][:50], arrays["factors_test"][:50]
    # its trees break ties between equal splits with numpy's global random state
    saved = np.random.get_state()
    np.random.seed(5)
    try:
        theirs = lib._compute_dci(c.T, f.T, ct.T, ft.T)
    finally:
        np.random.set_state(saved)
    started = []
    ours = reference.dci(c, f, ct, ft, np.random.RandomState(5), lambda k, n: started.append(k))
    assert started == [0, 1, 2, 3, 4]  # progress, factor by factor
    for key, their_key in (
        ("disentanglement", "disentanglement"), ("completeness", "completeness"),
        ("informativeness", "informativeness_test"),
        ("informativeness_train", "informativeness_train"),
    ):  # fmt: skip
        assert ours[key] == pytest.approx(theirs[their_key], abs=1e-9), key
    # the importance matrix is the boosted trees', not our extra trees'
    fast = scores.dci(c, f, ct, ft)
    assert not np.allclose(fast["importance"], ours["importance"], atol=1e-3)


class ToyGroundTruth:
    """A ground truth for both sides: 5 factors; an observation is its factor classes (the
    library's `sample_observations_from_factors` draws nothing for dSprites either)."""

    sizes = (3, 6, 10, 8, 8)
    num_factors = 5

    def sample_factors(self, num, random_state):
        return reference.sample_factors(self.sizes, num, random_state)

    def sample_observations_from_factors(self, factors, random_state):
        return factors.astype(np.float64)

    def sample_observations(self, num, random_state):
        return self.sample_observations_from_factors(
            self.sample_factors(num, random_state), random_state
        )


MIX = np.random.default_rng(7).normal(size=(5, 6))
MIX[:, 5] = 0.001  # a code with next to no spread: FactorVAE leaves it out


def represent(observations: np.ndarray) -> np.ndarray:
    """A fixed, entangled code: a linear mix of the factors plus a bend, per image."""
    x = np.asarray(observations, dtype=np.float64)
    codes = x @ MIX
    codes[:, 0] += 0.3 * np.sin(x[:, 0] * x[:, 2])
    return codes


def test_the_library_draws_factors_as_we_do():
    # one RandomState, its draws a factor column at a time, in the library's order
    ours = reference.sample_factors(ToyGroundTruth.sizes, 7, np.random.RandomState(3))
    rs = np.random.RandomState(3)
    theirs = np.stack([rs.randint(s, size=7) for s in ToyGroundTruth.sizes], axis=1)
    np.testing.assert_array_equal(ours, theirs)


def test_beta_vae_score_is_the_librarys_from_the_same_seed():
    truth = ToyGroundTruth()
    theirs = lib.compute_beta_vae_sklearn(truth, represent, np.random.RandomState(0),
                                          batch_size=16, num_train=200, num_eval=100)  # fmt: skip
    ours = reference.beta_vae(represent, truth.sizes, np.random.RandomState(0), 16, 200, 100)
    assert ours["eval_accuracy"] == pytest.approx(theirs["eval_accuracy"], abs=1e-12)
    assert ours["train_accuracy"] == pytest.approx(theirs["train_accuracy"], abs=1e-12)
    assert 0.2 < ours["eval_accuracy"] < 1.0  # a score, not a constant
    other = reference.beta_vae(represent, truth.sizes, np.random.RandomState(1), 16, 200, 100)
    assert (other["train_accuracy"], other["eval_accuracy"]) != (
        ours["train_accuracy"],
        ours["eval_accuracy"],
    )  # the seed matters


def test_factor_vae_score_is_the_librarys_from_the_same_seed():
    truth = ToyGroundTruth()
    theirs = lib.compute_factor_vae(truth, represent, np.random.RandomState(0), batch_size=16,
                                    num_train=300, num_eval=150,
                                    num_variance_estimate=500)  # fmt: skip
    ours = reference.factor_vae(represent, truth.sizes, np.random.RandomState(0), 16, 300, 150, 500)
    assert ours["eval_accuracy"] == pytest.approx(theirs["eval_accuracy"], abs=1e-12)
    assert ours["train_accuracy"] == pytest.approx(theirs["train_accuracy"], abs=1e-12)
    # the near-constant code is pruned (std < 0.05); the library reports the count of all codes
    assert ours["active_codes"] == 5 and theirs["num_active_dims"] == 6
