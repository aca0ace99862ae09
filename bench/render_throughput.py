"""How fast the procedural dSprites renderer draws images (single thread, batches of 256)."""

from __future__ import annotations

import time

import numpy as np

from app.data.dsprites import render, sample_classes


def main(seconds: float = 5.0, batch: int = 256) -> None:
    rng = np.random.default_rng(0)
    render(sample_classes(rng, batch))  # builds the heart lookup table once
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        render(sample_classes(rng, batch))
        n += batch
    rate = n / (time.perf_counter() - t0)
    print(f"render: {rate:,.0f} images/s (batch {batch}, one thread)")


if __name__ == "__main__":
    main()
