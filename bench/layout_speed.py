"""How fast the map's layouts are, and how much of the class each keeps: fashion-vae's μ of
Fashion-MNIST (the built-in set "fashion-mnist", all 70,000 images, encoded through
app.encodings and kept in .cache/bench-layouts), then

    scikit-learn's Barnes–Hut t-SNE against openTSNE's FFT-accelerated t-SNE on the same
    20,000 μ (a seeded subset), side by side;
    openTSNE and UMAP of all 70,000 (and the streamed PCA);
    placing one new z on each 70,000-point map with the method's own transform, fresh and
    rebuilt from μ and the positions (as a restarted server does).

Each map's class agreement is the 10-nearest-neighbour vote on its positions, 5-fold
cross-validated, as experiments/latent-map/map_neighbours.py computes it for docs/map.md.

    PYTHONPATH=. .venv/bin/python bench/layout_speed.py [--subset 20000]

Prints the figures; asserts nothing."""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from app.checkpoints import load_checkpoint
from app.data.sets import open_set
from app.encodings.run import encode_set
from app.studies import layouts

ROOT = Path(__file__).resolve().parent.parent
MODEL = "fashion-vae"


def vote(x: np.ndarray, y: np.ndarray) -> float:
    """The 10-NN class vote, 5-fold cross-validated (experiments/latent-map/map_neighbours.py)."""
    return float(cross_val_score(KNeighborsClassifier(10), x, y, cv=5).mean())


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
    sk, sk_s = timed("scikit-learn Barnes-Hut t-SNE", lambda: layouts.tsne_scikit_learn(mu, 0, 30))
    ot, ot_s = timed("openTSNE FFT t-SNE", lambda: layouts.tsne(mu, 0, 30))
    print(f"  10-NN vote: scikit-learn {vote(sk.points, y):.3f}, openTSNE {vote(ot.points, y):.3f}"
          f"; KL {sk.settings['kl_divergence']:.3f} vs {ot.settings['kl_divergence']:.3f}; "
          f"openTSNE {sk_s / ot_s:.1f}× faster")  # fmt: skip

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
