"""How fast the procedural renderers draw images (single thread, batches of 256)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from app.data import dsprites, shapes3d


def rate(
    render: Callable[[np.ndarray], np.ndarray],
    sample_classes: Callable[[np.random.Generator, int], np.ndarray],
    seconds: float,
    batch: int,
) -> float:
    rng = np.random.default_rng(0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        render(sample_classes(rng, batch))
        n += batch
    return n / (time.perf_counter() - t0)


def main(seconds: float = 5.0, batch: int = 256) -> None:
    dsprites.render(dsprites.sample_classes(np.random.default_rng(0), batch))  # heart lookup table
    r = rate(dsprites.render, dsprites.sample_classes, seconds, batch)
    print(f"dsprites render: {r:,.0f} images/s (batch {batch}, one thread)")

    # every geometry is ray-cast once, on first use: time that apart from the steady state
    t0 = time.perf_counter()
    shapes3d.render(shapes3d.index_to_classes(np.arange(shapes3d.N_GEOMETRIES)))
    warm = time.perf_counter() - t0
    r = rate(shapes3d.render, shapes3d.sample_classes, seconds, batch)
    print(f"shapes3d render: {r:,.0f} images/s (batch {batch}, one thread)")
    print(f"shapes3d first use: {warm:.1f} s to trace all {shapes3d.N_GEOMETRIES} geometries")


if __name__ == "__main__":
    main()
