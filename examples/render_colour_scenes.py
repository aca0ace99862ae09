"""Render colour scenes (app/data/shapes3d.py) to a folder the explorer serves as a data set:
one 64×64 RGB PNG per scene, its six factors drawn uniformly from a seed, a `metadata.csv` with
every factor as a column at its true value (hues 0…0.9, scale 0.75…1.25, orientation in degrees
−30…30; shape by name) and a `dataset.json` that lists them as the set's generating factors, so
the disentanglement metrics can score a model on these pictures.

    .venv/bin/python examples/render_colour_scenes.py --out datasets/colour-scenes [--n 10000]

The same seed draws the same scenes: scene i has the classes of row i of
`shapes3d.sample_classes(numpy.random.default_rng(seed), n)`. A folder that already holds
anything is refused unless --force, which writes over files of the same names and leaves the
rest.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from app.data import shapes3d

BATCH = 500  # scenes rendered at once: 500 × 64 × 64 × 3 bytes = 6 MB
SHAPE = shapes3d.FACTOR_NAMES.index("shape")
RECORD = {
    "description": "Colour scenes drawn by latent-explorer's renderer from uniformly random "
    "factors: a coloured object in a two-walled room",
    "factors": list(shapes3d.FACTOR_NAMES),
    # declared, not guessed: a few scenes could hold only whole numbers in a column
    "columns": {
        name: (
            {"kind": "categorical", "categories": list(shapes3d.SHAPE_NAMES)}
            if name == "shape"
            else {"kind": "ordered"}
        )
        for name in shapes3d.FACTOR_NAMES
    },
    "credit": "Drawn by latent-explorer (app/data/shapes3d.py) from the factors and factor "
    "values of DeepMind's 3D Shapes (Burgess & Kim 2018); the pictures are the renderer's own",
    "licence": "",
}


def factor_text(k: int, c: int) -> str:
    """Factor k's value at class c as the table holds it: the shape's name, else the value
    written so that it reads back as exactly the same float."""
    if k == SHAPE:
        return shapes3d.SHAPE_NAMES[c]
    return repr(float(shapes3d.FACTOR_VALUES[k][c]))


def render_colour_scenes(out: Path, n: int = 10_000, seed: int = 0, force: bool = False) -> None:
    """Draw `n` scenes from `seed` and write them, their table and record to `out`."""
    if out.exists() and not out.is_dir():
        raise SystemExit(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SystemExit(f"{out}: not empty; choose an empty folder or pass --force")
    classes = shapes3d.sample_classes(np.random.default_rng(seed), n)  # (n, 6)
    out.mkdir(parents=True, exist_ok=True)
    width = len(str(n - 1))
    with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        table = csv.writer(f)
        table.writerow(["file_name", *shapes3d.FACTOR_NAMES])
        for start in range(0, n, BATCH):
            images = shapes3d.render(classes[start : start + BATCH])  # (B, 64, 64, 3) uint8
            for i, (image, row) in enumerate(zip(images, classes[start:], strict=False)):
                name = f"{start + i:0{width}d}.png"
                Image.fromarray(image, mode="RGB").save(out / name)
                table.writerow([name, *(factor_text(k, int(c)) for k, c in enumerate(row))])
    (out / "dataset.json").write_text(json.dumps(RECORD, indent=2, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--out", type=Path, required=True, help="the folder to write (made if absent)")
    p.add_argument("--n", type=int, default=10_000, help="how many scenes (default 10,000)")
    p.add_argument("--seed", type=int, default=0, help="the seed the factors are drawn from")
    p.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error("--n must be at least 1")
    render_colour_scenes(args.out, args.n, args.seed, args.force)
    print(f"wrote {args.n:,} colour scenes (seed {args.seed}) to {args.out}")  # noqa: T201


if __name__ == "__main__":
    main()
