"""Files and folders that loading and saving checkpoints and runs rely on: a folder written beside
its target and swapped in with one atomic rename (`renameat2(RENAME_EXCHANGE)`), so a crash at
any moment leaves the previous folder whole; and files read only where they are regular files
inside their folder and under a size limit, checked before reading (a folder may come from a
stranger: a FIFO would block start-up forever, a symlink could point at /etc/passwd or
/dev/zero)."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 64 << 20  # any other JSON: a run's trainer.json keeps the whole loss history


class CheckpointError(Exception):
    """A checkpoint or run folder that cannot be used, with a message that says why."""


# --- atomic folder writes -------------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step; False where the system cannot (then we fall back)."""
    fn = getattr(_libc, "renameat2", None)
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _backup_path(target: Path) -> Path:
    return target.parent / f".{target.name}.old"


def recover(target: Path) -> None:
    """Finish a swap that a crash interrupted on a system without RENAME_EXCHANGE: if only the
    backup of the previous folder exists, it becomes the folder again."""
    backup = _backup_path(target)
    if backup.is_dir() and not target.exists():
        os.rename(backup, target)
        log.warning("restored %s from %s after an interrupted save", target, backup.name)


def write_folder_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Build a folder's contents with `write(tmp)` beside `target`, then swap it in whole."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a crash mid-write: never swapped in
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write(tmp)
        for f in tmp.iterdir():
            os.chmod(f, 0o644)  # safetensors writes 0600; checkpoints are shared data
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o755)
        fsync_dir(tmp)
        if not target.exists():
            os.rename(tmp, target)
        elif _exchange(tmp, target):
            pass  # tmp now holds the previous folder
        else:
            backup = _backup_path(target)
            shutil.rmtree(backup, ignore_errors=True)
            os.rename(target, backup)
            os.rename(tmp, target)
            tmp = backup
        fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def json_text(data: Any) -> str:
    """JSON as every file of a checkpoint folder holds it: indented, UTF-8 as it is."""
    return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def write_json(path: Path, data: Any) -> None:
    path.write_text(json_text(data))


_FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def check_file(path: Path) -> int:
    """The size of `path`, a regular file in its folder; else CheckpointError saying what it is.
    A symlink is followed only where it resolves inside the folder."""
    path = Path(path)
    try:
        if path.is_symlink():
            target = Path(os.path.realpath(path))
            if not target.is_relative_to(os.path.realpath(path.parent)):
                raise CheckpointError(
                    f"{path}: a symlink to {target}, outside the folder; copy the file in instead"
                )
        st = os.stat(path)
    except FileNotFoundError as e:
        raise CheckpointError(f"{path.parent}: {path.name} is missing") from e
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror})") from e
    if not stat.S_ISREG(st.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise CheckpointError(f"{path}: {path.name} is {kind}, not a file")
    if st.st_size == 0:
        raise CheckpointError(f"{path}: {path.name} is empty")
    return st.st_size


def size_limit(path: Path, size: int, limit: int) -> None:
    if size > limit:
        raise CheckpointError(
            f"{path}: {path.name} is {size:,} bytes; the limit is {_bytes(limit)}"
        )


def _bytes(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n:,} bytes"


def read_bytes(path: Path, limit: int) -> bytes:
    """A file's bytes, where check_file allows it and it is at most `limit` bytes, refused
    before reading where it is larger."""
    path = Path(path)
    size_limit(path, check_file(path), limit)
    try:
        # O_NONBLOCK: were a FIFO swapped in since the check, opening it must not wait forever
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise CheckpointError(f"{path}: {path.name} is not a regular file")
            data = f.read(limit + 1)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror})") from e
    size_limit(path, len(data), limit)  # it grew since the check
    return data


def read_json(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    """A JSON file of at most `limit` bytes (read_bytes), refused in one line where it is not
    JSON or is nested too deeply to parse."""
    data = read_bytes(path, limit)
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError as e:
        raise CheckpointError(f"{path}: {path.name} is nested too deeply to read") from e
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, or an int of 5,000 digits
        raise CheckpointError(f"{path}: not valid JSON ({e})") from e
