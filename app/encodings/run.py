"""Computing an encoding: the set's images in chunks (CHUNK images each, each chunk written as
its own part file the moment it is done, so a killed run resumes from them), then the parts
merged into the one Parquet file.

Batches go to a few threads (`RunSettings.workers`), each reading and fitting its batch and
encoding it, a few batches ahead of the one being written. torch gives up the GIL inside its
kernels, so on the CPU the threads can run side by side, one core each (each thread's torch has
its share of the caller's intra-op threads; a batch's numbers are the same whichever thread
computed it). Whether they do depends on the model: on 2 cores (2026-12-06) dsprites-beta-vae's
convolutions encoded 1,830 images/s in one thread on one torch thread, 3,060 on two torch
threads and 4,250 on two threads of one; fashion-vae, an MLP whose many small operations hold
the GIL (the served decoder goes row by row, for batch-invariant bytes), ran 16,800, 20,400 and
14,000. So unless told how many threads, a run on the CPU times its first batches alone and then
on the threads, and keeps whichever is faster. Reading ahead on other threads while one thread
ran the model was slower than either (Pillow's file parsing holds the GIL too). A model on a GPU
leaves the cores to the threads' reading.

Only a few batches of images are ever held, whatever the set's size: memory is the model's,
those batches, and the numbers of the chunk in progress (n × D floats at the end).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from app import background
from app.checkpoints.served import ServedModel
from app.data.sets.record import ImageSet
from app.encodings.cache import (
    EncodingPlan,
    Reused,
    chunk_bounds,
    claimed,
    part_path,
    part_record,
    plan_encoding,
    read_encoding,
    read_part,
    remember,
    touch,
    with_outcome,
)
from app.encodings.record import (
    META_KEY,
    DataEncoding,
    EncodingError,
    read_column,
    rows_schema,
    rows_table,
    write_table_atomically,
    write_tables_atomically,
)
from app.models.elbo import reconstruction_nll_of_means
from app.models.interface import LatentModel
from app.models.priors import prior_kl, prior_of

log = logging.getLogger(__name__)

CHUNK = 4096  # images per part file: what a killed run loses at most
BATCH = 64  # images per model call; on 2 cores 64 ran faster than 256 or 1,024 (cache-sized)
Progress = Callable[[float, float], None]  # (fraction done, images per second)
# on the CPU, unless told how many threads: PROBE batches are timed in the caller's thread, then
# PROBE a thread on the threads, which are kept only if they run KEEP_THREADS times as fast
PROBE = 8
KEEP_THREADS = 1.1


def default_workers(model: LatentModel, processes: int = 1) -> int:
    """Threads where none are asked for: on the CPU one per core this process may use (shared
    with the other `processes` of a torchrun group), at most 4; for a model on a GPU, half the
    cores, 1 to 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if _device(model).type == "cpu":
        return max(1, min(4, cores // max(1, processes)))
    return max(1, min(4, cores // 2))


@dataclass(frozen=True)
class RunSettings:
    batch_size: int = BATCH
    # threads each reading and encoding whole batches; 0: every batch in the calling thread;
    # None: as suits the model's device (default_workers), on the CPU kept only where they run
    # faster than the calling thread alone (timed on the first batches)
    workers: int | None = None
    chunk_size: int = CHUNK

    def __post_init__(self) -> None:
        for name in ("batch_size", "chunk_size"):
            if getattr(self, name) < 1:
                raise EncodingError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.workers is not None and self.workers < 0:
            raise EncodingError(f"workers must be 0 or more, got {self.workers}")

    def threads(self, model: LatentModel, processes: int = 1) -> int:
        return default_workers(model, processes) if self.workers is None else self.workers


def encode_set(
    served: ServedModel,
    data: ImageSet,
    cache_dir: Path,
    label_column: str | None = None,
    settings: RunSettings | None = None,
    progress: Progress | None = None,
) -> DataEncoding:
    """The encoding of `served` on `data`: read where it is kept, else computed (resuming from
    the chunks an interrupted run left) and kept. EncodingBusy where another process is
    computing it now; EncodingError in one line where it cannot be made."""
    plan = plan_encoding(served, data, cache_dir, label_column)
    found = read_encoding(plan)
    if found is not None:
        return found
    settings = settings or RunSettings()
    with claimed(plan, settings.chunk_size):
        found = read_encoding(plan)  # finished by another process while we looked
        if found is not None:
            return found
        start = time.perf_counter()
        reused = encode_parts(plan, served, data, settings, progress=progress)
        return merge_parts(plan, settings.chunk_size, time.perf_counter() - start, reused)


def encode_parts(
    plan: EncodingPlan,
    served: ServedModel,
    data: ImageSet,
    settings: RunSettings,
    rank: int = 0,
    world: int = 1,
    progress: Progress | None = None,
) -> Reused:
    """Write the part files of chunks rank, rank + world, ... that are not written yet; what of
    this process's share was (kept from an earlier run)."""
    n, size = plan.meta.n, settings.chunk_size

    def images(chunks: list[int]) -> int:
        return sum(min(n, (c + 1) * size) - c * size for c in chunks)

    mine = list(range(rank, -(-n // size), world))
    todo = [c for c in mine if read_part(plan, c, *chunk_bounds(n, size, c)) is None]
    total, kept = images(mine), images(mine) - images(todo)
    if world > 1:
        log.info("process %d of %d: chunks %s (%d kept from an earlier run)", rank, world,
                 ", ".join(map(str, todo)) or "none", len(mine) - len(todo))  # fmt: skip
    started, encoded = time.perf_counter(), 0

    def batch_done(count: int) -> None:
        nonlocal encoded
        encoded += count
        if progress is not None:
            rate = encoded / max(time.perf_counter() - started, 1e-9)
            progress((kept + encoded) / total, rate)

    plan.parts.mkdir(parents=True, exist_ok=True)
    for chunk, arrays in _encoded_chunks(plan, served, data, todo, settings, batch_done, world):
        start, stop = chunk_bounds(n, size, chunk)
        write_table_atomically(
            part_path(plan, chunk),
            rows_table(**arrays, metadata=part_record(plan, chunk, start, stop)),
            durable=False,  # a part cut short by a crash fails its check and is computed again
        )
        touch(plan)
    return Reused(len(mine) - len(todo), kept)


def merge_parts(
    plan: EncodingPlan, chunk_size: int, seconds: float, reused: Reused | None = None
) -> DataEncoding:
    """Every chunk's part into `<key>.parquet`, one row group each (written beside, then renamed
    into place); the parts are removed after. One chunk's rows are held at a time beside the
    encoding returned: the record's counts come first from the parts' `ok` columns alone."""
    n, d = plan.meta.n, plan.meta.latent_dim
    labelled = np.ones(n, dtype=bool) if plan.labels is None else plan.labels >= 0
    chunks = range(-(-n // chunk_size))
    unreadable = 0
    for chunk in chunks:
        start, stop = chunk_bounds(n, chunk_size, chunk)
        ok = read_column(part_path(plan, chunk), "ok")
        if ok is None or len(ok) != stop - start:
            raise EncodingError(
                f"chunk {chunk} of {plan.meta.model} on {plan.meta.set_name} is missing"
            )
        unreadable += int((labelled[start:stop] & ~ok).sum())
    unlabelled = int((~labelled).sum())  # a CVAE's images without a class: not encoded
    meta = with_outcome(plan.meta, seconds, unreadable, unlabelled, reused or Reused())
    whole = _empty_rows(0, n, d)

    def row_groups() -> Iterator[pa.Table]:
        for chunk in chunks:
            start, stop = chunk_bounds(n, chunk_size, chunk)
            part = read_part(plan, chunk, start, stop)
            if part is None:
                raise EncodingError(f"chunk {chunk} changed while it was merged")
            for name, values in part.items():
                whole[name][start:stop] = values
            yield rows_table(**part, metadata=None)

    schema = rows_schema(d, {META_KEY: meta.to_json().encode()})
    write_tables_atomically(plan.path, schema, row_groups())
    shutil.rmtree(plan.parts, ignore_errors=True)
    pa.default_memory_pool().release_unused()  # the parts' buffers, kept by the pool for reuse
    for values in whole.values():
        values.setflags(write=False)
    return remember(plan, DataEncoding(meta=meta, **whole, path=plan.path))


# --- the pipeline -------------------------------------------------------------------------


def _encoded_chunks(
    plan: EncodingPlan,
    served: ServedModel,
    data: ImageSet,
    chunks: list[int],
    settings: RunSettings,
    batch_done: Callable[[int], None],
    processes: int = 1,
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(chunk, its rows) for each chunk in turn, its batches encoded on the settings' threads;
    `batch_done(images)` after each batch, in order."""
    n, d = plan.meta.n, plan.meta.latent_dim
    batches = [
        (chunk, np.arange(b, min(b + settings.batch_size, stop), dtype=np.int64))
        for chunk in chunks
        for start, stop in [chunk_bounds(n, settings.chunk_size, chunk)]
        for b in range(start, stop, settings.batch_size)
    ]

    def encoded(indices: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return _encoded_batch(served.model, data, plan, indices)

    rows: dict[str, np.ndarray] = {}
    filled = 0
    threads = settings.threads(served.model, processes)
    measure = settings.workers is None and _device(served.model).type == "cpu"
    for chunk, indices, (ok, out) in _in_order(encoded, batches, threads, served.model, measure):
        start, stop = chunk_bounds(n, settings.chunk_size, chunk)
        if not rows:
            rows = _empty_rows(start, stop, d)
        at = slice(indices[0] - start, indices[-1] + 1 - start)  # a batch is consecutive
        rows["ok"][at] = ok
        if ok.all():
            for name, values in out.items():
                rows[name][at] = values
        elif ok.any():
            for name, values in out.items():
                rows[name][at][ok] = values
        filled += len(indices)
        batch_done(len(indices))
        if filled == stop - start:
            yield chunk, rows
            rows, filled = {}, 0


def _encoded_batch(
    model: LatentModel, data: ImageSet, plan: EncodingPlan, indices: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Which of the images at `indices` were encoded (read, and with a class where a CVAE needs
    one), and encode_batch of those."""
    x, ok = data.fitted(indices, plan.fitting)
    labels = None
    if plan.labels is not None:
        labels = plan.labels[indices]
        ok = ok & (labels >= 0)  # an image without a class cannot be encoded by a CVAE
    if ok.all():  # no copy of the batch
        return ok, encode_batch(model, x, labels)
    if not ok.any():
        return ok, {}
    return ok, encode_batch(model, x[ok], None if labels is None else labels[ok])


Done = tuple[np.ndarray, dict[str, np.ndarray]]  # what one batch's work returns


def _in_order(
    work: Callable[[np.ndarray], Done],
    batches: list[tuple[int, np.ndarray]],
    threads: int,
    model: LatentModel,
    measure: bool = False,
) -> Iterator[tuple[int, np.ndarray, Done]]:
    """(chunk, indices, work(indices)) for each batch in order: done when it is asked for
    (threads 0), or on one of `threads` threads, at most 2·threads batches in hand (done or
    being done) beyond the one returned. On the CPU each thread's torch gets an equal share of
    the caller's intra-op threads (in a server: one each).

    `measure`: time PROBE batches in the caller's thread, then PROBE per thread on the threads,
    and keep the threads only where they ran at least KEEP_THREADS times the caller's rate;
    else the rest is done in the caller's thread. A model whose small operations hold the GIL
    (an MLP that decodes row by row) runs slower on threads than alone."""
    todo = iter(batches)
    alone = 0.0  # images per second in the caller's thread, where measured
    if threads == 0 or measure:
        started, images = 0.0, 0
        for done, (chunk, indices) in enumerate(todo):
            if done == 1:  # the first batch warms up (allocations): not timed
                started = time.perf_counter()
            result = work(indices)
            images += len(indices) if done >= 1 else 0
            yield chunk, indices, result
            if threads and done == PROBE:
                alone = images / max(time.perf_counter() - started, 1e-9)
                break
        if threads == 0:
            return
    initializer = None
    share = max(1, torch.get_num_threads() // threads)
    if _device(model).type == "cpu" and share != torch.get_num_threads() and _per_thread():
        initializer = partial(torch.set_num_threads, share)
    depth = 2 * threads + 1
    pool = ThreadPoolExecutor(threads, thread_name_prefix="encode", initializer=initializer)
    pending: deque[tuple[int, np.ndarray, Future[Done]]] = deque()
    judged = not alone
    started, images, returned = 0.0, 0, 0
    try:
        while True:
            while len(pending) < depth:
                nxt = next(todo, None)
                if nxt is None:
                    break
                chunk, indices = nxt
                try:
                    future = pool.submit(work, indices)
                except RuntimeError:  # concurrent.futures takes no work once the process exits
                    raise background.Stopped("the process is exiting") from None
                pending.append((chunk, indices, future))
            if not pending:
                return
            chunk, indices, future = pending.popleft()
            result = future.result()
            returned += 1
            if returned == threads:  # each thread's first batch warms it up: not timed
                started = time.perf_counter()
            elif returned > threads:
                images += len(indices)
            yield chunk, indices, result
            if not judged and returned == threads * (PROBE + 1):
                judged = True
                if images / max(time.perf_counter() - started, 1e-9) < KEEP_THREADS * alone:
                    break  # slower on threads: the rest in the caller's thread
        for chunk, indices, future in pending:
            yield chunk, indices, future.result()
        pending.clear()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for chunk, indices in todo:
        yield chunk, indices, work(indices)


def _per_thread() -> bool:
    """Whether torch's intra-op thread count is each thread's own (OpenMP: set_num_threads in
    one thread leaves the others' alone); with torch's native pool it is the process's."""
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def _empty_rows(start: int, stop: int, d: int) -> dict[str, np.ndarray]:
    m = stop - start
    return {
        "indices": np.arange(start, stop, dtype=np.int64),
        "ok": np.zeros(m, dtype=bool),
        "mu": np.full((m, d), np.nan, dtype=np.float32),
        "logvar": np.full((m, d), np.nan, dtype=np.float32),
        "kl": np.full((m, d), np.nan, dtype=np.float32),
        "nll": np.full(m, np.nan, dtype=np.float32),
    }


@torch.inference_mode()
def encode_batch(
    model: LatentModel, x: np.ndarray, labels: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Images (B, C, H, W) float32 in [0, 1] → μ, log σ², KL per latent (B, D) and
    −log p(x | z = μ) (B,), as inference.encode_images reckons them, with a class per image
    for a CVAE. The KL is against the model's prior (app.models.priors.prior_kl): for a
    mixture prior, each latent's marginal KL, which does not sum to the total."""
    d = model.description
    device = _device(model)
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    lt = None if labels is None else torch.from_numpy(labels.astype(np.int64)).to(device)
    posterior = model.encode(xt, lt)
    means = model.decode(posterior.mean, lt)
    nll = reconstruction_nll_of_means(means, xt, d.likelihood, d.gaussian_sigma)
    logvar = (
        torch.full_like(posterior.mean, -torch.inf)  # an AE's code: σ = 0
        if posterior.logvar is None
        else posterior.logvar
    )
    return {
        "mu": posterior.mean.float().cpu().numpy(),
        "logvar": logvar.float().cpu().numpy(),
        "kl": prior_kl(posterior.mean, posterior.logvar, prior_of(model))
        .per_latent.float()
        .cpu()
        .numpy(),
        "nll": nll.float().cpu().numpy(),
    }


def _device(model: LatentModel) -> torch.device:
    """Where a model's weights are (a plugin that is not a torch module: the CPU)."""
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device("cpu")
