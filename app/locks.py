"""Lock files that several processes, on one host or several sharing a folder, agree on: a
computation kept in a cache folder (a t-SNE layout, a data set's encoding) is made by whichever
process creates its lock file first; the file names the holder's host and process id.

A lock is stale, and taken over, when its writer no longer runs: on this host, when its process
is gone (or is this process, which holds no lock it is not using: a server restarted in a
container often gets the same pid); on another host, or unreadable, when its file is older than
the caller's `stale_after` seconds (the holder touches it while it works)."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any


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
