"""Figure 2's numbers against a representation whose answers are known.

A stand-in encoder maps each image's factor classes straight to μ, by formulas written here
(one latent is shape itself, others bijections of one factor, one a constant, one an
interaction), so every cell mean has a closed form and the mutual information can be computed
by a histogram and plug-in estimator written here too. A stand-in decoder writes z into the
first pixels, so the traversal rows can be read back."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.checkpoints.served import ServedModel
from app.main import create_app
from app.models import ModelConfig
from app.models.interface import ModelDescription, describe_config
from app.settings import Settings
from app.studies import figure2
from app.web.deps import get_model
from app.web.figure2 import get_sampling

SAMPLING = figure2.Sampling(
    per_position=3, per_scale=4, per_orientation=2, n_data=600, traversal_steps=3, seed=5
)
FACTORS = ("shape", "scale", "orientation", "pos_x", "pos_y")
D = 7
LABELS = ("square", "ellipse", "heart")


def g(k: np.ndarray) -> np.ndarray:
    """A bijection of a factor's class with no value on a histogram edge (√ is irrational)."""
    return np.sqrt(np.asarray(k, dtype=np.float64) + 0.3)


def representation(classes: np.ndarray) -> np.ndarray:
    """(N, 5) classes → μ (N, 7)."""
    shape, scale, orient, x, y = (classes[:, i] for i in range(5))
    return np.stack(
        [
            g(x),  # 0: pos_x
            -g(y),  # 1: pos_y, decreasing
            g(scale),  # 2: scale
            g(orient),  # 3: orientation
            shape.astype(np.float64),  # 4: exactly the shape class
            np.full(len(classes), 0.7),  # 5: a constant
            g(x) * (shape == 2),  # 6: pos_x, for hearts only
        ],
        axis=1,
    )


def kl_of(classes: np.ndarray) -> np.ndarray:
    """A per-image "KL" that depends on shape: latent i carries 0.05·(i+1)·(1 + shape)."""
    return 0.05 * np.arange(1, D + 1)[None, :] * (1 + classes[:, :1].astype(np.float64))


class FactorEncoder:
    """Stands in for figure2's ImageEncoder: classes → (μ, KL) by the formulas above."""

    def __init__(self, ckpt: ServedModel, batch_size: int = 0) -> None:
        self.ckpt = ckpt

    def encode(self, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return representation(classes), kl_of(classes)


class WritingDecoder:
    """Writes z into pixels (0, 0…D−1) as logits and the label into pixel (1, 0); the pixel
    means are their sigmoid."""

    def __init__(self, description: ModelDescription) -> None:
        self.description = description

    def encode(self, x, labels=None):  # noqa: ANN001, ANN201
        raise AssertionError("the figure encodes through its ImageEncoder")

    def decode(self, z, labels=None):  # noqa: ANN001, ANN201
        out = torch.full((len(z), 1, 64, 64), -20.0)
        out[:, 0, 0, :D] = z
        if labels is not None:
            out[:, 0, 1, 0] = labels.float()
        return torch.sigmoid(out)


def fake_checkpoint(kind: str = "cvae") -> ServedModel:
    labels = LABELS if kind == "cvae" else ()
    config = ModelConfig(kind=kind, latent_dim=D, label_names=labels, dataset="dsprites")
    return ServedModel("known-answers", WritingDecoder(describe_config(config)))


@pytest.fixture(scope="module")
def data() -> figure2.Figure2Data:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figure2, "ImageEncoder", FactorEncoder)
        return figure2.compute_figure2(fake_checkpoint(), SAMPLING)


# --- an estimator of our own -----------------------------------------------------------------


def bins_of(v: np.ndarray, bins: int = 20) -> np.ndarray:
    """Equal-width bins over the values' own range, the top value in the last bin."""
    lo, hi = v.min(), v.max()
    if hi == lo:
        return np.zeros(len(v), dtype=np.int64)
    pos = (v - lo) / (hi - lo) * bins
    # no value may sit on an inner edge, where rounding could put it either side
    inner = pos[(pos > 1e-9) & (pos < bins - 1e-9)]
    assert np.abs(inner - np.round(inner)).min() > 1e-6 or np.allclose(v, np.round(v))
    return np.minimum(np.floor(pos + 1e-9), bins - 1).astype(np.int64)


def plugin_mi(a: np.ndarray, b: np.ndarray) -> float:
    """Σ p(a, b) log p(a, b) / (p(a) p(b)) over the observed pairs, in nats."""
    n = len(a)
    pairs: dict[tuple[int, int], int] = {}
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        pairs[(x, y)] = pairs.get((x, y), 0) + 1
    pa = {x: c / n for x, c in zip(*np.unique(a, return_counts=True), strict=True)}
    pb = {y: c / n for y, c in zip(*np.unique(b, return_counts=True), strict=True)}
    return sum(c / n * math.log((c / n) / (pa[x] * pb[y])) for (x, y), c in pairs.items())


def plugin_entropy(a: np.ndarray) -> float:
    p = np.unique(a, return_counts=True)[1] / len(a)
    return float(-(p * np.log(p)).sum())


# --- the cell means -----------------------------------------------------------------------------


def test_position_cells_hold_each_latents_mean_at_that_position(data):
    x, y = np.arange(32), np.arange(32)
    assert data.position.shape == (D, 32, 32)
    # [latent, pos_y (row), pos_x (column)]
    np.testing.assert_allclose(data.position[0], np.broadcast_to(g(x)[None, :], (32, 32)))
    np.testing.assert_allclose(data.position[1], np.broadcast_to(-g(y)[:, None], (32, 32)))
    # three shared draws per cell, one of each shape: shape's mean is 1, a heart's share 1/3
    np.testing.assert_allclose(data.position[4], 1.0)
    np.testing.assert_allclose(data.position[5], 0.7)
    np.testing.assert_allclose(data.position[6], np.broadcast_to(g(x)[None, :] / 3, (32, 32)))
    # a latent that ignores position draws a flat map (the same draws in every cell)
    for i in (2, 3):
        assert np.ptp(data.position[i]) < 1e-12


def test_scale_and_orientation_cells_follow_their_factor_per_shape(data):
    assert data.scale.shape == (D, 3, 6) and data.orientation.shape == (D, 3, 40)
    np.testing.assert_allclose(data.scale[2], np.broadcast_to(g(np.arange(6)), (3, 6)))
    np.testing.assert_allclose(data.scale[4], np.broadcast_to(np.arange(3.0)[:, None], (3, 6)))
    np.testing.assert_allclose(data.orientation[3], np.broadcast_to(g(np.arange(40)), (3, 40)))
    np.testing.assert_allclose(
        data.orientation[4], np.broadcast_to(np.arange(3.0)[:, None], (3, 40))
    )
    np.testing.assert_allclose(data.scale[5], 0.7)
    # the interaction is zero for squares and ellipses, one value for hearts at every scale
    np.testing.assert_allclose(data.scale[6, :2], 0.0)
    assert data.scale[6, 2].min() > 0 and np.ptp(data.scale[6, 2]) < 1e-12
    for i in (0, 1):  # position ignores scale and orientation: flat lines
        assert np.ptp(data.scale[i]) < 1e-12 and np.ptp(data.orientation[i]) < 1e-12


# --- the i.i.d. sample: variance, KL, mutual information ----------------------------------------


def test_the_data_sample_is_iid_uniform_and_its_mu_is_its_own(data):
    f = data.sample_factors
    assert f.shape == (SAMPLING.n_data, 5)
    np.testing.assert_array_equal(data.sample_mu, representation(f))
    # drawn uniformly, not one of the sweeps (whose shapes cycle 0, 1, 2, … and whose
    # positions run in order)
    assert not np.array_equal(f[:, 0], np.arange(len(f)) % 3)
    for k, n in enumerate((3, 6, 40, 32, 32)):
        counts = np.bincount(f[:, k], minlength=n)
        assert len(counts) == n
        expected = len(f) / n
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert chi2 < n + 6 * math.sqrt(2 * n), (FACTORS[k], chi2)


def test_variance_kl_and_order_come_from_the_sample(data):
    mu = representation(data.sample_factors)
    np.testing.assert_allclose(data.variance, mu.var(axis=0), rtol=1e-12, atol=1e-15)
    assert data.variance[5] < 1e-20  # the constant
    assert data.kl is not None
    np.testing.assert_allclose(data.kl, kl_of(data.sample_factors).mean(axis=0), rtol=1e-12)
    assert data.order == sorted(range(D), key=lambda i: (-mu[:, i].var(), i))
    assert data.active == [bool(k > 0.1) for k in kl_of(data.sample_factors).mean(axis=0)]


def test_mutual_information_matches_an_estimate_written_here(data):
    mu, f = representation(data.sample_factors), data.sample_factors
    ours = np.array([[plugin_mi(bins_of(mu[:, i]), f[:, k]) for k in range(5)] for i in range(D)])
    np.testing.assert_allclose(data.mi, ours, atol=1e-10)
    h = np.array([plugin_entropy(f[:, k]) for k in range(5)])
    np.testing.assert_allclose(data.factor_entropy, h, atol=1e-12)
    # the known answers: the shape latent holds all of shape's information and nothing else
    # of the others; a constant holds nothing; 20 bins of 32 positions hold log 20 at most
    assert data.mi[4, 0] == pytest.approx(h[0], abs=1e-12)
    assert h[0] == pytest.approx(math.log(3), abs=0.01)
    np.testing.assert_allclose(data.mi[5], 0.0, atol=1e-15)
    assert data.mi[0, 3] == pytest.approx(plugin_entropy(bins_of(mu[:, 0])), abs=1e-12)
    assert data.mi[0, 3] <= math.log(20) + 1e-12
    # with shape and scale (few values: little plug-in bias) it shares next to nothing
    assert data.mi[0, 3] > 20 * max(data.mi[0, 0], data.mi[0, 1])


# --- the traversal rows -----------------------------------------------------------------------


def read_z(image: torch.Tensor) -> np.ndarray:
    p = image[0, 0, :D].double().clamp(1e-12, 1 - 1e-12)
    return torch.log(p / (1 - p)).numpy()


def test_traversal_row_i_sweeps_latent_i_from_the_traversal_images_mu(data):
    base = representation(np.array([[2, 3, 0, 16, 16]]))[0]  # the heart the docstring names
    assert data.traversal_values == [-3.0, 0.0, 3.0]
    assert data.traversal.shape == (D, 3, 1, 64, 64)
    for i in range(D):
        for k, v in enumerate(data.traversal_values):
            want = base.copy()
            want[i] = v
            np.testing.assert_allclose(read_z(data.traversal[i, k]), want, atol=1e-4)
            # a CVAE's rows are decoded with the traversal image's own shape (a heart)
            assert data.traversal[i, k, 0, 1, 0].item() == pytest.approx(1 / (1 + math.exp(-2)))


# --- the same numbers through the API ---------------------------------------------------------


@pytest.fixture(scope="module")
def known_client(tmp_path_factory):
    app = create_app(Settings(checkpoints_dir=tmp_path_factory.mktemp("none")))
    ckpt = fake_checkpoint()
    app.dependency_overrides[get_model] = lambda: ckpt
    app.dependency_overrides[get_sampling] = lambda: SAMPLING
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figure2, "ImageEncoder", FactorEncoder)
        with TestClient(app) as c:
            yield c


def test_mi_svg_cells_show_the_known_mutual_information(known_client, data):
    r = known_client.get("/api/models/known-answers/mi.svg")
    assert r.status_code == 200, r.text
    root = ET.fromstring(r.text)
    ns = "{http://www.w3.org/2000/svg}"
    cells = [e for e in root.iter(f"{ns}rect") if e.get("class") == "mi"]
    assert len(cells) == D * 5
    mu, f = representation(data.sample_factors), data.sample_factors
    for cell in cells:
        i, factor = int(cell.get("data-latent")), cell.get("data-factor")
        tip = cell.find(f"{ns}title").text
        shown = float(re.search(r": ([0-9.]+) nats", tip).group(1))
        k = FACTORS.index(factor)
        assert shown == pytest.approx(plugin_mi(bins_of(mu[:, i]), f[:, k]), abs=5e-4), tip


def test_figure2_svg_orders_columns_by_the_known_variance(known_client, data):
    r = known_client.get("/api/models/known-answers/figure2.svg")
    assert r.status_code == 200, r.text
    root = ET.fromstring(r.text)
    cols = [
        el
        for el in root.iter("{http://www.w3.org/2000/svg}g")
        if "latent" in (el.get("class") or "").split()
    ]
    mu = representation(data.sample_factors)
    want = sorted(range(D), key=lambda i: (-mu[:, i].var(), i))
    assert [int(el.get("data-latent")) for el in cols] == want
    for el in cols:
        i = int(el.get("data-latent"))
        assert float(el.get("data-variance")) == pytest.approx(mu[:, i].var(), rel=1e-5)
