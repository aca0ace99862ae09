"""Files in a cache folder that several server processes share, on one host or several.

A result is written whole and renamed into place (`replaced_atomically`), so a reader sees the
whole file or none. A computation (a t-SNE layout, a data set's encoding) is made by whichever
process creates its lock file first; the lock names the holder's host and process id.

A lock is stale, and taken over, when its writer no longer runs: on this host, when its process
is gone (or is this process, which holds no lock it is not using: a server restarted in a
container often gets the same pid); on another host, or unreadable, when its file is older than
the caller's `stale_after` seconds (the holder touches it while it works)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def replaced_atomically(path: Path, durable: bool = True) -> Iterator[IO[bytes]]:
    """A binary file to write `path`'s new content into: written beside it, on the disk where
    `durable`, readable by every server process (mkstemp makes 0600), then renamed over `path`;
    removed, leaving `path` as it was, where the block raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def take_lock(lock: Path, stale_after: float, **extra: Any) -> bool:
    """Create `lock` where none is (O_EXCL: of two processes asking at once, one gets it), after
    removing a stale one; False where a live process holds it. `extra` is written beside the
    holder (e.g. how large a run's chunks are, so others can tell how far it is)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if not lock_is_stale(lock, stale_after):
                return False
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump({"host": socket.gethostname(), "pid": os.getpid(), **extra}, f)
        return True
    return False  # another process took it between our removing the stale one and creating


def lock_is_stale(lock: Path, stale_after: float) -> bool:
    """Whether the process that wrote `lock` no longer runs (see the module)."""
    try:
        holder = json.loads(lock.read_text())
        host, pid = holder["host"], holder["pid"]
    except (OSError, ValueError, KeyError, TypeError):
        host, pid = None, None  # being written this instant, or not ours: judged by its age
    if host == socket.gethostname() and isinstance(pid, int) and pid > 0:
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)  # signal 0 sends nothing: it asks whether the process exists
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, another user's
        return False
    try:
        return time.time() - lock.stat().st_mtime > stale_after
    except FileNotFoundError:
        return True  # released meanwhile


def lock_holder(lock: Path) -> str:
    """Who holds a lock, in words ("pid 1234 on host-a"), as well as can be read."""
    try:
        holder = json.loads(lock.read_text())
        return f"pid {holder['pid']} on {holder['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
