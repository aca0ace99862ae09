"""The map's layouts (app/studies/layouts.py): PCA streamed chunk by chunk equals the SVD of the
centred μ; openTSNE's and UMAP's own transforms place a training point among its own map
neighbours, fresh and rebuilt from the kept μ and positions (as after a restart); the background
jobs report openTSNE's progress. The references are computed here: numpy's SVD, distances on the
map."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

from app.studies import layout_jobs, layouts

N = 600  # UMAP's numba compiles once per process (10–20 s); the layouts themselves take seconds
N_TSNE = 1_000  # from 1,000 points openTSNE's gradient is the FFT's (Barnes–Hut below)


def clusters(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points in 8-D around 6 well-separated centres, and each point's centre."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, 8)) * 6
    labels = rng.integers(0, 6, n)
    return centres[labels] + rng.normal(size=(n, 8)), labels


def sheet(n: int, seed: int = 0) -> np.ndarray:
    """n points of a curved 2-D sheet in 8-D: neighbourhoods that a 2-D map can keep (within a
    round cluster of noise, which of its points are a point's 10 nearest means little)."""
    rng = np.random.default_rng(seed)
    uv = rng.uniform(0, 1, size=(n, 2))
    lift = rng.normal(size=(3, 8)) * 5
    return np.c_[uv, np.sin(3 * uv[:, 0])] @ lift + rng.normal(size=(n, 8)) * 0.05


# --- PCA, streamed ----------------------------------------------------------------------------


def svd_pca(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference: numpy's SVD of μ − mean, in float64: (points, components, ratio)."""
    x = mu.astype(np.float64)
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T, vt[:2], (s**2 / (s**2).sum())[:2]


@pytest.mark.parametrize("chunk", [37, 1000, 65_536])
def test_streamed_pca_equals_the_svd_of_the_centred_mu(chunk):
    rng = np.random.default_rng(1)
    # far from the origin and float32, as an encoder gives it: the trap for one-pass sums
    mu = (rng.normal(size=(2_345, 6)) * [4.0, 2.5, 1.0, 0.5, 0.2, 0.1] + 100).astype(np.float32)
    layout = layouts.pca(mu, chunk=chunk)
    points, components, ratio = svd_pca(mu)
    signs = np.sign((layout.components * components).sum(axis=1))  # the SVD's signs are its own
    np.testing.assert_allclose(layout.components, components * signs[:, None], atol=1e-9)
    np.testing.assert_allclose(layout.points, points * signs, atol=1e-7)
    np.testing.assert_allclose(layout.settings["explained_variance_ratio"], ratio, rtol=1e-9)
    assert all(row[np.argmax(np.abs(row))] > 0 for row in layout.components)
    np.testing.assert_allclose(layout.mean, mu.astype(np.float64).mean(axis=0), rtol=1e-12)


def test_streamed_pca_of_all_dsprites_makes_no_float64_copy_of_mu():
    # 737,280 × 10 float32 μ is 29 MB; a float64 copy would be 59 MB more, the points 12 MB
    mu = np.random.default_rng(2).normal(size=(737_280, 10)).astype(np.float32)
    tracemalloc.start()
    try:
        layout = layouts.pca(mu)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert layout.points.shape == (737_280, 2)
    assert peak < 30e6, f"peak {peak / 1e6:.0f} MB"


def test_pca_placer_is_the_projection():
    mu, _ = clusters(200)
    layout = layouts.pca(mu)
    placer = layouts.PcaPlacer(layout.mean, layout.components)
    np.testing.assert_allclose(placer.place(mu[:7]), layout.points[:7], atol=1e-9)
    assert placer.how == "pca"


# --- t-SNE and UMAP: their transforms ---------------------------------------------------------


def share_placed_among_own_neighbours(
    points: np.ndarray, placed: np.ndarray, rows: np.ndarray
) -> float:
    """The share of `rows` whose placed position lies within the distance from their own map
    position to its 10th nearest map neighbour."""
    inside = []
    for i, p in zip(rows, placed, strict=True):
        d = np.linalg.norm(points - points[i], axis=1)
        radius = np.sort(d)[10]  # [0] is the point itself
        inside.append(np.linalg.norm(p - points[i]) <= radius)
    return float(np.mean(inside))


ROWS = np.arange(0, N, 30)  # 20 training points


@pytest.fixture(scope="module")
def tsne_map():
    mu, _ = clusters(N_TSNE)
    seen = []
    layout = layouts.tsne(mu, seed=0, perplexity=30, progress=seen.append)
    return mu, layout, seen


@pytest.fixture(scope="module")
def umap_map():
    mu = sheet(N)
    return mu, layouts.umap(mu, seed=0)


def test_tsne_is_opentsnes_fft_and_reports_its_progress(tsne_map):
    mu, layout, seen = tsne_map
    assert layout.points.shape == (N_TSNE, 2) and np.isfinite(layout.points).all()
    assert layout.settings["implementation"] == "openTSNE 1.0.4, FFT-accelerated interpolation"
    assert layout.settings["iterations"] == 750
    # every 25 iterations of 750, rising to 1
    assert len(seen) == 30 and seen == sorted(seen) and seen[-1] == 1.0 and seen[0] < 0.05


@pytest.mark.parametrize("rebuilt", [False, True], ids=["fresh", "rebuilt"])
def test_tsne_transform_places_a_training_point_among_its_own_neighbours(tsne_map, rebuilt):
    mu, layout, seen = tsne_map
    placer = (
        layouts.rebuilt_placer("tsne", mu, layouts.Layout(layout.points, layout.settings))
        if rebuilt
        else layout.placer
    )
    assert placer.how == "transform"
    reports = len(seen)
    rows = np.arange(0, N_TSNE, 50)
    placed = placer.place(mu[rows])
    assert len(seen) == reports  # placing is not the fit: its progress hears nothing more
    assert share_placed_among_own_neighbours(layout.points, placed, rows) >= 0.9
    # the same test fails for a point placed at another point's position
    other = layout.points[(rows + N_TSNE // 2) % N_TSNE]
    assert share_placed_among_own_neighbours(layout.points, other, rows) <= 0.3
    # and the layout itself is not moved by placing (openTSNE centres its embedding in place)
    again = placer.place(mu[rows[:1]])
    np.testing.assert_allclose(again, placed[:1], atol=np.ptp(layout.points) * 0.05)


@pytest.mark.parametrize("rebuilt", [False, True], ids=["fresh", "rebuilt"])
def test_umap_transform_places_a_training_point_among_its_own_neighbours(umap_map, rebuilt):
    mu, layout = umap_map
    assert "umap-learn" in layout.settings["implementation"]
    placer = (
        layouts.rebuilt_placer("umap", mu, layouts.Layout(layout.points, layout.settings))
        if rebuilt
        else layout.placer
    )
    assert placer.how == "transform"
    placed = placer.place(mu[ROWS])
    assert share_placed_among_own_neighbours(layout.points, placed, ROWS) >= 0.9
    other = layout.points[(ROWS + N // 2) % N]
    assert share_placed_among_own_neighbours(layout.points, other, ROWS) <= 0.3


def test_umap_rebuilt_from_its_positions_places_as_the_fitted_one_does(umap_map):
    mu, layout = umap_map
    rebuilt = layouts.rebuilt_placer("umap", mu, layouts.Layout(layout.points, layout.settings))
    z = mu[ROWS] + 0.3
    np.testing.assert_allclose(rebuilt.place(z), layout.placer.place(z), atol=1e-3)


def test_the_nearest_placer_is_the_inverse_distance_weighted_mean_of_10_neighbours():
    mu, _ = clusters(100)
    points = np.random.default_rng(3).normal(size=(100, 2))
    z = mu[5] + 0.1
    d = np.linalg.norm(mu - z, axis=1)
    near = np.argsort(d)[:10]
    w = 1 / (d[near] + 1e-6)
    expected = (w[:, None] * points[near]).sum(axis=0) / w.sum()
    np.testing.assert_allclose(layouts.NearestPlacer(mu, points).place(z[None])[0], expected)


def test_a_umap_of_two_points_is_their_pca():
    # umap-learn cannot lay out two points; the map of any n the API takes must still be drawn
    mu = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    layout = layouts.umap(mu, seed=0)
    np.testing.assert_allclose(np.abs(layout.points[:, 0]), [np.sqrt(8) / 2] * 2)
    np.testing.assert_allclose(layout.points[:, 1], 0, atol=1e-12)
    assert layout.placer.how == "pca"


def test_identical_points_are_refused_not_a_crash():
    # openTSNE's affinities of identical points are NaN, and its FFT then kills the process
    with pytest.raises(layouts.InferenceError, match="same point"):
        layouts.tsne(np.zeros((50, 4)), seed=0, perplexity=10)


# --- the jobs say how far openTSNE is ---------------------------------------------------------


def test_a_computing_tsne_says_the_fraction_done_in_its_detail():
    jobs = layout_jobs.LayoutJobs()
    halfway, release = threading.Event(), threading.Event()

    def compute(progress) -> layouts.Layout:
        progress(0.5)
        halfway.set()
        release.wait(10)
        return layouts.Layout(np.zeros((40, 2)), {})

    jobs.get("k", 40, compute, "tsne")
    assert halfway.wait(10)
    try:
        pending = jobs.get("k", 40, compute, "tsne")
        assert isinstance(pending, layout_jobs.Pending)
        assert "t-SNE of 40 points is being computed" in pending.detail(40)
        assert "50% done" in pending.detail(40)
    finally:
        release.set()
        jobs.join(timeout=10)
    umap = jobs.get("u", 40, lambda _: layouts.Layout(np.zeros((40, 2)), {}), "umap")
    assert "UMAP of 40 points" in umap.detail(40) and "% done" not in umap.detail(40)
    jobs.join(timeout=10)
