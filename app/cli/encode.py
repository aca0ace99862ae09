"""`latent-explorer encode MODEL DATA`: a model's encoding of a data set (μ, log σ², KL per latent
and −log p(x|z) per image), computed once and kept as Parquet in the cache folder. Under
`torchrun --nproc_per_node N` the N processes share the work (gloo, on the CPU)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.checkpoints import ServedModel
    from app.data.sets import ImageSet
    from app.encodings import DataEncoding, RunSettings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "encode",
        help="encode every image of a data set with a model, once, into the cache (Parquet)",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", help="a checkpoint folder, or a model's name in --checkpoints")
    p.add_argument(
        "data",
        help="a built-in data set (dsprites, shapes3d, fashion-mnist) or a folder of images "
        "(class sub-folders, a metadata.csv/.jsonl, or a saved Hugging Face dataset)",
    )
    p.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="folder of checkpoint folders a MODEL name is looked up in (default: settings / "
        "./checkpoints)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where encodings are kept, under encodings/ (default: settings' cache_dir, else "
        ".cache)",
    )
    p.add_argument("--batch", type=int, default=None, help="images per model call (default 64)")
    p.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="images per part file: what an interrupted run loses at most, and the unit the "
        "processes under torchrun share out (default 4096)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="threads each reading and encoding whole batches; 0 does every batch in the "
        "main thread (default: on the CPU one per core, at most 4, sharing torch's threads, "
        "kept only where the first batches ran faster on them than in the main thread; half "
        "the cores, at most 4, for a model on a GPU)",
    )
    p.add_argument(
        "--label-column",
        default=None,
        help="a CVAE's class column (default: the categorical column whose categories are the "
        "model's label names)",
    )


def run(ns: argparse.Namespace) -> int:
    # heavy imports here, so `latent-explorer --help` stays quick
    from app.checkpoints import CheckpointError, load_checkpoint
    from app.data.sets import DatasetError, open_set
    from app.encodings import BATCH, CHUNK, EncodingError, RunSettings
    from app.encodings.distributed import process_group
    from app.inference import prepare_for_serving
    from app.settings import Settings

    settings = Settings()
    model_path = Path(ns.model)
    if not model_path.is_dir():
        model_path = (ns.checkpoints or settings.checkpoints_dir) / ns.model
    cache_dir = ns.cache_dir or settings.cache_dir or Path(".cache")
    try:
        served = prepare_for_serving(load_checkpoint(model_path).served())
        data = open_set(ns.data, fashion_root=settings.fashion_mnist_dir)
        run_settings = RunSettings(
            batch_size=BATCH if ns.batch is None else ns.batch,
            workers=ns.workers,
            chunk_size=CHUNK if ns.chunk is None else ns.chunk,
        )
        with process_group() as (rank, world):
            return _encode(served, data, cache_dir, ns.label_column, run_settings, rank, world)
    except (CheckpointError, DatasetError, EncodingError) as e:
        print(f"latent-explorer encode: error: {e}", file=sys.stderr)  # noqa: T201
        return 1
    except KeyboardInterrupt:
        print(  # noqa: T201
            "latent-explorer encode: interrupted; the chunks finished are kept, and the same "
            "command resumes from them",
            file=sys.stderr,
        )
        return 130


def _encode(
    served: ServedModel,
    data: ImageSet,
    cache_dir: Path,
    label_column: str | None,
    settings: RunSettings,
    rank: int,
    world: int,
) -> int:
    from tqdm import tqdm

    from app.encodings import encode_set, find_encoding
    from app.encodings.distributed import encode_set_shared

    found = find_encoding(served, data, cache_dir, label_column)
    if found is not None:
        if rank == 0:
            _report(found, None)
        return 0
    share = f" (process 0 of {world}: its share)" if world > 1 else ""
    bar = tqdm(total=len(data), unit="img", desc=f"encoding {data.name}{share}",
               disable=rank != 0, dynamic_ncols=True)  # fmt: skip

    def progress(fraction: float, images_per_s: float) -> None:
        bar.n = round(fraction * len(data))
        bar.refresh()

    start = time.perf_counter()
    with bar:
        if world > 1:
            encoding, kept = encode_set_shared(
                served, data, cache_dir, label_column, settings, progress
            )
        else:
            encoding, kept = encode_set(served, data, cache_dir, label_column, settings,
                                        progress), False  # fmt: skip
    if rank == 0:
        _report(encoding, None if kept else time.perf_counter() - start)
    return 0


def _report(encoding: DataEncoding, seconds: float | None) -> None:
    """Where the file is and what it holds; `seconds` None: it was there already."""
    m = encoding.meta
    lines = [
        f"{m.model} on {m.set_name}: "
        + ("already encoded, nothing to do" if seconds is None else "encoded"),
        f"  file        {encoding.path}",
        f"  images      {m.n:,} ({m.unreadable:,} unreadable"
        + (f", {m.unlabelled:,} without a class" if m.label_column else "")
        + ")",
        f"  latents     {m.latent_dim}",
    ]
    if seconds is None:
        lines.append(f"  made        {m.date}, in {m.seconds:.1f} s")
    else:
        rate = (m.n - m.images_reused) / max(seconds, 1e-9)
        lines.append(f"  seconds     {seconds:.1f} ({rate:,.0f} images/s)")
        if m.parts_reused:
            lines.append(f"  resumed     {m.parts_reused} chunks kept from an interrupted run")
    print("\n".join(lines))  # noqa: T201
