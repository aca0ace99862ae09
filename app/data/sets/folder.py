"""A person's images on disk, in the layouts people already keep them in:

    class sub-folders   torchvision's ImageFolder: `cats/1.png`, `dogs/2.png` → a `class` column
    metadata table      Hugging Face's imagefolder: `metadata.csv` or `metadata.jsonl` with a
                        `file_name` column (relative to the table's folder); every other column
                        becomes a column of the set
    plain               images and nothing else

`train/`, `test/` (and `validation/`) top-level folders are splits in every layout (each may hold
its own table, or its own class sub-folders); a `split` column in a table does the same. An
optional `dataset.json` beside them is the set's record: which columns are generating factors,
each column's kind and category names, and the set's credit (see `record_file`).

Listing a folder stats every file but opens none, so 200,000 files list in seconds; images are
decoded when they are asked for, and one that cannot be decoded is reported, never raised past
`fitted`. Symbolic links that lead out of the folder are refused (listed as problems and left
out): a data set is what lies in its folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.data.base import DatasetError
from app.data.sets.columns import RawColumn, typed_columns
from app.data.sets.fit import fit_picture, native_array
from app.data.sets.record import (
    SPLITS,
    Fitting,
    ImageUnreadable,
    ListedSet,
    Problem,
    columns_digest,
    digest_of,
)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
TABLES = ("metadata.csv", "metadata.jsonl")
SPLIT_FOLDERS = {
    "train": "train",
    "test": "test",
    "validation": "validation",
    "valid": "validation",
}
MAX_TABLE_BYTES = 512 * 1024 * 1024
RESTAT_AFTER = 10.0  # seconds a folder's digest is trusted before its files are looked at again


@dataclass(frozen=True)
class _File:
    rel: str  # path relative to the root, '/'-separated
    size: int
    mtime_ns: int


class FolderSet(ListedSet):
    def __init__(self, root: str | Path, name: str | None = None) -> None:
        self._open_folder(root, name)
        problems: list[Problem] = []
        files = _list_images(self.root, problems)
        if not files:
            raise DatasetError(
                f"{self.root}: holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        split_of = {f.rel: _split_of(f.rel) for f in files}
        tables = _tables(self.root, split_of)
        if tables:
            self.source = (
                f"folder ({', '.join(t.relative_to(self.root).as_posix() for t in tables)})"
            )
            rows, raw, table_split = _read_tables(self.root, tables, files, problems)
            files = [files[i] for i in rows]
        else:
            raw, table_split = _class_folders(files, split_of, problems)
            self.source = "folder (class sub-folders)" if raw else "folder (images only)"
        self._files = files
        splits = [
            table_split[i] if table_split[i] is not None else split_of[f.rel]
            for i, f in enumerate(files)
        ]
        self._split = (
            np.array([SPLITS.index(s) for s in splits], dtype=np.int8)
            if any(s is not None for s in splits) and all(s is not None for s in splits)
            else None
        )
        if self._split is None and any(s is not None for s in splits):
            problems.append(
                Problem(
                    str(self.root), "some images have a split and some do not: the split is ignored"
                )
            )
        self._columns = typed_columns(raw, self.record, problems)
        self._problems = tuple(problems)
        self._digest: str | None = None
        self._digest_at = 0.0
        self._digest_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._files)

    def file(self, index: int) -> str:
        """Image `index`'s path relative to the folder."""
        return self._files[index].rel

    def content_digest(self) -> str:
        """Over every listed file's path, size and modification time, looked at again at most
        every RESTAT_AFTER seconds (a few ms per thousand files), so that an image changed or
        removed while a server runs gives a new digest, and its encoding is made again rather
        than served stale. Files added after the folder was listed are seen when it is listed
        again (a server's restart)."""
        now = time.monotonic()
        with self._digest_lock:
            if self._digest is None or now - self._digest_at >= RESTAT_AFTER:
                parts: list[bytes | str] = ["folder-v1"]
                for f in self._files:
                    try:
                        st = os.stat(self.root / f.rel)
                        parts.append(f"{f.rel}|{st.st_size}|{st.st_mtime_ns}")
                    except OSError:
                        parts.append(f"{f.rel}|gone")
                parts.extend(columns_digest(self._columns))
                self._digest, self._digest_at = digest_of(parts), now
            return self._digest

    def _open(self, index: int) -> Image.Image:
        return open_picture(self.root / self._files[index].rel, self._files[index].rel)

    def inspect(self, index: int) -> tuple[int, int, str]:
        with self._open(index) as im:
            return im.width, im.height, im.mode

    def native(self, index: int) -> np.ndarray:
        with self._open(index) as im:
            return picture_array(im, self._files[index].rel, native_array)

    def fitted(self, indices: np.ndarray, fitting: Fitting) -> tuple[np.ndarray, np.ndarray]:
        s = fitting.size
        out = np.zeros((len(indices), fitting.channels, s, s), dtype=np.float32)
        ok = np.zeros(len(indices), dtype=bool)
        for row, index in enumerate(np.asarray(indices).tolist()):
            try:
                with self._open(index) as im:
                    out[row] = picture_array(
                        im, self._files[index].rel, lambda p: fit_picture(p, fitting)
                    )
            except ImageUnreadable:
                continue
            ok[row] = True
        out /= np.float32(255)
        return out, ok


def open_picture(source: Path | bytes, where: str) -> Image.Image:
    """A picture decoded in full (a truncated file fails here, not when it is fitted), turned
    upright by its EXIF orientation. ImageUnreadable naming `where` for anything else."""
    try:
        with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as im:
            im.load()
            return ImageOps.exif_transpose(im)  # a copy: the file is closed on return
    except UnidentifiedImageError as e:  # its message repeats the path, or a BytesIO's address
        raise ImageUnreadable(f"{where}: not an image in any format Pillow reads") from e
    except Exception as e:  # hostile bytes make decoders raise more than OSError (EOFError,
        # struct.error, SyntaxError, DecompressionBombError …): each is one unreadable image
        raise ImageUnreadable(f"{where}: cannot be read as an image ({e})") from e


def picture_array(
    im: Image.Image, where: str, to_array: Callable[[Image.Image], np.ndarray]
) -> np.ndarray:
    """`to_array` (fit_picture, native_array) of a decoded picture, 16-bit grey first scaled to
    8 bits; ImageUnreadable naming `where` for a mode Pillow cannot convert ("LAB", "HSV")."""
    try:
        return to_array(eight_bit(im))
    except (ValueError, OSError) as e:
        raise ImageUnreadable(f"{where}: a {im.mode} image cannot be converted ({e})") from e


def eight_bit(im: Image.Image) -> Image.Image:
    """16-bit grey ("I;16…", and "I" as the PNG and TIFF decoders give 16-bit grey) scaled to
    0…255 (v / 257, so 65,535 is 255 and 32,768 is 128). Pillow's own conversion to "L" clips
    at 255, which would make every pixel above 255 of 65,535 white."""
    if not (im.mode == "I" or im.mode.startswith("I;16")):
        return im
    values = np.asarray(im).astype(np.float64)
    return Image.fromarray(np.clip(np.rint(values / 257), 0, 255).astype(np.uint8))  # "L"


def _list_images(root: Path, problems: list[Problem]) -> list[_File]:
    """Every image file under root, sorted by path, without opening one. A link that resolves
    outside root is refused; a link to a folder is not followed."""
    found: list[_File] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as e:
            problems.append(Problem(_rel(root, Path(folder)), f"cannot be listed ({e.strerror})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = _rel(root, Path(entry.path))
            if entry.is_symlink():
                target = Path(os.path.realpath(entry.path))
                if not target.is_relative_to(root):
                    problems.append(
                        Problem(rel, f"a link out of the folder (to {target}): refused")
                    )
                    continue
                if target.is_dir():
                    problems.append(Problem(rel, "a link to a folder: not followed"))
                    continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                try:
                    st = entry.stat()  # follows a link inside the folder: its target's size
                except OSError as e:
                    problems.append(Problem(rel, f"cannot be read ({e.strerror})"))
                    continue
                found.append(_File(rel, st.st_size, st.st_mtime_ns))
    found.sort(key=lambda f: f.rel)
    return found


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else "."


def _split_of(rel: str) -> str | None:
    first = rel.split("/", 1)[0]
    return SPLIT_FOLDERS.get(first.lower()) if "/" in rel else None


def _tables(root: Path, split_of: dict[str, str | None]) -> list[Path]:
    """metadata.csv/.jsonl at the top, or in each split folder."""
    found = []
    for folder in [
        root,
        *sorted({root / rel.split("/", 1)[0] for rel, s in split_of.items() if s}),
    ]:
        here = [folder / t for t in TABLES if (folder / t).is_file()]
        if len(here) > 1:
            raise DatasetError(f"{folder}: holds both metadata.csv and metadata.jsonl; keep one")
        found.extend(here)
    return found


def _read_tables(
    root: Path, tables: list[Path], files: list[_File], problems: list[Problem]
) -> tuple[list[int], dict[str, RawColumn], list[str | None]]:
    """The rows of every table joined to the files by `file_name`: (the files kept, in order;
    each column's raw values per kept file; each kept file's split from a `split` column)."""
    by_rel = {f.rel: i for i, f in enumerate(files)}
    row_of_file: dict[int, tuple[Path, int, dict[str, object]]] = {}
    names: list[str] = []
    for table in tables:
        base = table.parent
        for line_no, row in _rows(table):
            where = f"{table.relative_to(root).as_posix()} line {line_no}"
            name = row.pop("file_name", None)
            if not isinstance(name, str) or not name:
                problems.append(Problem(where, "has no file_name: skipped"))
                continue
            rel = _rel(root, base / name) if not Path(name).is_absolute() else None
            target = (base / name).resolve() if rel is not None else None
            if rel is None or target is None or not target.is_relative_to(root):
                problems.append(
                    Problem(where, f"file_name {name!r} is outside the folder: skipped")
                )
                continue
            i = by_rel.get(rel)
            if i is None:
                problems.append(
                    Problem(where, f"names {name!r}, which is not an image here: skipped")
                )
                continue
            if i in row_of_file:
                first = row_of_file[i]
                problems.append(
                    Problem(
                        where,
                        f"names {name!r} again (first on line {first[1]}): this row is skipped",
                    )
                )
                continue
            row_of_file[i] = (table, line_no, row)
            names.extend(k for k in row if k not in names)
    unlisted = [f.rel for i, f in enumerate(files) if i not in row_of_file]
    for rel in unlisted[:20]:
        problems.append(Problem(rel, "has no row in the table: kept, with no values"))
    if len(unlisted) > 20:
        problems.append(Problem(str(root), f"{len(unlisted) - 20:,} more images have no row"))
    kept = list(range(len(files)))
    raw: dict[str, RawColumn] = {n: [] for n in names if n != "split"}
    split: list[str | None] = []
    for i in kept:
        _, line_no, row = row_of_file.get(i, (root, 0, {}))
        for n in raw:
            raw[n].append(row.get(n))
        s = row.get("split")
        if s is None or s == "":
            split.append(None)
        elif isinstance(s, str) and s.lower() in SPLIT_FOLDERS:
            split.append(SPLIT_FOLDERS[s.lower()])
        else:
            problems.append(Problem(files[i].rel, f"split {s!r} is not train, validation or test"))
            split.append(None)
    return kept, raw, split


def _rows(table: Path) -> list[tuple[int, dict[str, object]]]:
    """(line number, row) of a metadata.csv or .jsonl; a DatasetError for a table that cannot be
    read at all (not UTF-8, no file_name column, a line that is not JSON)."""
    size = table.stat().st_size
    if size > MAX_TABLE_BYTES:
        raise DatasetError(f"{table}: {size:,} bytes; tables past {MAX_TABLE_BYTES:,} are refused")
    data = table.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(
            f"{table}: not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start:,}); save it as "
            "UTF-8"
        ) from e
    if table.suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames is None or "file_name" not in reader.fieldnames:
            raise DatasetError(
                f"{table}: its header has no file_name column "
                f"(it has: {', '.join(reader.fieldnames or []) or 'nothing'})"
            )
        dupes = {n for n in reader.fieldnames if reader.fieldnames.count(n) > 1}
        if dupes:
            raise DatasetError(f"{table}: column {sorted(dupes)[0]!r} appears twice in its header")
        rows = []
        for row in reader:
            extra = row.pop(None, None)  # type: ignore[call-overload]
            if extra:
                raise DatasetError(
                    f"{table} line {reader.line_num}: more values than the header has columns"
                )
            rows.append((reader.line_num, {k: v for k, v in row.items() if k is not None}))
        return rows
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{table} line {line_no}: not JSON ({e.msg})") from e
        if not isinstance(row, dict):
            raise DatasetError(f"{table} line {line_no}: not a JSON object")
        rows.append((line_no, row))
    if rows and not any("file_name" in r for _, r in rows):
        raise DatasetError(f"{table}: no line has a file_name")
    return rows


def _class_folders(
    files: list[_File], split_of: dict[str, str | None], problems: list[Problem]
) -> tuple[dict[str, RawColumn], list[str | None]]:
    """A `class` column from the first folder under the root (or under a split folder)."""
    classes: list[str | None] = []
    for f in files:
        parts = f.rel.split("/")
        if split_of[f.rel] is not None:
            parts = parts[1:]
        classes.append(parts[0] if len(parts) > 1 else None)
    no_split: list[str | None] = [None] * len(files)
    if all(c is None for c in classes):
        return {}, no_split
    loose = [f.rel for f, c in zip(files, classes, strict=True) if c is None]
    for rel in loose[:20]:
        problems.append(Problem(rel, "lies beside the class sub-folders, in none: no class"))
    return {"class": list(classes)}, no_split
