"""The map's layouts of μ in 2-D, and how a new z is placed on each.

    pca     exact: the two principal axes of μ, from its mean and covariance accumulated chunk
            by chunk in float64 (any n: no n × D float64 copy of μ is made); a new z lands at
            (z − mean)·componentsᵀ.
    tsne    openTSNE's t-SNE with FFT-accelerated interpolation (Linderman et al. 2019, "Fast
            interpolation-based t-SNE for improved visualization of single-cell RNA-seq data"):
            O(n) per iteration where Barnes–Hut is O(n log n). A new z is placed by openTSNE's
            own `transform`, which optimises the new point against the fixed embedding.
    umap    umap-learn's UMAP (McInnes et al. 2018); a new z is placed by `UMAP.transform`.

Both t-SNE and UMAP take seconds to minutes, so the server runs them in the background
(app.studies.layout_jobs). Their `placer` lives in memory only: a layout read back from disk
gets one again from the kept μ and positions (`rebuilt_placer`), the affinities or the
neighbour graph computed anew, never unpickled. Where no transform can be had, a new z is
placed at the distance-weighted mean of its 10 nearest neighbours' positions (`NearestPlacer`).

Nothing here knows about HTTP.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from app.inference import InferenceError

COMPUTED = ("tsne", "umap")  # the layouts computed in the background
PCA_CHUNK = 65_536  # rows of μ copied to float64 at a time: 5 MB for D = 10
NEAREST = 10  # the fallback marker: the distance-weighted mean of this many neighbours
THREADS = max(1, min(4, os.cpu_count() or 1))
# openTSNE's schedule (its defaults): 250 iterations of early exaggeration 12, then 500 plain
TSNE_EXAGGERATION_ITER = 250
TSNE_ITER = 500
TSNE_PROGRESS_EVERY = 25  # iterations between progress reports (each also computes the KL)
# The FFT's grid has one interval per this many units of the layout's span (openTSNE's default:
# 1). A 20,000-point map spans about 190 units, so the default grid is 3 interpolation points ×
# 190 intervals a side, and the FFT over it is most of an iteration's time. Intervals 2 units
# wide take a quarter of the time and keep the class structure, at some cost to the nearest
# neighbours (fashion-vae, 20,000 μ of Fashion-MNIST, 2 threads: 13.7 s against 51.2 s; 10-NN
# class vote 0.821 either way; of each point's 10 nearest in μ 0.470 kept against 0.483;
# exact KL 2.198 against 2.058; 2026-12-06, bench/layout_speed.py --grids)
TSNE_INTERVAL = 2
# μ's exact nearest neighbours (below this many latents) by brute force, scikit-learn's chunked
# distance matrix, up to BRUTE_UP_TO points: faster than a tree in 10 latents (fashion-vae's μ:
# 20,000 points 0.8 s against 3.6 s by the ball tree openTSNE's "exact" picks and 2.6 s by a k-d
# tree; 70,000 points 7.0 s against 40.6 and 15.9 s) and faster than Annoy's approximate ones
# (20,000: 10.9 s). Its time grows as n², so larger sets go to openTSNE's approximate index.
EXACT_NEIGHBOURS_UP_TO = 32
BRUTE_UP_TO = 100_000
# Below this many points the FFT's fixed grid (at least 50 intervals a side) costs more than the
# points do: Barnes–Hut (300 points: 0.4 s against 7.5 s; 2,000: 6.1 s against 5.8 s)
FFT_FROM = 1_000
# openTSNE on the cores (at most 4): its attractive forces are split between threads, the FFT
# is not. 20,000 points, idle 2 cores: 13.7 s of iterations on two threads against 17.2 s on
# one (2026-12-06 15:50, bench/layout_speed.py --grids). Under a load of 5 earlier the same
# day two threads were the slower (27.5 s against 19.0 s). At exit a t-SNE stops at its next
# progress report and the server waits for it (app.background), so no thread of openTSNE's
# pool is left running.
TSNE_THREADS = THREADS
UMAP_NEIGHBOURS = 15  # umap-learn's defaults
UMAP_MIN_DIST = 0.1

How = Literal["pca", "transform", "nearest"]


class Placer(Protocol):
    """Places new points on a finished layout: (m, D) μ-space points → (m, 2) map positions."""

    how: How

    def place(self, z: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Layout:
    points: np.ndarray  # (n, 2)
    settings: dict[str, object]  # what was run, and what it measured
    mean: np.ndarray | None = None  # PCA: a new z lands at (z − mean)·componentsᵀ
    components: np.ndarray | None = None  # (2, D)
    # t-SNE, UMAP: the library's own transform, in memory only (never written to disk)
    placer: Placer | None = field(default=None, compare=False, repr=False)


Progress = Callable[[float], None]  # hears the fraction done, 0..1


# --- PCA, streamed ----------------------------------------------------------------------------


def pca(mu: np.ndarray, chunk: int = PCA_CHUNK) -> Layout:
    """The two principal axes of μ (n, D), exactly: the mean, then the scatter about it, each
    summed chunk by chunk in float64, then its eigen-decomposition (the scatter's eigenvalues
    are the centred μ's squared singular values, its eigenvectors the SVD's right vectors).
    Each axis's sign is fixed so that its largest loading is positive: the same data always
    draws the same map."""
    n, d = mu.shape
    total = np.zeros(d)
    for start in range(0, n, chunk):
        total += mu[start : start + chunk].sum(axis=0, dtype=np.float64)
    mean = total / n
    # two passes, not Σx and Σxxᵀ in one: subtracting n·meanᵀmean at the end would cancel
    # the small eigenvalues away in float64 where μ sits far from the origin
    scatter = np.zeros((d, d))
    for start in range(0, n, chunk):
        centred = mu[start : start + chunk].astype(np.float64) - mean  # (chunk, D)
        scatter += centred.T @ centred
    eigenvalues, eigenvectors = np.linalg.eigh(scatter)  # ascending
    order = np.argsort(eigenvalues)[::-1]
    variance = np.clip(eigenvalues[order], 0.0, None)
    axes = eigenvectors[:, order].T  # (D, D), rows by falling variance
    components = np.zeros((2, d))
    k = min(2, d, n)
    components[:k] = axes[:k]
    for row in components:
        if row.any():
            row *= np.sign(row[np.argmax(np.abs(row))])
    whole = float(variance.sum())
    ratio = [float(v / whole) if whole > 0 else 0.0 for v in variance[:k]]
    return Layout(
        points=project(mu, mean, components, chunk),
        settings={
            "solver": "covariance eigendecomposition, streamed",
            "explained_variance_ratio": ratio + [0.0] * (2 - k),
        },
        mean=mean,
        components=components,
    )


def project(
    z: np.ndarray, mean: np.ndarray, components: np.ndarray, chunk: int = PCA_CHUNK
) -> np.ndarray:
    """(z − mean)·componentsᵀ, chunk by chunk: (m, 2) float64."""
    out = np.empty((len(z), 2))
    for start in range(0, len(z), chunk):
        out[start : start + chunk] = (z[start : start + chunk] - mean) @ components.T
    return out


@dataclass
class PcaPlacer:
    mean: np.ndarray
    components: np.ndarray
    how: How = "pca"

    def place(self, z: np.ndarray) -> np.ndarray:
        return project(z, self.mean, self.components)


# --- the fallback: the nearest neighbours' positions ------------------------------------------


@dataclass
class NearestPlacer:
    """The distance-weighted mean (1/distance, as the map page computes it) of the map positions
    of the `k` points whose μ lie nearest z."""

    mu: np.ndarray  # (n, D)
    points: np.ndarray  # (n, 2)
    k: int = NEAREST
    how: How = "nearest"

    def place(self, z: np.ndarray) -> np.ndarray:
        k = min(self.k, len(self.mu))
        out = np.empty((len(z), 2))
        for i, row in enumerate(np.asarray(z, dtype=np.float64)):
            d = np.sqrt(((self.mu - row) ** 2).sum(axis=1))
            near = np.argpartition(d, k - 1)[:k]
            w = 1.0 / (d[near] + 1e-6)
            out[i] = (w[:, None] * self.points[near]).sum(axis=0) / w.sum()
        return out


# --- t-SNE (openTSNE) -------------------------------------------------------------------------


def used_perplexity(n: int, perplexity: float) -> float:
    """The perplexity a t-SNE of n points runs with: the one asked for, or (n − 1)/3 if that is
    lower (each point needs 3·perplexity neighbours)."""
    return min(perplexity, max((n - 1) / 3, 0.5))


def _check_spread(mu: np.ndarray, what: str) -> None:
    # openTSNE's affinities of n identical points are NaN, and its FFT then crashes the process
    if len(mu) and float(np.ptp(mu, axis=0).max(initial=0.0)) == 0.0:
        raise InferenceError(
            f"all {len(mu):,} μ are the same point: {what} has no neighbourhoods to lay out"
        )


def _neighbours(mu: np.ndarray) -> tuple[str, dict[str, str] | None]:
    """openTSNE's nearest-neighbour method for μ and its settings: exact by brute force where
    that is quick."""
    if mu.shape[1] <= EXACT_NEIGHBOURS_UP_TO and len(mu) <= BRUTE_UP_TO:
        return "exact", {"algorithm": "brute"}
    return "auto", None


def _gradient(n: int) -> str:
    return "fft" if n >= FFT_FROM else "bh"


def tsne(
    mu: np.ndarray,
    seed: int,
    perplexity: float,
    progress: Progress | None = None,
    interval: float = TSNE_INTERVAL,
) -> Layout:
    """openTSNE's t-SNE of μ with FFT-accelerated interpolation (Barnes–Hut below 1,000
    points), PCA-initialised (stable from run to run), openTSNE's schedule (250 iterations
    exaggerated, then 500). `progress` hears the fraction of iterations done every 25.
    `interval`: the FFT grid's units of layout a box (bench/layout_speed.py compares them). Its
    `placer` is openTSNE's transform."""
    from openTSNE import TSNE  # noqa: PLC0415 (its import takes a second; only t-SNE needs it)

    if len(mu) <= perplexity:
        raise InferenceError(
            f"t-SNE needs more points than its perplexity: n is {len(mu)}, perplexity "
            f"{perplexity:g}"
        )
    _check_spread(mu, "t-SNE")
    total = TSNE_EXAGGERATION_ITER + TSNE_ITER
    done = [0]

    def report(iteration: int, error: float, embedding: np.ndarray) -> None:
        done[0] += TSNE_PROGRESS_EVERY
        if progress is not None:
            progress(min(1.0, done[0] / total))

    started = time.perf_counter()
    method, knn_settings = _neighbours(mu)
    model = TSNE(
        n_components=2, perplexity=perplexity, learning_rate="auto",
        early_exaggeration_iter=TSNE_EXAGGERATION_ITER, n_iter=TSNE_ITER,
        initialization="pca" if mu.shape[1] >= 2 else "random",  # PCA needs two axes
        negative_gradient_method=_gradient(len(mu)), ints_in_interval=interval,
        neighbors=method, knn_kwargs=knn_settings,
        n_jobs=TSNE_THREADS, random_state=seed,
        callbacks=report, callbacks_every_iters=TSNE_PROGRESS_EVERY,
    )  # fmt: skip
    embedding = model.fit(np.ascontiguousarray(mu, dtype=np.float64))
    points = np.array(embedding, dtype=np.float64)
    if not np.isfinite(points).all():
        raise InferenceError(f"t-SNE of {len(mu):,} points did not converge (a NaN position)")
    return Layout(
        points=points,
        settings={
            "perplexity": perplexity,
            "init": "pca" if mu.shape[1] >= 2 else "random",
            "learning_rate": "auto",
            "early_exaggeration_iter": TSNE_EXAGGERATION_ITER,
            "max_iter": total,
            "iterations": total,
            "kl_divergence": float(embedding.kl_divergence),
            "seconds": round(time.perf_counter() - started, 1),
            "seed": seed,
            "interval": interval,
            "gradient": _gradient(len(mu)),
            "implementation": "openTSNE 1.0.4, "
            + ("FFT-accelerated interpolation" if _gradient(len(mu)) == "fft" else "Barnes-Hut"),
        },
        placer=TsnePlacer(embedding),
    )


class TsnePlacer:
    """openTSNE's `TSNEEmbedding.transform`: each new point's affinities to its nearest
    neighbours in μ (perplexity 5), started at the median of its 25 nearest neighbours'
    positions, then optimised against the fixed layout (openTSNE's defaults). openTSNE centres
    the embedding in place before it transforms: that is done once here, and the shift added
    back, so the points come back in the layout's own coordinates."""

    how: How = "transform"

    def __init__(self, embedding: Any) -> None:  # an openTSNE TSNEEmbedding
        points = np.asarray(embedding)
        self._offset = (points.max(axis=0) + points.min(axis=0)) / 2
        embedding -= self._offset
        # the fit's progress callback would hear every placement too, and compute the KL for it
        embedding.gradient_descent_params["callbacks"] = None
        # the interpolation grid over the fixed layout, made once here (3.5 s for 70,000
        # points) rather than in the first placement
        if embedding.gradient_descent_params.get("negative_gradient_method") == "fft":
            embedding.prepare_interpolation_grid()
        self._embedding = embedding
        self._lock = threading.Lock()  # transform writes into the embedding's state

    def place(self, z: np.ndarray) -> np.ndarray:
        with self._lock:
            placed = self._embedding.transform(np.atleast_2d(np.asarray(z, dtype=np.float64)))
        return np.asarray(placed, dtype=np.float64) + self._offset


def tsne_placer(mu: np.ndarray, points: np.ndarray, settings: dict[str, object]) -> TsnePlacer:
    """openTSNE's transform for a t-SNE kept as its positions: the affinities of μ computed
    again (its nearest-neighbour index is what places new points), the embedding its
    positions."""
    from openTSNE import TSNEEmbedding  # noqa: PLC0415
    from openTSNE.affinity import PerplexityBasedNN  # noqa: PLC0415

    perplexity = float(settings.get("perplexity", 30.0))  # type: ignore[arg-type]
    seed = int(settings.get("seed", 0))  # type: ignore[call-overload]
    method, knn_settings = _neighbours(mu)
    affinities = PerplexityBasedNN(
        np.ascontiguousarray(mu, dtype=np.float64), perplexity=perplexity, n_jobs=TSNE_THREADS,
        random_state=seed, method=method, knn_kwargs=knn_settings,
    )  # fmt: skip
    embedding = TSNEEmbedding(
        np.array(points, dtype=np.float64), affinities,
        negative_gradient_method=_gradient(len(mu)),
        ints_in_interval=float(settings.get("interval", 1)),  # type: ignore[arg-type]
        n_jobs=TSNE_THREADS, random_state=seed,
    )  # fmt: skip
    return TsnePlacer(embedding)


def tsne_scikit_learn(mu: np.ndarray, seed: int, perplexity: float) -> Layout:
    """scikit-learn's Barnes–Hut t-SNE, as the map drew it before openTSNE: kept for
    bench/layout_speed.py's side-by-side, not served."""
    from sklearn.manifold import TSNE  # noqa: PLC0415

    started = time.perf_counter()
    model = TSNE(
        n_components=2, perplexity=perplexity, learning_rate="auto", max_iter=1000,
        init="pca" if mu.shape[1] >= 2 else "random", random_state=seed, n_jobs=THREADS,
    )  # fmt: skip
    points = model.fit_transform(mu.astype(np.float32)).astype(np.float64)
    return Layout(
        points=points,
        settings={
            "perplexity": perplexity,
            "iterations": int(model.n_iter_),
            "kl_divergence": float(model.kl_divergence_),
            "seconds": round(time.perf_counter() - started, 1),
            "implementation": "scikit-learn Barnes-Hut",
        },
    )


# --- UMAP (umap-learn) ------------------------------------------------------------------------


def _umap_model(n: int, seed: int, **extra: Any) -> Any:
    import umap  # noqa: PLC0415 (numba compiles it on first use: seconds; only UMAP needs it)

    return umap.UMAP(
        n_components=2, n_neighbors=min(UMAP_NEIGHBOURS, n - 1), min_dist=UMAP_MIN_DIST,
        # spectral initialisation needs more points than its 3 eigenvectors
        init="spectral" if n > 3 else "random",
        random_state=seed, **extra,
    )  # fmt: skip


def umap(mu: np.ndarray, seed: int) -> Layout:
    """umap-learn's UMAP of μ (15 neighbours, min_dist 0.1, spectral initialisation), seeded:
    the same map from run to run, on one thread (umap-learn's price for a seed). Its `placer`
    is `UMAP.transform`. umap-learn reports no progress."""
    n = len(mu)
    if n < 3:  # umap-learn cannot lay out 2 points; their PCA is as good a picture of them
        exact = pca(mu)
        assert exact.mean is not None and exact.components is not None
        settings = {**exact.settings, "implementation": "PCA: UMAP needs at least 3 points"}
        return Layout(exact.points, settings, exact.mean, exact.components,
                      placer=PcaPlacer(exact.mean, exact.components))  # fmt: skip
    started = time.perf_counter()
    model = _umap_model(n, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden to 1 by setting random_state"
        model.fit(np.ascontiguousarray(mu, dtype=np.float32))
    points = np.asarray(model.embedding_, dtype=np.float64)
    lost = ~np.isfinite(points).all(axis=1)
    if lost.any():  # a point cut off from the neighbour graph: UMAP gives it NaN
        points[lost] = NearestPlacer(mu[~lost], points[~lost]).place(mu[lost])
    return Layout(
        points=points,
        settings={
            "n_neighbors": int(model.n_neighbors),
            "min_dist": UMAP_MIN_DIST,
            "init": model.init,
            "n_epochs": 500 if n <= 10_000 else 200,  # umap-learn's choice by size
            "seconds": round(time.perf_counter() - started, 1),
            "seed": seed,
            "implementation": "umap-learn 0.5.12",
        },
        placer=UmapPlacer(model),
    )


class UmapPlacer:
    """`UMAP.transform`: each new point's fuzzy neighbours in μ (umap-learn's nearest-neighbour
    index), started at their weighted mean position, then optimised against the fixed layout
    (a third of the fit's epochs)."""

    how: How = "transform"

    def __init__(self, model: Any) -> None:  # a fitted umap.UMAP
        self._model = model
        self._lock = threading.Lock()

    def place(self, z: np.ndarray) -> np.ndarray:
        with self._lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            placed = self._model.transform(np.atleast_2d(np.asarray(z, dtype=np.float32)))
        return np.asarray(placed, dtype=np.float64)


def umap_placer(mu: np.ndarray, points: np.ndarray, settings: dict[str, object]) -> UmapPlacer:
    """`UMAP.transform` for a UMAP kept as its positions, without unpickling anything: UMAP
    fitted again with the same settings and seed but no optimisation (0 epochs, started at the
    kept positions), which builds what transform needs (μ's nearest-neighbour index, the
    kernel's a and b); then the kept positions put in as its embedding, and the epochs given
    back for transform's third of them."""
    seed = int(settings.get("seed", 0))  # type: ignore[call-overload]
    n = len(mu)
    model = _umap_model(n, seed, n_epochs=0)
    model.init = np.asarray(points, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(np.ascontiguousarray(mu, dtype=np.float32))
    model.embedding_ = np.asarray(points, dtype=np.float32)
    model.n_epochs = None  # transform runs a third of umap-learn's default
    return UmapPlacer(model)


def rebuilt_placer(method: str, mu: np.ndarray, layout: Layout) -> Placer:
    """A placer for a layout that has none in memory (read back from disk): the method's own
    transform rebuilt from μ and the kept positions, or the nearest neighbours' mean where
    the method has none."""
    if layout.mean is not None and layout.components is not None:
        return PcaPlacer(layout.mean, layout.components)
    if method == "tsne":
        return tsne_placer(mu, layout.points, layout.settings)
    if method == "umap":
        return umap_placer(mu, layout.points, layout.settings)
    return NearestPlacer(mu, layout.points)
