"""One encoding shared by the processes `torchrun` starts: process r of W encodes chunks r,
r + W, ...; all wait at a barrier; process 0 merges the parts into the one Parquet file. Only
process 0 holds the lock, decides whether there is anything to do, and reports progress (as
nanoGPT's master_process does the side effects)."""

from __future__ import annotations

import contextlib
import datetime
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch.distributed as dist

from app.checkpoints.served import ServedModel
from app.data.sets.record import ImageSet
from app.encodings.cache import (
    Reused,
    claim,
    holder_text,
    plan_encoding,
    read_encoding,
    release,
)
from app.encodings.record import DataEncoding, EncodingBusy, EncodingError
from app.encodings.run import Progress, RunSettings, encode_parts, merge_parts

# a barrier waits for the slowest process: an encoding of a large set may take an hour
TIMEOUT = datetime.timedelta(hours=6)


def torchrun_rank() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) in a plain process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ["RANK"]), world) if world > 1 else (0, 1)


@contextlib.contextmanager
def process_group() -> Iterator[tuple[int, int]]:
    """The gloo process group (CPU) for the block, where torchrun started several processes."""
    rank, world = torchrun_rank()
    if world == 1:
        yield rank, world
        return
    dist.init_process_group("gloo", timeout=TIMEOUT)
    try:
        yield rank, world
    finally:
        dist.destroy_process_group()


def encode_set_shared(
    served: ServedModel,
    data: ImageSet,
    cache_dir: Path,
    label_column: str | None = None,
    settings: RunSettings | None = None,
    progress: Progress | None = None,
) -> tuple[DataEncoding, bool]:
    """(the encoding, whether it was already kept), computed by every process of the group;
    each process returns it. `progress` is called on process 0 only, with its own share's
    fraction. EncodingError on every process where any one of them fails (the parts written so
    far are kept for the next run)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    settings = settings or RunSettings()
    plan = plan_encoding(served, data, cache_dir, label_column)
    decision: list[Any] = [None]
    if rank == 0:
        if read_encoding(plan) is not None:
            decision[0] = "found"
        elif claim(plan, settings.chunk_size):
            decision[0] = "claimed"
        else:
            decision[0] = holder_text(plan.lock)
    dist.broadcast_object_list(decision, src=0)
    if decision[0] not in ("found", "claimed"):
        raise EncodingBusy(f"{served.name} on {data.name} is being encoded by {decision[0]}",
                           str(decision[0]))  # fmt: skip
    try:
        if decision[0] == "found":
            found = read_encoding(plan)
            if found is None:
                raise EncodingError(f"{plan.path} cannot be read here")
            return found, True
        start = time.perf_counter()
        failure: str | None = None
        reused = Reused()
        try:
            reused = encode_parts(plan, served, data, settings, rank, world,
                                  progress if rank == 0 else None)  # fmt: skip
        except Exception as e:  # noqa: BLE001 (every process must hear of it, or the rest wait)
            failure = f"process {rank}: {e}"
        failures: list[Any] = [None] * world
        dist.all_gather_object(failures, failure)
        reasons = [str(f) for f in failures if f is not None]
        if reasons:
            raise EncodingError("; ".join(reasons))
        reused_all: list[Any] = [0] * world
        dist.all_gather_object(reused_all, reused)
        encoding: DataEncoding | None = None
        merged: list[Any] = [None]
        if rank == 0:
            try:
                seconds, reused = time.perf_counter() - start, sum(reused_all, Reused())
                encoding = merge_parts(plan, settings.chunk_size, seconds, reused)
            except Exception as e:  # noqa: BLE001 (as above)
                merged[0] = f"merging: {e}"
        dist.broadcast_object_list(merged, src=0)  # also a barrier: the file is in place
        if merged[0] is not None:
            raise EncodingError(str(merged[0]))
        encoding = encoding or read_encoding(plan)
        if encoding is None:
            raise EncodingError(f"{plan.path} cannot be read here")
        return encoding, False
    finally:
        if rank == 0 and decision[0] == "claimed":
            release(plan)
