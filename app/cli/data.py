"""`latent-explorer data check PATH`: what a data set folder (or a built-in set) would be served
as, and everything wrong with it, before a server is started on it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

PROGRESS_FROM = 1_000  # images: a smaller set is decoded before a progress bar would help


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="look at a data set before serving it")
    commands = p.add_subparsers(dest="data_command", required=True)
    check = commands.add_parser(
        "check",
        help="print what a data set would be served as, and every problem in it",
        description="Open a data set as the server would (a folder of images, a Hugging Face "
        "dataset saved with save_to_disk, or a built-in set by name) and print its name, "
        "source, images (their sizes and modes, every image decoded), columns, splits and "
        "every problem found: what listing the folder found wrong and each image that cannot "
        "be decoded. Exit status 0 when the set opens, problems or not; 1 when it cannot be "
        "opened (see docs/data.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    check.add_argument(
        "path", metavar="PATH", help="a data set folder, or a built-in set's name (dsprites, ...)"
    )
    check.add_argument("--name", default=None, help="the name to serve it under")
    check.add_argument(
        "--limit",
        type=_positive,
        default=None,
        help="decode a seeded sample of this many images, not all (default: all; 1,000 for "
        "the drawn built-ins dsprites and shapes3d)",
    )


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def run(ns: argparse.Namespace) -> int:
    from app.data.base import DatasetError
    from app.data.sets import open_set
    from app.data.sets.check import check_set, report_text

    try:
        images = open_set(ns.path, name=ns.name)
    except (DatasetError, OSError) as e:  # OSError: a file it could not read (permissions)
        print(f"latent-explorer data check: {e}", file=sys.stderr)  # noqa: T201
        return 1
    report = check_set(images, limit=ns.limit, progress=_progress_bar)
    print(report_text(report))  # noqa: T201
    return 0


def _progress_bar(indices: Iterable[int], total: int) -> Iterable[int]:
    from tqdm import tqdm

    return tqdm(
        indices, total=total, file=sys.stderr, unit="image", desc="decoding",
        disable=total < PROGRESS_FROM, leave=False,
    )  # fmt: skip
