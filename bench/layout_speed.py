"""How fast the map's layouts are, and how much of the class each keeps: fashion-vae's μ of
Fashion-MNIST (the built-in set "fashion-mnist", all 70,000 images, encoded through
app.encodings and kept in .cache/bench-layouts), then

    scikit-learn's Barnes–Hut t-SNE against openTSNE's FFT-accelerated t-SNE on the same
    20,000 μ (a seeded subset), side by side;
    openTSNE and UMAP of all 70,000 (and the streamed PCA);
    placing one new z on each 70,000-point map with the method's own transform, fresh and
    rebuilt from μ and the positions (as a restarted server does).

Each map's class agreement is the 10-nearest-neighbour vote on its positions, 5-fold
cross-validated, as experiments/latent-map/map_neighbours.py computes it for docs/map.md. The
20,000-point t-SNEs are also judged by what t-SNE keeps: the share of each point's 10 nearest
neighbours in μ that are among its 10 nearest on the map, and the exact KL divergence of the
map's Q from one P (openTSNE's perplexity-30 affinities of the same μ; Q's normalisation summed
over all n² pairs, not estimated by either library's approximation). openTSNE runs at the
served grid (intervals 2 units wide) and at its library default (1 unit).

    PYTHONPATH=. .venv/bin/python bench/layout_speed.py [--subset 20000] [--grids]

--grids: instead, openTSNE's iterations alone (the affinities computed once) on the 20,000 μ at
several grid widths and threads and by Barnes–Hut, each judged as above.

Prints the figures; asserts nothing."""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from openTSNE.affinity import PerplexityBasedNN
from scipy import sparse
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from app.checkpoints import load_checkpoint
from app.data.sets import open_set
from app.encodings.run import encode_set
from app.studies import layouts

ROOT = Path(__file__).resolve().parent.parent
MODEL = "fashion-vae"


def vote(x: np.ndarray, y: np.ndarray) -> float:
    """The 10-NN class vote, 5-fold cross-validated (experiments/latent-map/map_neighbours.py)."""
    return float(cross_val_score(KNeighborsClassifier(10), x, y, cv=5).mean())


def neighbours_kept(mu: np.ndarray, points: np.ndarray, k: int = 10) -> float:
    """The share of each point's k nearest neighbours in μ that are among its k nearest on the
    map (exact, both sides)."""
    _, high = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(mu).kneighbors()
    _, low = NearestNeighbors(n_neighbors=k).fit(points).kneighbors()
    high.sort(axis=1)
    low.sort(axis=1)
    return float(np.mean([len(np.intersect1d(a, b, assume_unique=True)) for a, b in
                          zip(high, low, strict=True)]) / k)  # fmt: skip


def exact_kl(p: sparse.coo_matrix, points: np.ndarray) -> float:
    """KL(P ‖ Q) with q_ij = (1 + |y_i − y_j|²)⁻¹ / Z, Z summed over every pair i ≠ j."""
    y = np.asarray(points, dtype=np.float64)
    squares = (y**2).sum(axis=1)
    z = 0.0
    for a in range(0, len(y), 2000):
        d = squares[a : a + 2000, None] + squares[None, :] - 2 * y[a : a + 2000] @ y.T
        z += float((1.0 / (1.0 + np.maximum(d, 0.0))).sum()) - min(2000, len(y) - a)
    pij = p.data / p.data.sum()
    d_ij = ((y[p.row] - y[p.col]) ** 2).sum(axis=1)
    return float((pij * np.log(pij)).sum() + (pij * np.log1p(d_ij)).sum() + np.log(z))


def grids(mu: np.ndarray) -> None:
    """openTSNE's 250 + 500 iterations from the same affinities and PCA start, per setting."""
    from openTSNE import TSNEEmbedding  # noqa: PLC0415
    from openTSNE.initialization import pca  # noqa: PLC0415

    affinities = PerplexityBasedNN(mu, perplexity=30, method="exact",
                                   knn_kwargs={"algorithm": "brute"})  # fmt: skip
    start = pca(mu, random_state=0)
    fft = {"negative_gradient_method": "fft"}
    settings = {
        "grid 1 unit, 2 threads": dict(fft, ints_in_interval=1, n_jobs=2),
        "grid 1.5 units, 2 threads": dict(fft, ints_in_interval=1.5, n_jobs=2),
        "grid 2 units, 1 thread": dict(fft, ints_in_interval=2, n_jobs=1),
        "grid 2 units, 2 threads (served)": dict(fft, ints_in_interval=2, n_jobs=2),
        "grid 2 units, 25 boxes or more, 2 threads":
            dict(fft, ints_in_interval=2, min_num_intervals=25, n_jobs=2),
        "grid 3 units, 25 boxes or more, 2 threads":
            dict(fft, ints_in_interval=3, min_num_intervals=25, n_jobs=2),
        "Barnes-Hut, theta 0.5, 2 threads": dict(negative_gradient_method="bh", n_jobs=2),
    }  # fmt: skip
    p = affinities.P.tocoo()
    for name, kwargs in settings.items():
        embedding = TSNEEmbedding(start.copy(), affinities, random_state=0, **kwargs)
        t = time.perf_counter()
        embedding = embedding.optimize(250, exaggeration=12, momentum=0.5, learning_rate="auto")
        embedding = embedding.optimize(500, momentum=0.8, learning_rate="auto")
        seconds = time.perf_counter() - t
        points = np.asarray(embedding)
        print(
            f"  {name:42s} {seconds:5.1f} s   10 nearest kept "
            f"{neighbours_kept(mu, points):.3f}   exact KL {exact_kl(p, points):.3f}",
            flush=True,
        )


def timed(what: str, make):  # noqa: ANN001, ANN201 (a bench's one-liner)
    t = time.perf_counter()
    out = make()
    seconds = time.perf_counter() - t
    print(f"  {what}: {seconds:.1f} s", flush=True)
    return out, seconds


def placing(placer: layouts.Placer, mu: np.ndarray) -> str:
    """Median seconds to place one z (5 points of the data, nudged), and the first call's."""
    rng = np.random.default_rng(1)
    times = []
    for i in rng.choice(len(mu), 6, replace=False):
        t = time.perf_counter()
        placer.place(mu[i : i + 1] + 0.01)
        times.append(time.perf_counter() - t)
    rest = statistics.median(times[1:])
    return f"first {times[0] * 1000:.0f} ms, then median {rest * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", type=int, default=20_000)
    parser.add_argument("--grids", action="store_true")
    ns = parser.parse_args()
    print(f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}", flush=True)
    served = load_checkpoint(ROOT / "checkpoints" / MODEL).served()
    image_set = open_set("fashion-mnist")
    enc, _ = timed(
        f"{MODEL} encoding of fashion-mnist ({len(image_set):,} images; kept after the first run)",
        lambda: encode_set(served, image_set, ROOT / ".cache" / "bench-layouts"),
    )
    classes = image_set.column("label").values[enc.indices].astype(np.int64)
    mu_all = np.asarray(enc.mu[enc.ok], dtype=np.float32)
    y_all = classes[enc.ok]
    print(f"μ: {mu_all.shape[0]:,} × {mu_all.shape[1]}", flush=True)

    rows = np.sort(np.random.default_rng(0).choice(len(mu_all), ns.subset, replace=False))
    mu, y = mu_all[rows].astype(np.float64), y_all[rows]
    print(f"\n{ns.subset:,} μ (seed 0), perplexity 30; 10-NN vote on μ itself {vote(mu, y):.3f}")
    if ns.grids:
        grids(mu)
        return
    sk, sk_s = timed("scikit-learn Barnes-Hut t-SNE", lambda: layouts.tsne_scikit_learn(mu, 0, 30))
    ot, ot_s = timed("openTSNE FFT t-SNE (served: intervals 2 units wide)",
                     lambda: layouts.tsne(mu, 0, 30))  # fmt: skip
    fine, fine_s = timed("openTSNE FFT t-SNE (its default grid: 1 unit)",
                         lambda: layouts.tsne(mu, 0, 30, interval=1))  # fmt: skip
    p = PerplexityBasedNN(mu, perplexity=30, method="exact", knn_kwargs={"algorithm": "brute"}).P
    for name, layout, seconds in (("scikit-learn", sk, sk_s), ("openTSNE, served", ot, ot_s),
                                  ("openTSNE, default grid", fine, fine_s)):  # fmt: skip
        print(
            f"  {name:24s} {seconds:5.1f} s  {sk_s / seconds:3.1f}× scikit-learn's speed   "
            f"10-NN vote {vote(layout.points, y):.3f}   10 nearest kept "
            f"{neighbours_kept(mu, layout.points):.3f}   exact KL "
            f"{exact_kl(p.tocoo(), layout.points):.3f}",
            flush=True,
        )

    n = len(mu_all)
    print(f"\nall {n:,} μ; 10-NN vote on μ itself {vote(mu_all, y_all):.3f}", flush=True)
    pca, _ = timed("PCA, streamed", lambda: layouts.pca(mu_all))
    print(f"  10-NN vote {vote(pca.points, y_all):.3f}; its two axes hold "
          f"{sum(pca.settings['explained_variance_ratio']):.0%} of μ's variance")  # fmt: skip
    big, _ = timed("openTSNE FFT t-SNE", lambda: layouts.tsne(mu_all.astype(np.float64), 0, 30))
    print(f"  10-NN vote {vote(big.points, y_all):.3f}", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        timed("UMAP's first call in a process (numba compiling), 500 points",
              lambda: layouts.umap(mu_all[:500], 0))  # fmt: skip
    um, _ = timed("UMAP", lambda: layouts.umap(mu_all, 0))
    print(f"  10-NN vote {vote(um.points, y_all):.3f}", flush=True)

    print(f"\nplacing one z on the {n:,}-point maps", flush=True)
    print(f"  openTSNE transform: {placing(big.placer, mu_all)}")
    print(f"  UMAP transform: {placing(um.placer, mu_all)}")
    rebuilt, _ = timed(
        "openTSNE rebuilt from μ and positions (affinities again)",
        lambda: layouts.rebuilt_placer("tsne", mu_all, layouts.Layout(big.points, big.settings)),
    )
    print(f"    then: {placing(rebuilt, mu_all)}")
    rebuilt, _ = timed(
        "UMAP rebuilt from μ and positions (neighbour index again)",
        lambda: layouts.rebuilt_placer("umap", mu_all, layouts.Layout(um.points, um.settings)),
    )
    print(f"    then: {placing(rebuilt, mu_all)}")


if __name__ == "__main__":
    main()
