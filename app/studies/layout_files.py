"""Layouts of a data set computed elsewhere (a UMAP run in a notebook, a layout from Embedding
Atlas or latent-scope), loaded as a file and drawn as the map's points (`method=loaded`).

A layout file is Parquet or CSV with exactly the columns `index, x, y`: one row per image of
the set, `index` the image's index in the set (0 to its size − 1), `x, y` its position. It is
parsed and checked once, on upload, into a `LoadedLayout`; whatever is wrong is one
`LayoutFileError` naming it (a 422), and nothing is kept:

    the file is neither Parquet nor CSV that can be read;
    its columns are not index, x, y (one missing, or one more), or not numbers;
    an index out of range (< 0 or ≥ the set's size), or twice;
    an x or y not finite (NaN, infinity, empty);
    an image the map can show without a position. The map shows the set's test split where
    it has one, else all its images: the layout must cover each of those (it may cover the
    other images too, and they are kept).

Where it is kept: under the cache folder (`LATENT_EXPLORER_CACHE_DIR`), in
`layouts/<the set's content digest>/<name>.parquet` (index, x, y, sorted by index), written
whole or not at all, so a layout follows the images it was computed for: a set whose images
change has none until one is loaded again. Without a cache folder, in this process's memory
only, until it stops. A name already used for the set is refused (`LayoutExistsError`, a 409)
unless the upload asks to replace it."""

from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from app.cache_files import replaced_atomically
from app.data.sets import SPLITS, ImageSet
from app.inference import InferenceError

NAME = re.compile(r"[a-z0-9_-]{1,64}")
COLUMNS = ("index", "x", "y")
SHOWN = 5  # indices named in a message, at most


class LayoutFileError(InferenceError):
    """A layout file that cannot be loaded, and why, in one line (a 422)."""


class LayoutExistsError(LookupError):
    """A layout of that name exists for the set, and the upload did not ask to replace it."""


class UnknownLayoutError(LookupError):
    """No layout of that name for the set (a 404)."""


@dataclass(frozen=True)
class LoadedLayout:
    """A layout file, parsed and checked: one position per image it covers."""

    name: str
    data_set: str
    set_digest: str
    indices: np.ndarray  # (m,) int64 ascending, the images it covers
    positions: np.ndarray  # (m, 2) float64, finite
    set_size: int
    covers: str  # "the test split" | "all images": what the map can show, which it covers
    created: str  # ISO 8601 UTC, when it was loaded: a replaced layout is a new one

    @property
    def rows(self) -> int:
        return len(self.indices)

    def points_of(self, images: np.ndarray) -> np.ndarray:
        """The positions of set images `images` (n,) → (n, 2); a LayoutFileError naming those
        it has none for."""
        images = np.asarray(images, dtype=np.int64)
        at = np.searchsorted(self.indices, images)
        found = at < self.rows
        found[found] = self.indices[at[found]] == images[found]
        if not found.all():
            missing = images[~found]
            raise LayoutFileError(
                f"layout {self.name!r} has no position for {len(missing):,} of the map's images "
                f"(index {_some(missing)})"
            )
        return self.positions[at]


def _some(values: np.ndarray) -> str:
    shown = ", ".join(str(int(v)) for v in values[:SHOWN])
    return shown + (", …" if len(values) > SHOWN else "")


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise LayoutFileError(f"layout name {name[:80]!r} must be 1 to 64 of a-z, 0-9, _ and -")
    return name


def shown_images(image_set: ImageSet) -> tuple[np.ndarray, str]:
    """The images of the set a map can show, ascending, and those words: its test split where
    it has one, else all its images (app.studies.latent_map.encoded_rows)."""
    split = image_set.split
    if split is not None:
        test = np.flatnonzero(split == SPLITS.index("test")).astype(np.int64)
        if len(test):
            return test, "the test split"
    return np.arange(len(image_set), dtype=np.int64), "all images"


def _table(data: bytes) -> pa.Table:
    if data[:4] == b"PAR1":
        try:
            return pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError, ValueError) as e:
            raise LayoutFileError(f"the file is not Parquet that can be read: {_line(e)}") from None
    try:
        return pacsv.read_csv(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as e:
        raise LayoutFileError(
            f"the file is neither Parquet nor CSV that can be read: {_line(e)}"
        ) from None


def _line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _numbers(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        if not pa.types.is_null(column.type):
            raise LayoutFileError(f"column {name} must hold numbers, it holds {column.type}")
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def parse_layout(
    data: bytes, name: str, image_set: ImageSet, set_digest: str, created: str | None = None
) -> LoadedLayout:
    """A layout file's bytes, checked against `image_set` (see the module): a LoadedLayout, or
    a LayoutFileError naming the first problem found."""
    check_name(name)
    table = _table(data)
    names = table.column_names
    missing = [c for c in COLUMNS if c not in names]
    extra = [c for c in names if c not in COLUMNS]
    if missing or extra or len(names) != len(COLUMNS):
        what = []
        if missing:
            what.append("no column " + ", ".join(missing))
        if extra:
            what.append("columns it should not: " + ", ".join(str(c)[:40] for c in extra[:SHOWN]))
        if not what:
            what.append("a column twice")
        raise LayoutFileError(
            f"a layout file has exactly the columns index, x, y; this one has {'; '.join(what)}"
        )
    if table.num_rows == 0:
        raise LayoutFileError("the layout file has no rows")
    raw = _numbers(table, "index")
    if np.isnan(raw).any():
        raise LayoutFileError(f"column index has {int(np.isnan(raw).sum()):,} empty values")
    if not (np.isfinite(raw).all() and (raw == np.round(raw)).all()):
        bad = raw[~(np.isfinite(raw) & (raw == np.round(raw)))]
        raise LayoutFileError(f"column index must hold whole numbers, it has {bad[0]:g}")
    size = len(image_set)
    outside = raw[(raw < 0) | (raw >= size)]
    if len(outside):
        raise LayoutFileError(
            f"index {_some(outside)} out of range: data set {image_set.name} has {size:,} "
            f"images, indices 0 to {size - 1:,} ({len(outside):,} rows out of range)"
        )
    index = raw.astype(np.int64)
    order = np.argsort(index, kind="stable")
    index = index[order]
    twice = np.unique(index[1:][index[1:] == index[:-1]])
    if len(twice):
        raise LayoutFileError(
            f"index {_some(twice)} appears more than once ({len(twice):,} indices do): one row "
            "per image"
        )
    xy = np.stack([_numbers(table, "x"), _numbers(table, "y")], axis=1)[order]  # (m, 2)
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        raise LayoutFileError(
            f"x or y is not a finite number (NaN, infinity or empty) at index {_some(index[bad])} "
            f"({int(bad.sum()):,} rows)"
        )
    shown, covers = shown_images(image_set)
    absent = np.setdiff1d(shown, index, assume_unique=True)
    if len(absent):
        raise LayoutFileError(
            f"the layout has no position for {len(absent):,} of the {len(shown):,} images the "
            f"map can show ({covers} of data set {image_set.name}): index {_some(absent)}"
        )
    return LoadedLayout(
        name=name, data_set=image_set.name, set_digest=set_digest, indices=index,
        positions=xy, set_size=size, covers=covers,
        created=created or datetime.now(UTC).isoformat(timespec="microseconds"),
    )  # fmt: skip


def to_parquet(layout: LoadedLayout) -> bytes:
    """The layout as kept: index, x, y sorted by index, with when it was loaded."""
    table = pa.table(
        {"index": layout.indices, "x": layout.positions[:, 0], "y": layout.positions[:, 1]}
    ).replace_schema_metadata({"created": layout.created})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


class LayoutStore:
    """The loaded layouts of every set, per set content digest: on disk under `cache_dir`, or
    in memory where it is None (see the module)."""

    def __init__(self, cache_dir: Path | None) -> None:
        self.cache_dir = cache_dir
        self._memory: dict[tuple[str, str], LoadedLayout] = {}
        self._read: dict[Path, tuple[float, LoadedLayout]] = {}  # parsed once per file version
        self._lock = threading.Lock()

    def _folder(self, digest: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / "layouts" / digest

    def save(self, layout: LoadedLayout, replace: bool = False) -> None:
        with self._lock:
            folder = self._folder(layout.set_digest)
            if folder is None:
                key = (layout.set_digest, layout.name)
                if key in self._memory and not replace:
                    raise self._exists(layout)
                self._memory[key] = layout
                return
            path = folder / f"{layout.name}.parquet"
            if path.exists() and not replace:
                raise self._exists(layout)
            with replaced_atomically(path) as f:
                f.write(to_parquet(layout))

    @staticmethod
    def _exists(layout: LoadedLayout) -> LayoutExistsError:
        return LayoutExistsError(
            f"data set {layout.data_set} already has a layout named {layout.name!r}: upload "
            "with replace=true to replace it"
        )

    def names(self, digest: str) -> list[str]:
        folder = self._folder(digest)
        if folder is None:
            with self._lock:
                return sorted(name for d, name in self._memory if d == digest)
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.parquet") if NAME.fullmatch(p.stem))

    def load(self, image_set: ImageSet, digest: str, name: str) -> LoadedLayout:
        """The layout `name` of the set, checked again against it; an UnknownLayoutError where
        there is none."""
        folder = self._folder(digest)
        if folder is None:
            with self._lock:
                found = self._memory.get((digest, name))
            if found is None:
                raise self._unknown(image_set, digest, name)
            return found
        path = folder / f"{name}.parquet"
        if not NAME.fullmatch(name) or not path.is_file():
            raise self._unknown(image_set, digest, name)
        mtime = path.stat().st_mtime
        with self._lock:
            kept = self._read.get(path)
        if kept is not None and kept[0] == mtime:
            return kept[1]
        data = path.read_bytes()
        created = (pq.read_schema(io.BytesIO(data)).metadata or {}).get(b"created", b"").decode()
        layout = parse_layout(data, name, image_set, digest, created or None)
        with self._lock:
            self._read[path] = (mtime, layout)
        return layout

    def _unknown(self, image_set: ImageSet, digest: str, name: str) -> UnknownLayoutError:
        known = ", ".join(self.names(digest)) or "none"
        return UnknownLayoutError(
            f"data set {image_set.name} has no layout named {name[:80]!r}; it has: {known}"
        )

    def all(self, image_set: ImageSet, digest: str) -> list[LoadedLayout]:
        return [self.load(image_set, digest, name) for name in self.names(digest)]


_stores: dict[Path | None, LayoutStore] = {}
_stores_lock = threading.Lock()


def layout_store(cache_dir: Path | None) -> LayoutStore:
    """This process's store of loaded layouts for one cache folder."""
    with _stores_lock:
        if cache_dir not in _stores:
            _stores[cache_dir] = LayoutStore(cache_dir)
        return _stores[cache_dir]
