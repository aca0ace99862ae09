"""Data sets: images plus typed columns, from any source (see record.py). `open_set` opens one
by name or path; `DataSets` is what a server holds: every set it serves, by name."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.data.base import DatasetError
from app.data.fashion_mnist import DEFAULT_ROOT as FASHION_ROOT
from app.data.sets.builtin import BUILT_IN, built_in
from app.data.sets.folder import FolderSet
from app.data.sets.record import (
    SPLITS,
    Column,
    ColumnSummary,
    Fitting,
    ImageSet,
    ImageUnreadable,
    Problem,
    SetSummary,
)

__all__ = [
    "BUILT_IN", "SPLITS", "Column", "ColumnSummary", "DataSets", "DatasetError", "Fitting",
    "ImageSet", "ImageUnreadable", "Problem", "SetSummary", "is_saved_hf_dataset", "open_set",
    "scan_sets",
]  # fmt: skip

log = logging.getLogger(__name__)

# a set's name is part of URLs (data=NAME), as a model's is
SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
HF_MARKERS = ("dataset_dict.json", "state.json")  # what datasets' save_to_disk writes


def is_saved_hf_dataset(path: Path) -> bool:
    return any((path / m).is_file() for m in HF_MARKERS)


def open_set(
    spec: str | Path, name: str | None = None, fashion_root: Path = FASHION_ROOT
) -> ImageSet:
    """A built-in set by name ("dsprites", "shapes3d", "fashion-mnist"), or a folder: a Hugging
    Face dataset saved with `save_to_disk`, else a folder of images. DatasetError in one line
    where it cannot be opened."""
    if isinstance(spec, str) and spec in BUILT_IN:
        return built_in(spec, fashion_root)
    path = Path(spec)
    if not path.is_dir():
        raise DatasetError(
            f"{spec}: neither a folder nor a built-in data set ({', '.join(BUILT_IN)})"
        )
    if is_saved_hf_dataset(path):
        from app.data.sets.hf import SavedDataset  # noqa: PLC0415 (datasets takes a second to import)

        return SavedDataset(path, name=name)
    return FolderSet(path, name=name)


@dataclass(frozen=True)
class DataSets(Mapping[str, ImageSet]):
    """The sets a server offers, by name, and the folders it could not open (with why)."""

    sets: Mapping[str, ImageSet]
    skipped: tuple[Problem, ...] = field(default=())

    def __getitem__(self, name: str) -> ImageSet:
        return self.sets[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.sets)

    def __len__(self) -> int:
        return len(self.sets)

    def default_for(self, dataset: str) -> ImageSet | None:
        """The set a model trained on `dataset` (its config's name) is viewed on by default: the
        built-in of that name (dSprites from the official .npz too), else a set whose record says
        it holds that data set's images (`model_dataset`), else one of that name."""
        name = "dsprites" if dataset.startswith("dsprites-npz:") else dataset
        if name in BUILT_IN and name in self.sets:
            return self.sets[name]
        for s in self.sets.values():
            if s.model_dataset == dataset:
                return s
        return self.sets.get(name)


def scan_sets(
    root: Path | None,
    extra: Mapping[str, str | Path] | None = None,
    fashion_root: Path = FASHION_ROOT,
    built_ins: bool = True,
) -> DataSets:
    """The built-in sets, every sub-folder of `root` (named by its dataset.json or its folder),
    and `extra` (NAME → path, from `serve --data`). A folder that cannot be opened is skipped
    with a log line that says why; a set named twice is refused, since a name picks one."""
    sets: dict[str, ImageSet] = {}
    skipped: list[Problem] = []
    if built_ins:
        for b in BUILT_IN:
            sets[b] = built_in(b, fashion_root)
    folders: list[tuple[str | None, Path]] = []
    if root is not None and root.is_dir():
        folders += [
            (None, p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")
        ]
    folders += [(name, Path(path)) for name, path in dict(extra or {}).items()]
    for name, path in folders:
        try:
            s = open_set(path, name=name)
        except DatasetError as e:
            skipped.append(Problem(str(path), str(e)))
            log.error("skipping data set %s: %s", path, e)
            continue
        if not SET_NAME.fullmatch(s.name):
            skipped.append(
                Problem(
                    str(path),
                    f"{s.name!r} cannot be a data set's name: letters, "
                    "digits, '.', '_' or '-', the first a letter or digit",
                )
            )
            continue
        if s.name in sets:
            where = sets[s.name].location
            if name is None:
                skipped.append(
                    Problem(
                        str(path), f"a data set named {s.name!r} is already served (from {where})"
                    )
                )
                log.error("skipping data set %s: the name %r is taken by %s", path, s.name, where)
                continue
            raise DatasetError(
                f"--data {name}={path}: a data set named {name!r} is already served (from {where})"
            )
        sets[s.name] = s
    return DataSets(sets, tuple(skipped))
