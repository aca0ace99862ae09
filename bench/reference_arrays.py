"""Write tests/data/reference_codes.npz: the posterior means μ of the shipped dsprites-beta-vae on
dSprites images drawn with a fixed seed, with their factor classes, for
tests/test_reference_metrics.py to score with app/metrics/reference.py and with
disentanglement_lib's own functions (tests/reference/). Small (600 train / 300 test points) so
the library's gradient boosting runs in seconds; float64, as evaluate hands them over.

    python bench/reference_arrays.py [--checkpoint checkpoints/dsprites-beta-vae]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.checkpoints import load_checkpoint  # noqa: E402
from app.metrics.evaluate import ImageEncoder  # noqa: E402

SEED = 20261206
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "reference_codes.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", type=Path, default=Path("checkpoints/dsprites-beta-vae"))
    ap.add_argument("--train", type=int, default=600)
    ap.add_argument("--test", type=int, default=300)
    a = ap.parse_args()
    ckpt = load_checkpoint(a.checkpoint)
    encode = ImageEncoder(ckpt.served())
    rng = np.random.default_rng(SEED)
    factors = encode.truth.sample_classes(rng, a.train)
    factors_test = encode.truth.sample_classes(rng, a.test)
    np.savez_compressed(
        OUT, codes=encode(factors), factors=factors, codes_test=encode(factors_test),
        factors_test=factors_test, model=ckpt.name, digest=ckpt.digest, seed=SEED,
    )  # fmt: skip
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes): {ckpt.name} {ckpt.digest[:12]}")


if __name__ == "__main__":
    main()
