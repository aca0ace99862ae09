"""Write Fashion-MNIST's 10,000 test images to a folder the explorer serves as a data set: one
28×28 grey PNG per image, as published (not padded), a `metadata.csv` (`file_name,label`, the
label as its class number 0…9) and a `dataset.json` that names the classes, so the label column
reads "sneaker", not "7".

    .venv/bin/python examples/export_fashion_test.py --out datasets/fashion-mnist-test [--n 1000]

Image i of the folder is test image i (the order of Debian's t10k files). A folder that already
holds anything is refused unless --force, which writes over files of the same names and leaves
the rest.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from PIL import Image

from app.data.fashion_mnist import DEFAULT_ROOT, LABEL_NAMES, SIDE, FashionMNIST

RECORD = {
    "description": "Fashion-MNIST's test split: 28×28 grey photographs of clothes, "
    "the label their class",
    "columns": {"label": {"kind": "categorical", "categories": list(LABEL_NAMES)}},
    "credit": 'Fashion-MNIST: Han Xiao, Kashif Rasul and Roland Vollgraf, "Fashion-MNIST: a '
    'Novel Image Dataset for Benchmarking Machine Learning Algorithms", 2017 (Zalando '
    "Research), from Debian's dataset-fashion-mnist",
    "licence": "MIT (Fashion-MNIST's licence, Copyright (c) 2017 Zalando SE)",
}


def export_fashion_test(
    out: Path, n: int | None = None, force: bool = False, root: Path = DEFAULT_ROOT
) -> int:
    """Write the first `n` test images (all where None) to `out`; the number written."""
    if out.exists() and not out.is_dir():
        raise SystemExit(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SystemExit(f"{out}: not empty; choose an empty folder or pass --force")
    test = FashionMNIST(root, split="test", image_size=SIDE)
    count = len(test) if n is None else min(n, len(test))
    out.mkdir(parents=True, exist_ok=True)
    width = len(str(count - 1))
    with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        table = csv.writer(f)
        table.writerow(["file_name", "label"])
        for i in range(count):
            name = f"{i:0{width}d}.png"
            Image.fromarray(test.images[i, 0], mode="L").save(out / name)  # (28, 28) uint8
            table.writerow([name, int(test.labels[i])])
    (out / "dataset.json").write_text(json.dumps(RECORD, indent=2, ensure_ascii=False) + "\n")
    return count


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--out", type=Path, required=True, help="the folder to write (made if absent)")
    p.add_argument("--n", type=int, default=None, help="the first N test images (default: all)")
    p.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="Fashion-MNIST's idx files")
    args = p.parse_args(argv)
    if args.n is not None and args.n < 1:
        p.error("--n must be at least 1")
    count = export_fashion_test(args.out, args.n, args.force, args.root)
    print(f"wrote {count:,} Fashion-MNIST test images to {args.out}")  # noqa: T201


if __name__ == "__main__":
    main()
