"""Where encodings are kept, and what names them: `<cache_dir>/encodings/<key>.parquet`, written
whole and renamed into place; while one is being computed, its finished chunks in
`<key>.parts/` (each its own file, so a killed run resumes where it stopped) and a `<key>.lock`
naming the process computing it (`{"host": ..., "pid": ...}`), so that two processes never
encode the same key at once. A lock of this host whose process is gone is taken over at once;
one of another host once it has not been touched (a chunk finished) for `STALE_AFTER` seconds.

The key is a digest of what an encoding depends on: the model's weights digest, the set's
content digest (which changes when any image's size or mtime, or any column, changes), the
fitting, the format, and a CVAE's class column. Nothing stale is ever served: a change gives
another key, and a file whose record is not its key's is never read as it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from app.cache_files import lock_holder, lock_is_stale, take_lock
from app.checkpoints.served import ServedModel
from app.data.sets.record import Fitting, ImageSet, digest_of
from app.encodings.record import (
    ENCODING_FORMAT,
    META_KEY,
    DataEncoding,
    EncodingBusy,
    EncodingError,
    EncodingMeta,
    meta_of,
    read_table,
    table_arrays,
)

log = logging.getLogger(__name__)

FOLDER = "encodings"
STALE_AFTER = 600.0  # seconds: another host's lock untouched this long was left by a dead run
MAX_SHOWN = 8  # class names a message lists


@dataclass(frozen=True)
class EncodingPlan:
    """One encoding to find or make: its record (all but how it went), how the set's images are
    fitted to the model, a CVAE's class per image, and where its files go."""

    meta: EncodingMeta
    fitting: Fitting
    labels: np.ndarray | None  # (n,) int64 label index per image, −1 where it has none
    folder: Path  # <cache_dir>/encodings

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def path(self) -> Path:
        return self.folder / f"{self.key}.parquet"

    @property
    def parts(self) -> Path:
        return self.folder / f"{self.key}.parts"

    @property
    def lock(self) -> Path:
        return self.folder / f"{self.key}.lock"


def plan_encoding(
    served: ServedModel, data: ImageSet, cache_dir: Path, label_column: str | None = None
) -> EncodingPlan:
    """What encoding `served` on `data` means, and its key. A CVAE takes each image's class
    from `label_column`, or else from the one categorical column whose categories are its label
    names; EncodingError in one line where there is none, or where the model cannot be keyed."""
    d = served.description
    if not served.digest:
        raise EncodingError(f"model {served.name} has no weights digest: its encoding has no key")
    n = len(data)
    if n == 0:
        raise EncodingError(f"data set {data.name} holds no images")
    fitting = data.fitting_for(d.channels, d.image_size)
    labels, column = (None, None)
    if d.kind == "cvae":
        column, labels = class_labels(served, data, label_column)
    set_digest = data.content_digest()
    key = digest_of([
        f"encoding-v{ENCODING_FORMAT}", served.digest, set_digest, fitting.key, column or ""
    ])[:32]  # fmt: skip
    meta = EncodingMeta(
        key=key,
        model_digest=served.digest,
        set_digest=set_digest,
        fitting=fitting.key,
        format=ENCODING_FORMAT,
        label_column=column,
        model=served.name,
        set_name=data.name,
        n=n,
        latent_dim=d.latent_dim,
    )
    return EncodingPlan(meta, fitting, labels, Path(cache_dir) / FOLDER)


def class_labels(
    served: ServedModel, data: ImageSet, label_column: str | None = None
) -> tuple[str, np.ndarray]:
    """(the column's name, (n,) int64 label index per image, −1 where an image has no class):
    a CVAE's condition, from a categorical column whose categories are the model's label names
    (in any order: codes are mapped by name)."""
    names = served.description.label_names
    fits = [
        c for c in data.columns if c.kind == "categorical" and sorted(c.categories) == sorted(names)
    ]
    if label_column is not None:
        fits = [c for c in fits if c.name == label_column]
    if not fits:
        shown = ", ".join(names[:MAX_SHOWN]) + (", ..." if len(names) > MAX_SHOWN else "")
        have = ", ".join(c.name for c in data.columns) or "none"
        which = f"its column {label_column!r}" if label_column else "a categorical column"
        raise EncodingError(
            f"model {served.name} is a CVAE and needs each image's class: data set {data.name} "
            f"needs {which} whose categories are {shown} (its columns: {have})"
        )
    column = fits[0]
    to_label = np.array([names.index(c) for c in column.categories], dtype=np.int64)
    codes = column.values
    return column.name, np.where(codes >= 0, to_label[np.maximum(codes, 0)], -1)


# --- finished encodings -------------------------------------------------------------------

_memo: OrderedDict[tuple[str, int, int, int], DataEncoding] = OrderedDict()
_memo_lock = threading.Lock()
MEMO_SIZE = 8  # encodings kept in memory per process, by file identity


def find_encoding(
    served: ServedModel, data: ImageSet, cache_dir: Path, label_column: str | None = None
) -> DataEncoding | None:
    """The finished encoding of `served` on `data`, or None where there is none yet. Never
    computes (request handlers call this; `EncodingJobs` computes). EncodingError where the
    pair cannot be encoded at all (a CVAE and a set without its classes)."""
    return read_encoding(plan_encoding(served, data, cache_dir, label_column))


def read_encoding(plan: EncodingPlan) -> DataEncoding | None:
    """The plan's file, where it is whole and its record is the plan's; else None (a file cut
    short or of another key is computed again and written over, never served). Kept in memory
    by the file's identity, so a request after the first reads nothing."""
    path = plan.path
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    ident = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    with _memo_lock:
        if ident in _memo:
            _memo.move_to_end(ident)
            return _memo[ident]
    try:
        found = _read(plan)
    except EncodingError as e:
        log.warning("encoding %s is not usable, it will be computed again: %s", path, e)
        return None
    _keep(ident, found)
    return found


def remember(plan: EncodingPlan, encoding: DataEncoding) -> DataEncoding:
    """An encoding just written to the plan's file, kept as if it had been read from it."""
    st = plan.path.stat()
    _keep((str(plan.path), st.st_ino, st.st_size, st.st_mtime_ns), encoding)
    return encoding


def _keep(ident: tuple[str, int, int, int], encoding: DataEncoding) -> None:
    with _memo_lock:
        _memo[ident] = encoding
        while len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)


def _read(plan: EncodingPlan) -> DataEncoding:
    table = read_table(plan.path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise EncodingError("no latent_explorer record in its metadata")
    meta = EncodingMeta.from_json(raw)
    want = plan.meta
    same = (meta.key, meta.model_digest, meta.set_digest, meta.fitting, meta.label_column) == (
        want.key, want.model_digest, want.set_digest, want.fitting, want.label_column
    )  # fmt: skip
    if not same or meta.n != want.n or meta.latent_dim != want.latent_dim:
        raise EncodingError("its record is not the one its name promises")
    if len(table) != want.n:
        raise EncodingError(f"{len(table):,} rows, not {want.n:,}")
    arrays = table_arrays(table, want.latent_dim)
    if not np.array_equal(arrays["indices"], np.arange(want.n)):
        raise EncodingError("its rows are not the images 0..n−1 in order")
    return DataEncoding(meta=meta, **arrays, path=plan.path)


# --- chunks of a run in progress ----------------------------------------------------------


def chunk_bounds(n: int, chunk_size: int, chunk: int) -> tuple[int, int]:
    return chunk * chunk_size, min(n, (chunk + 1) * chunk_size)


def part_path(plan: EncodingPlan, chunk: int) -> Path:
    return plan.parts / f"part-{chunk:06d}.parquet"


def part_record(plan: EncodingPlan, chunk: int, start: int, stop: int) -> dict[bytes, bytes]:
    record = {"key": plan.key, "chunk": chunk, "start": start, "stop": stop}
    return {META_KEY: json.dumps(record).encode()}


def read_part(
    plan: EncodingPlan, chunk: int, start: int, stop: int
) -> dict[str, np.ndarray] | None:
    """A chunk an earlier run finished, where its file is whole and of this key and these
    images; else None (it is computed again)."""
    path = part_path(plan, chunk)
    if not path.is_file():
        return None
    try:
        table = read_table(path)
        record = meta_of(table.schema)
        if record != {"key": plan.key, "chunk": chunk, "start": start, "stop": stop}:
            raise EncodingError("its record is not this chunk's")
        arrays = table_arrays(table, plan.meta.latent_dim)
        if not np.array_equal(arrays["indices"], np.arange(start, stop)):
            raise EncodingError("its rows are not this chunk's images")
    except EncodingError as e:
        log.warning("chunk %s is computed again: %s", path, e)
        return None
    return arrays


# --- the lock -----------------------------------------------------------------------------


def holder_text(lock: Path) -> str:
    """Who holds a lock, in words ("pid 1234 on host-a")."""
    return lock_holder(lock)


@contextlib.contextmanager
def claimed(plan: EncodingPlan, chunk_size: int) -> Iterator[None]:
    """Hold the plan's lock while the block runs; EncodingBusy where another process holds it."""
    if not claim(plan, chunk_size):
        holder = holder_text(plan.lock)
        raise EncodingBusy(
            f"{plan.meta.model} on {plan.meta.set_name} is being encoded by {holder}", holder
        )
    try:
        yield
    finally:
        release(plan)


def claim(plan: EncodingPlan, chunk_size: int) -> bool:
    """Take the plan's lock (app.cache_files); False where a live process holds it. The lock also
    says how large the run's chunks are, so others can tell how far it is."""
    return take_lock(plan.lock, STALE_AFTER, chunk_size=chunk_size)


def held_elsewhere(plan: EncodingPlan) -> float | None:
    """The share of the encoding done where another live process holds its lock (its part
    files so far); None where none does."""
    lock = plan.lock
    if not lock.exists() or _stale(lock):
        return None
    try:
        chunk_size = int(json.loads(lock.read_text())["chunk_size"])
        parts = sum(1 for _ in plan.parts.glob("part-*.parquet"))
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
    return min(1.0, parts * chunk_size / plan.meta.n)


def touch(plan: EncodingPlan) -> None:
    """Say the run is alive (another host judges the lock by its age)."""
    with contextlib.suppress(OSError):
        os.utime(plan.lock)


def release(plan: EncodingPlan) -> None:
    plan.lock.unlink(missing_ok=True)


def _stale(lock: Path) -> bool:
    return lock_is_stale(lock, STALE_AFTER)


def with_outcome(
    meta: EncodingMeta, seconds: float, unreadable: int, unlabelled: int, reused: Reused
) -> EncodingMeta:
    return replace(
        meta,
        date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        seconds=round(seconds, 3),
        unreadable=unreadable,
        unlabelled=unlabelled,
        parts_reused=reused.parts,
        images_reused=reused.images,
    )


@dataclass(frozen=True)
class Reused:
    """What a run found already done by an earlier one: chunks, and the images in them."""

    parts: int = 0
    images: int = 0

    def __add__(self, other: Reused) -> Reused:
        return Reused(self.parts + other.parts, self.images + other.images)
