"""A Hugging Face dataset saved with `datasets.save_to_disk`, read by `datasets` itself.

    saved/                      a Dataset               saved/                  a DatasetDict
      data-00000-of-00001.arrow                           dataset_dict.json     {"splits": [...]}
      dataset_info.json         its features              train/  (as left)
      state.json                its Arrow files           test/

A DatasetDict's splits named train, validation (or valid) and test become the set's split. The
image column is the one whose feature is `datasets.Image` ("image" or "img" where there are
several); every other column becomes a column of the set: a `ClassLabel` a category with its
names, a `Value` (bool, integer, float, text) typed as a folder's table is (columns.py), with the
folder's `dataset.json` beside the saved files applied the same way. Lists, dicts and other
features are left out, each with a problem.

Opening reads the Arrow files' column values once, whole, memory-mapped; images are never decoded
by `datasets`: the image column is read undecoded, a batch of rows at a time, and each picture is
decoded here, so a corrupt one is one unreadable image, as in a folder.
"""

from __future__ import annotations

import importlib
import os
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from app.data.base import DatasetError
from app.data.sets.columns import MAX_CLASS_CODES, RawColumn, typed_columns
from app.data.sets.fit import fit_picture, native_array
from app.data.sets.folder import SPLIT_FOLDERS, open_picture, picture_array
from app.data.sets.record import (
    SPLITS,
    Column,
    ColumnRole,
    Fitting,
    ImageUnreadable,
    ListedSet,
    Problem,
    columns_digest,
    digest_of,
)
from app.data.sets.record_file import SetRecord, json_object

os.environ["HF_DATASETS_OFFLINE"] = "1"  # read where it is saved; never ask the Hub for anything
# imported by name: mypy would take `import datasets` for this repository's own datasets/ folder
# (the served image folders) as a namespace package; the library has no type hints to lose
datasets: Any = importlib.import_module("datasets")

DICT_FILE = "dataset_dict.json"
STATE_FILE = "state.json"
INFO_FILE = "dataset_info.json"
MAX_JSON_BYTES = 16 * 1024 * 1024
IMAGE_NAMES = ("image", "img")  # the image column preferred where there are several
BATCH_ROWS = 64  # rows read at once when images are asked for one by one (data check)


@dataclass(frozen=True)
class _Part:
    """One saved Dataset: the whole set, or one split of a DatasetDict."""

    split: str | None  # its split name as saved (None: a lone Dataset)
    folder: Path
    dataset: Any  # a datasets.Dataset
    images: Any  # the image column alone, undecoded: {"bytes", "path"} per row
    start: int  # the set's index of its first row


class SavedDataset(ListedSet):
    def __init__(self, root: str | Path, name: str | None = None) -> None:
        self._open_folder(root, name)
        problems: list[Problem] = []
        stamp: list[bytes | str] = ["hf-v1"]

        if (self.root / DICT_FILE).is_file():
            saved = _split_names(self.root, _json_bytes(self.root / DICT_FILE))
            stamp.append(_json_bytes(self.root / DICT_FILE))
            kept = _kept_splits(saved, self.root, problems)
            kind = f"Hugging Face DatasetDict ({', '.join(saved)})"
        else:
            kept = [(None, self.root)]
            kind = "Hugging Face Dataset"
        loaded = []
        for split, folder in kept:
            ds = _load(folder, split or ".", stamp)
            if ds is not None:
                loaded.append((split, folder, ds))
            elif split is not None:
                problems.append(Problem(f"split {split!r}", "holds no rows"))
        if not loaded:
            raise DatasetError(f"{self.root}: holds no images (0 rows)")
        features = loaded[0][2].features
        for split, _, ds in loaded[1:]:
            if ds.features != features:
                raise DatasetError(
                    f"{self.root}: split {split!r} has other columns or column types than "
                    f"{loaded[0][0]!r}; every split must have the same"
                )
        self._image_column, others = _image_column(self.root, features)
        also = f"; also image columns {', '.join(map(repr, others))}" if others else ""
        self.source = f"{kind}, saved (images: {self._image_column!r}{also})"

        parts, start = [], 0
        undecoded = datasets.Image(decode=False)
        for split, folder, ds in loaded:
            images = ds.select_columns([self._image_column]).cast_column(
                self._image_column, undecoded
            )
            parts.append(_Part(split, folder, ds, images, start))
            start += len(ds)
        if start == 0:
            raise DatasetError(f"{self.root}: holds no images (0 rows)")
        self._parts = tuple(parts)
        self._starts = [p.start for p in parts]
        self._n = start
        self._split: np.ndarray | None = None
        if all(_split_of(split) is not None for split, _ in kept):
            self._split = np.concatenate(
                [np.full(len(p.dataset), SPLITS.index(_split_of(p.split) or ""), np.int8)
                 for p in parts]
            )  # fmt: skip
        self._columns = _columns(parts, features, self._image_column, self.record, problems)
        self._problems = tuple(problems)
        self._stamp = tuple(stamp)
        self._batch: tuple[_Part, int, list[object]] | None = None

    def __len__(self) -> int:
        return self._n

    @property
    def image_column(self) -> str:
        return self._image_column

    def content_digest(self) -> str:
        split = b"" if self._split is None else self._split.tobytes()
        return digest_of([*self._stamp, self._image_column, split, *columns_digest(self._columns)])

    # --- images ---------------------------------------------------------------------------

    def _part(self, index: int) -> _Part:
        if not 0 <= index < self._n:
            raise IndexError(f"{self.name} index must be in 0..{self._n - 1}, got {index}")
        return self._parts[bisect_right(self._starts, index) - 1]

    def _where(self, index: int, part: _Part, raw: object) -> str:
        row = index - part.start
        path = raw.get("path") if isinstance(raw, dict) else None
        named = f", {Path(path).name}" if isinstance(path, str) and path else ""
        split = f"{part.split} " if part.split is not None else ""
        return f"image {index} ({split}row {row}{named})"

    def _raw(self, index: int) -> tuple[_Part, object]:
        """Row `index`'s undecoded image, read with the BATCH_ROWS rows around it (one by one,
        as `data check` asks, each batch is read once)."""
        part = self._part(index)
        row = index - part.start
        first = row - row % BATCH_ROWS
        batch = self._batch
        if batch is None or batch[0] is not part or batch[1] != first:
            rows = part.images[first : first + BATCH_ROWS][self._image_column]
            batch = (part, first, rows)
            self._batch = batch
        return part, batch[2][row - first]

    def _picture(self, index: int, part: _Part, raw: object) -> Image.Image:
        """The decoded picture of a row's {"bytes", "path"}: its bytes, else its file where that
        lies in the saved folder (save_to_disk embeds the files; a path elsewhere is not read)."""
        where = self._where(index, part, raw)
        data = raw.get("bytes") if isinstance(raw, dict) else None
        path = raw.get("path") if isinstance(raw, dict) else None
        if isinstance(data, bytes):
            return open_picture(data, where)
        if not isinstance(path, str) or not path:
            raise ImageUnreadable(f"{where}: the row has no image")
        file = (part.folder / path).resolve()
        if not file.is_relative_to(self.root):
            raise ImageUnreadable(
                f"{where}: stored as a path outside the saved folder ({path}): not read"
            )
        return open_picture(file, where)

    def _array(
        self, index: int, part: _Part, raw: object, to_array: Callable[[Image.Image], np.ndarray]
    ) -> np.ndarray:
        with self._picture(index, part, raw) as im:
            return picture_array(im, self._where(index, part, raw), to_array)

    def inspect(self, index: int) -> tuple[int, int, str]:
        part, raw = self._raw(index)
        with self._picture(index, part, raw) as im:
            return im.width, im.height, im.mode

    def native(self, index: int) -> np.ndarray:
        part, raw = self._raw(index)
        return self._array(index, part, raw, native_array)

    def fitted(self, indices: np.ndarray, fitting: Fitting) -> tuple[np.ndarray, np.ndarray]:
        s = fitting.size
        wanted = np.asarray(indices, dtype=np.int64)
        out = np.zeros((len(wanted), fitting.channels, s, s), dtype=np.float32)
        ok = np.zeros(len(wanted), dtype=bool)
        for index in wanted.tolist():
            self._part(index)  # an index past the set is an error, not an unreadable image
        which = np.searchsorted(self._starts, wanted, side="right") - 1
        for p, part in enumerate(self._parts):
            at = np.flatnonzero(which == p)
            if not len(at):
                continue
            rows = (wanted[at] - part.start).tolist()
            raws = part.images[rows][self._image_column]
            for position, index, raw in zip(at.tolist(), wanted[at].tolist(), raws, strict=True):
                try:
                    out[position] = self._array(
                        index, part, raw, lambda im: fit_picture(im, fitting)
                    )
                except ImageUnreadable:
                    continue
                ok[position] = True
        out /= np.float32(255)
        return out, ok


# --- the saved files ----------------------------------------------------------------------------


def _json_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DatasetError(f"{path}: missing (a folder saved with save_to_disk has one)")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise DatasetError(f"{path}: larger than {MAX_JSON_BYTES:,} bytes")
    return path.read_bytes()


def _split_names(root: Path, data: bytes) -> list[str]:
    """dataset_dict.json's split names, each a plain folder name beside it."""
    path = root / DICT_FILE
    splits = json_object(path, data).get("splits")
    if not isinstance(splits, list) or not splits:
        raise DatasetError(f"{path}: 'splits' must be a list of split names")
    for s in splits:
        if not isinstance(s, str) or s in ("", ".", "..") or "/" in s or "\\" in s:
            raise DatasetError(f"{path}: {s!r} cannot be a split's folder name")
    return splits


def _kept_splits(
    saved: list[str], root: Path, problems: list[Problem]
) -> list[tuple[str | None, Path]]:
    """The splits served: train, validation and test; a split of another name (SVHN's "extra")
    is left out with a problem, unless no split has one of those names: then every split is
    served, and the set has no split."""
    known = [s for s in saved if _split_of(s) is not None]
    other = [s for s in saved if s not in known]
    if not known:
        problems.append(
            Problem(
                DICT_FILE,
                f"no split is train, validation or test ({', '.join(map(repr, saved))}): every "
                "split is served, and the set has no split",
            )
        )
        return [(s, root / s) for s in saved]
    for s in other:
        problems.append(
            Problem(f"split {s!r}", "is not train, validation or test: its images are left out")
        )
    return [(s, root / s) for s in known]


def _split_of(saved: str | None) -> str | None:
    """The set's split (one of SPLITS) of a saved split's name, as a split folder's is read."""
    return SPLIT_FOLDERS.get(saved.lower()) if saved is not None else None


def _load(folder: Path, label: str, stamp: list[bytes | str]) -> Any:
    """One saved Dataset, memory-mapped (None where it has no rows: save_to_disk then writes no
    Arrow file); what it was opened from goes into `stamp` under `label` (its split's name, not
    the folder's, so a copy elsewhere is the same content): the state and info JSON, each Arrow
    file's name, size and modification time."""
    state_bytes = _json_bytes(folder / STATE_FILE)
    info_bytes = _json_bytes(folder / INFO_FILE)
    files = json_object(folder / STATE_FILE, state_bytes).get("_data_files")
    if not isinstance(files, list):
        raise DatasetError(f"{folder / STATE_FILE}: has no list of Arrow files (_data_files)")
    stamp += [label, state_bytes, info_bytes]
    if not files:
        return None
    for entry in files:
        name = entry.get("filename") if isinstance(entry, dict) else None
        file = (folder / name).resolve() if isinstance(name, str) and name else None
        if file is None or file.parent != folder.resolve() or not file.is_file():
            raise DatasetError(
                f"{folder / STATE_FILE}: names {name!r}, which is not a file in its folder"
            )
        st = file.stat()
        stamp.append(f"{name}|{st.st_size}|{st.st_mtime_ns}")
    try:
        return datasets.Dataset.load_from_disk(str(folder), keep_in_memory=False)
    except Exception as e:  # datasets' errors are many types (ArrowInvalid, KeyError, …)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DatasetError(
            f"{folder}: datasets cannot read it ({type(e).__name__}: {first})"
        ) from None


def _image_column(root: Path, features: Any) -> tuple[str, list[str]]:
    """The column whose feature is datasets.Image ("image" or "img" first, else the first such),
    and the other image columns."""
    found = [n for n, f in features.items() if isinstance(f, datasets.Image)]
    if not found:
        kinds = ", ".join(f"{n} ({type(f).__name__})" for n, f in features.items())
        raise DatasetError(f"{root}: no column is a datasets.Image (its columns: {kinds})")
    chosen = next((n for n in IMAGE_NAMES if n in found), found[0])
    return chosen, [n for n in found if n != chosen]


# --- the other columns ------------------------------------------------------------------------


def _columns(
    parts: Sequence[_Part],
    features: Any,
    image_column: str,
    record: SetRecord,
    problems: list[Problem],
) -> tuple[Column, ...]:
    """Each column of the saved features but the image's, its values read once from Arrow: a
    ClassLabel is categorical by its names; a bool or number column not in dataset.json is
    typed here by columns.py's rules on the whole Arrow array; text, and any column dataset.json
    describes, goes through columns.typed_columns."""
    done: dict[str, Column] = {}
    raw: dict[str, RawColumn] = {}
    for name, feature in features.items():
        if name == image_column:
            continue
        where = f"column {name!r}"
        if isinstance(feature, datasets.Image):
            problems.append(Problem(where, "another image column: left out"))
            continue
        role: ColumnRole = "factor" if name in record.factors else "attribute"
        if isinstance(feature, datasets.ClassLabel):
            done[name] = _class_label(name, feature, _values(parts, name), role, record, problems)
            continue
        if not isinstance(feature, datasets.Value):
            what = "lists" if isinstance(feature, list | datasets.List | datasets.LargeList) else (
                "objects" if isinstance(feature, dict) else f"{type(feature).__name__} values"
            )  # fmt: skip
            problems.append(Problem(where, f"holds {what}: left out"))
            continue
        values = _values(parts, name)
        kind = values.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or name in record.columns:
            raw[name] = values.to_pylist()
            continue
        if not (
            pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind)
        ):
            problems.append(Problem(where, f"holds {feature.dtype} values: left out"))
            continue
        column = arrow_column(name, values, role, problems)
        if column is None:  # nothing but nulls: as a table's empty column is typed
            raw[name] = values.to_pylist()
        else:
            done[name] = column
    mine = set(done)
    rest = record.model_copy(
        update={
            "factors": tuple(f for f in record.factors if f not in mine),
            "columns": {k: v for k, v in record.columns.items() if k not in mine},
        }
    )
    done.update((c.name, c) for c in typed_columns(raw, rest, problems))
    return tuple(done[n] for n in features if n in done)


def _values(parts: Sequence[_Part], name: str) -> pa.ChunkedArray:
    """Column `name` of every part, in the set's order, as Arrow holds it (no copy)."""
    chunks = [c for p in parts for c in p.dataset.data.column(name).chunks]
    return pa.chunked_array(chunks, type=parts[0].dataset.data.column(name).type)


def _class_label(
    name: str,
    feature: Any,
    values: pa.ChunkedArray,
    role: ColumnRole,
    record: SetRecord,
    problems: list[Problem],
) -> Column:
    """A ClassLabel's codes with its names (−1, or a null, where a row has no label). A
    dataset.json entry may make it ordered (the codes as numbers); its names are the dataset's."""
    names = tuple(str(n) for n in feature.names)
    codes = pc.fill_null(values, -1).to_numpy().astype(np.int64)
    bad = (codes < -1) | (codes >= len(names))
    if bad.any():
        problems.append(
            Problem(
                f"column {name!r}",
                f"{int(bad.sum()):,} codes are past its {len(names)} names: treated as missing",
            )
        )
        codes[bad] = -1
    declared = record.columns.get(name)
    if declared is not None and declared.kind == "ordered":
        return Column(name, "ordered", role, np.where(codes >= 0, codes, np.nan).astype(np.float64))
    if declared is not None and declared.categories and declared.categories != names:
        problems.append(
            Problem("dataset.json", f"column {name!r} is a ClassLabel: its own names are used")
        )
    return Column(name, "categorical", role, codes, names)


def arrow_column(
    name: str, values: pa.ChunkedArray, role: ColumnRole, problems: list[Problem]
) -> Column | None:
    """A bool or number column typed by columns.py's rules, on the whole array at once: bools
    categorical ("false", "true"); whole numbers with at most MAX_CLASS_CODES distinct values
    categorical (codes in numeric order); other numbers ordered, NaN and ±inf reported and
    missing. None where every value is null (columns.py types that)."""
    null = values.is_null().to_numpy(zero_copy_only=False)
    if null.all():
        return None
    if pa.types.is_boolean(values.type):
        codes = pc.fill_null(pc.cast(values, pa.int64()), -1).to_numpy().astype(np.int64)
        return Column(name, "categorical", role, codes, ("false", "true"))
    numbers = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    present = numbers[~null]
    finite = np.isfinite(present)
    if finite.all() and (present == np.floor(present)).all():
        distinct = np.unique(present)
        if len(distinct) <= MAX_CLASS_CODES:
            codes = np.full(len(numbers), -1, dtype=np.int64)
            codes[~null] = np.searchsorted(distinct, present)
            return Column(name, "categorical", role, codes, tuple(str(int(d)) for d in distinct))
    out = np.where(null | ~np.isfinite(numbers), np.nan, numbers)
    bad = int((~finite).sum())
    if bad:
        problems.append(
            Problem(f"column {name!r}", f"{bad:,} values are not numbers: treated as missing")
        )
    return Column(name, "ordered", role, out)
