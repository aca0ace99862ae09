"""The README's "recognisably the input" table: each dSprites model's reconstructions read back as
a shape, a scale and an angle (app.metrics.recognition).

    python bench/recognition_table.py [--n 512]

On n held-out sprites (seed 0): the share whose reconstruction's closest dSprites image has the
input's shape, its scale within one step, its angle within 15° (modulo the shape's symmetry),
all three at once, and that share per shape; and the mean centroid distance in pixels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.checkpoints import load_checkpoint  # noqa: E402
from app.metrics.recognition import recognise  # noqa: E402

MODELS = ("dsprites-ae", "dsprites-vae", "dsprites-beta-vae", "dsprites-cvae", "dsprites-dae")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=512)
    p.add_argument("models", nargs="*", default=MODELS)
    a = p.parse_args()
    torch.set_num_threads(1)
    print(
        "| model | shape | scale ±1 | angle ±15° | all three | square / ellipse / heart "
        "| centroid error |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in a.models:
        path = Path(name) if "/" in name else ROOT / "checkpoints" / name
        r = recognise(load_checkpoint(path), n=a.n)
        per = " / ".join(f"{v:.2f}" for v in r.by_shape.values())
        print(
            f"| `{path.name}` | {r.shape:.2f} | {r.scale:.2f} | {r.angle:.2f} "
            f"| **{r.all_three:.2f}** | {per} | {r.centroid_px:.2f} px |"
        )


if __name__ == "__main__":
    main()
