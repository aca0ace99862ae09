"""Selections kept by their content: a selection's id is a digest of the images it names (what
they are images of, and their indices), so the same selection always has the same id, a URL can
carry it in 16 characters whatever its size, and another model, on /compare, reads the same
images by it.

Kept in memory (the most recent `size`) and, where a cache folder is set, on disk as
`selections/<id>.npz` (the indices as uint32 and what they index, written whole or not at all;
read back with numpy's pickle-free loader), so a link outlives a restart."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.cache_files import replaced_atomically
from app.inference import DatasetImages, DrawnImages, SetImages, TestImages


class UnknownSelectionError(LookupError):
    """No selection has this id here."""


@dataclass(frozen=True)
class StoredSelection:
    id: str
    source: str  # what the indices index: "set:<name>:<digest>", "truth:dSprites", ...
    name: str  # the images' name for people: "dSprites", "celeba-100"
    indices: np.ndarray  # (k,) int64, unique, ascending

    @property
    def count(self) -> int:
        return len(self.indices)


def source_of(images: DatasetImages) -> str:
    """What a selection's indices index, as a key two models compare."""
    if isinstance(images, SetImages):
        return f"set:{images.name}:{images.set.content_digest()}"
    if isinstance(images, DrawnImages):
        return f"truth:{images.name}"
    if isinstance(images, TestImages):
        return f"test:{images.name}"
    raise TypeError(images)


def selection_id(source: str, indices: np.ndarray) -> str:
    h = hashlib.sha256(source.encode())
    h.update(np.ascontiguousarray(indices, dtype="<u4").tobytes())
    return h.hexdigest()[:16]


@dataclass
class SelectionStore:
    cache_dir: Path | None = None
    size: int = 64
    _kept: OrderedDict[str, StoredSelection] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _path(self, ident: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / "selections" / f"{ident}.npz"

    def _remember(self, s: StoredSelection) -> None:
        with self._lock:
            self._kept[s.id] = s
            self._kept.move_to_end(s.id)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)

    def add(self, images: DatasetImages, indices: np.ndarray) -> StoredSelection:
        """Keep a selection (`indices` unique and ascending, checked by the caller)."""
        source = source_of(images)
        ident = selection_id(source, indices)
        stored = StoredSelection(ident, source, images.name, indices.astype(np.int64))
        path = self._path(ident)
        if path is not None and not path.exists():
            with replaced_atomically(path) as f:
                np.savez(
                    f, indices=indices.astype("<u4"), source=np.array(source),
                    name=np.array(images.name),
                )  # fmt: skip
        self._remember(stored)
        return stored

    def get(self, ident: str) -> StoredSelection:
        with self._lock:
            if ident in self._kept:
                self._kept.move_to_end(ident)
                return self._kept[ident]
        path = self._path(ident)
        if path is None or not path.is_file():
            raise UnknownSelectionError(f"no selection {ident} here")
        try:
            with np.load(path, allow_pickle=False) as z:
                indices = z["indices"].astype(np.int64)
                stored = StoredSelection(ident, str(z["source"]), str(z["name"]), indices)
        except (OSError, ValueError, KeyError):
            raise UnknownSelectionError(f"selection {ident} cannot be read here") from None
        if selection_id(stored.source, indices) != ident:  # a file that is not what it says
            raise UnknownSelectionError(f"selection {ident} cannot be read here")
        self._remember(stored)
        return stored


_stores: dict[Path | None, SelectionStore] = {}
_stores_lock = threading.Lock()


def selection_store(cache_dir: Path | None) -> SelectionStore:
    with _stores_lock:
        if cache_dir not in _stores:
            _stores[cache_dir] = SelectionStore(cache_dir)
        return _stores[cache_dir]
