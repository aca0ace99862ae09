"""Work a server does on its own daemon threads (a data set's encoding, its scores, a t-SNE or
UMAP) and the end of the process. A job still running native code (torch's, openTSNE's,
numba's) when the interpreter shuts down has its threads torn from under it, and the process
aborts ("terminate called without an active exception", exit status 134) instead of exiting as
it meant to. So each runner of such jobs is registered here; at exit `exiting()` turns true,
which its jobs' progress reports turn into `Stopped` (the job ends at its next report), and the
runner is asked to finish: nothing queued starts, and what runs is waited for, at most the
runner's own `wait` seconds."""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import Protocol


class Stopped(Exception):
    """Background work given up because its process is exiting."""


class Runner(Protocol):
    def finish(self, timeout: float) -> None:
        """Start nothing more; wait at most `timeout` seconds for what runs."""


_exiting = threading.Event()
# (a weak reference to each runner, its wait): weak, so a runner no longer used is not kept for
# the exit; by reference, so a runner need not be hashable (the runners are mutable dataclasses)
_runners: list[tuple[weakref.ref[Runner], float]] = []
_registering = threading.Lock()


def register(runner: Runner, wait: float) -> None:
    """Finish `runner` at exit, waiting at most `wait` seconds for it."""
    with _registering:
        _runners[:] = [(ref, w) for ref, w in _runners if ref() is not None]
        _runners.append((weakref.ref(runner), wait))


def exiting() -> bool:
    return _exiting.is_set()


def check() -> None:
    """Raise Stopped where the process is exiting: called from a job's progress report."""
    if _exiting.is_set():
        raise Stopped("the process is exiting")


@atexit.register
def _finish_all() -> None:
    _exiting.set()
    with _registering:
        registered = list(_runners)
    for ref, wait in registered:
        runner = ref()
        if runner is not None:
            runner.finish(wait)
