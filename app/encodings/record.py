"""A model's encoding of a data set as a typed record, and as the Parquet file that keeps it.

One row per image, in the set's index order:

    index    int64                  the image's index in the set
    ok       bool                   it was read (and, for a CVAE, has a class); else NaN below
    mu       fixed_size_list<f32>   μ of q(z|x), (D,)
    logvar   fixed_size_list<f32>   log σ² of q(z|x), (D,); −∞ for an AE's code (σ = 0)
    kl       fixed_size_list<f32>   KL(q(z|x) ‖ N(0, I)) per latent, nats (zeros for an AE)
    nll      f32                    −log p(x | z = μ), nats

The schema's metadata holds the record of how it was made (`EncodingMeta`) as JSON under
`latent_explorer`. Arrow reads the columns straight into numpy arrays: no Python per row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from app.cache_files import replaced_atomically

# what a file of this layout says it is; a change to what is stored, or to how it is computed,
# bumps it, so no file of the old layout is ever read as the new (it is part of the key)
ENCODING_FORMAT = 1
META_KEY = b"latent_explorer"


# Arrow's own allocator (mimalloc) keeps what a Parquet read decoded through for later reads:
# reading all of dSprites' encoding left the process 0.11 GB larger than the C library's
# allocator does; the read takes about 0.2 s either way (2026-12-06, 2 cores)
pa.set_memory_pool(pa.system_memory_pool())


class EncodingError(ValueError):
    """An encoding that cannot be made or read as asked, in one line that says why."""


class EncodingBusy(EncodingError):
    """Another process is encoding the same key now (its lock file names it)."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class EncodingMeta:
    """What one encoding is of and how it was made. `key` names the file and follows from the
    first five fields after it: the same weights, the same images and columns, the same fitting,
    the same format and the same class column give the same key, and any change gives another."""

    key: str
    model_digest: str
    set_digest: str
    fitting: str  # Fitting.key: "3x64x64-resize"
    format: int
    label_column: str | None  # a CVAE's class column; None for any other model
    model: str  # the model's name when it was encoded
    set_name: str
    n: int
    latent_dim: int
    date: str = ""  # ISO 8601, UTC, when the file was written
    seconds: float = 0.0  # wall time of the run that finished it
    unreadable: int = 0  # images that could not be read
    unlabelled: int = 0  # a CVAE's images without a class (not encoded)
    parts_reused: int = 0  # chunks kept from an earlier, interrupted run
    images_reused: int = 0  # the images in them

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> EncodingMeta:
        """The record in a file's metadata; EncodingError where it is not one of this format."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != ENCODING_FORMAT:
                raise TypeError("another format")
            names = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in names})
        except (ValueError, TypeError) as e:
            raise EncodingError(f"not an encoding record of format {ENCODING_FORMAT} ({e})") from e


@dataclass(frozen=True)
class DataEncoding:
    """What a model makes of every image of a set. Arrays are read-only (one record may be
    shared by many requests); rows where `ok` is False hold NaN."""

    meta: EncodingMeta
    indices: np.ndarray  # (n,) int64
    ok: np.ndarray  # (n,) bool
    mu: np.ndarray  # (n, D) float32
    logvar: np.ndarray  # (n, D) float32
    kl: np.ndarray  # (n, D) float32, nats
    nll: np.ndarray  # (n,) float32, nats
    path: Path | None = None  # the Parquet file it is kept in

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def latent_dim(self) -> int:
        return self.meta.latent_dim

    @property
    def sigma(self) -> np.ndarray:
        """σ of q(z|x), (n, D)."""
        return np.exp(0.5 * self.logvar)

    def mean_kl(self) -> np.ndarray:
        """(D,) mean KL per latent over the images that were encoded: how much each latent is
        used (active above 0.1 nats)."""
        if not self.ok.any():
            return np.zeros(self.latent_dim, dtype=np.float64)
        return self.kl[self.ok].mean(axis=0, dtype=np.float64)


# --- Arrow and Parquet --------------------------------------------------------------------


def rows_table(
    indices: np.ndarray,
    ok: np.ndarray,
    mu: np.ndarray,
    logvar: np.ndarray,
    kl: np.ndarray,
    nll: np.ndarray,
    metadata: dict[bytes, bytes] | None = None,
) -> pa.Table:
    d = mu.shape[1]

    def per_latent(a: np.ndarray) -> pa.FixedSizeListArray:
        return pa.FixedSizeListArray.from_arrays(pa.array(a.astype(np.float32).ravel()), d)

    table = pa.table({
        "index": pa.array(indices.astype(np.int64)),
        "ok": pa.array(ok.astype(bool)),
        "mu": per_latent(mu),
        "logvar": per_latent(logvar),
        "kl": per_latent(kl),
        "nll": pa.array(nll.astype(np.float32)),
    })  # fmt: skip
    return table.replace_schema_metadata(metadata)


def rows_schema(d: int, metadata: dict[bytes, bytes] | None = None) -> pa.Schema:
    """The schema of a rows table of D = `d` latents."""
    per_latent = pa.list_(pa.float32(), d)
    return pa.schema(
        [("index", pa.int64()), ("ok", pa.bool_()), ("mu", per_latent),
         ("logvar", per_latent), ("kl", per_latent), ("nll", pa.float32())],
        metadata=metadata,
    )  # fmt: skip


def table_arrays(table: pa.Table, d: int) -> dict[str, np.ndarray]:
    """The columns of a rows table as numpy arrays; EncodingError where one is missing or not
    of its type and width."""
    try:
        out = {
            "indices": _plain(table, "index", pa.int64()),
            "ok": _plain(table, "ok", pa.bool_()),
            "nll": _plain(table, "nll", pa.float32()),
        }
        for name in ("mu", "logvar", "kl"):
            column = table.column(name).combine_chunks()
            if column.type != pa.list_(pa.float32(), d):
                raise EncodingError(f"column {name} is {column.type}, not {d} float32 values")
            out[name] = column.flatten().to_numpy(zero_copy_only=False).reshape(len(table), d)
    except KeyError as e:
        raise EncodingError(f"a column is missing ({e})") from e
    for a in out.values():
        a.setflags(write=False)
    return out


def _plain(table: pa.Table, name: str, kind: pa.DataType) -> np.ndarray:
    column = table.column(name)
    if column.type != kind or column.null_count:
        raise EncodingError(f"column {name} is {column.type}, not {kind}")
    return column.to_numpy()


def meta_of(schema: pa.Schema) -> dict[str, Any]:
    """A file's metadata record as a dict (parts keep their own record under the same name)."""
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise EncodingError("no latent_explorer record in its metadata")
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise EncodingError(f"its latent_explorer record is not JSON ({e})") from e
    if not isinstance(data, dict):
        raise EncodingError("its latent_explorer record is not a JSON object")
    return data


def write_table_atomically(path: Path, table: pa.Table, durable: bool = True) -> None:
    """Written beside, then renamed over `path`: a reader sees the whole file or none."""
    write_tables_atomically(path, table.schema, [table], durable)


def write_tables_atomically(
    path: Path, schema: pa.Schema, tables: Iterable[pa.Table], durable: bool = True
) -> None:
    """One Parquet file of `schema` (its metadata included) from `tables` in turn, each a row
    group, only one of them held at a time; written beside and renamed over `path`, after it
    is on the disk where `durable`."""
    with replaced_atomically(path, durable) as f, pq.ParquetWriter(f, schema) as writer:
        for table in tables:
            writer.write_table(table.replace_schema_metadata(schema.metadata))


def read_column(path: Path, name: str) -> np.ndarray | None:
    """One column of a Parquet file as numpy, or None where it cannot be read."""
    try:
        return pq.read_table(path, columns=[name]).column(name).to_numpy()
    except (OSError, KeyError, pa.ArrowException):
        return None


def read_table(path: Path) -> pa.Table:
    """EncodingError in one line where `path` is not a readable Parquet file."""
    try:
        # one thread, no read-ahead: 0.1 GB of columns (all of dSprites) then cost ~0.2 GB
        # of the process's memory, not ~0.3 GB
        return pq.read_table(path, use_threads=False, pre_buffer=False)
    except (OSError, pa.ArrowException) as e:
        raise EncodingError(f"{path.name}: cannot be read as Parquet ({e})") from e
