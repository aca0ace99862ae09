"""Results computed in a server's background and kept as JSON files: one at a time on a daemon
thread, each request answered at once with where its result stands (`PartStatus`), the result
read from `<cache_dir>/set-scores/<key>.json` once written (whole, then renamed into place), so
that a restarted server, and every server process sharing the folder, find it. A failure is
reported once, to the request after it, then forgotten: the next request tries again.

There is no lock file: two processes that ask for the same key at once may both compute it, and
the second write replaces the first with the same numbers."""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from app import background
from app.cache_files import replaced_atomically

log = logging.getLogger(__name__)

FOLDER = "set-scores"
FORMAT = 2  # bumped when what a result holds, or how it is computed, changes: part of its key
State = Literal["queued", "running", "done", "failed", "none"]
Progress = Callable[[float, str], None]  # (fraction done, what is being done)


def _path(cache_dir: Path, key: str) -> Path:
    return cache_dir / FOLDER / f"{key}.json"


def read_part(cache_dir: Path, key: str) -> dict[str, Any] | None:
    """A kept part, where its file is whole and of this key; else None (computed again)."""
    path = _path(cache_dir, key)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("set scores %s are computed again: %s", path, e)
        return None
    if not isinstance(data, dict) or data.get("key") != key or data.get("format") != FORMAT:
        return None
    result = data.get("result")
    return result if isinstance(result, dict) else None


def write_part(cache_dir: Path, key: str, result: dict[str, Any]) -> None:
    """Written beside, flushed, then renamed over: a reader sees the whole file or none."""
    text = json.dumps({"format": FORMAT, "key": key, "result": result}, ensure_ascii=False)
    with replaced_atomically(_path(cache_dir, key)) as f:
        f.write(text.encode("utf-8"))


# --- in the background -------------------------------------------------------------------------


@dataclass(frozen=True)
class PartStatus:
    """Where one part stands: `fraction` and `detail` while it runs, `detail` the reason when
    it failed, `result` when done; state "none" where it does not apply (an AE's bound)."""

    state: State
    fraction: float = 0.0
    detail: str = ""
    result: dict[str, Any] | None = None


@dataclass
class _Job:
    key: str
    compute: Callable[[Progress], dict[str, Any]]
    state: State = "queued"
    fraction: float = 0.0
    detail: str = ""
    future: Future[None] = field(default_factory=Future)

    def status(self) -> PartStatus:
        return PartStatus(self.state, self.fraction, self.detail)

    def progress(self, fraction: float, what: str) -> None:
        background.check()  # at exit the computation stops at its next report
        self.fraction, self.detail = fraction, what


# at exit (app.background) running scores stop at their next progress report and are waited
# for at most this long
EXIT_WAIT = 30.0


@dataclass
class ScoreJobs:
    """The parts a server process computes, one at a time on a daemon thread, kept under
    `cache_dir`. A failure is reported once, to the request after it, then forgotten."""

    cache_dir: Path
    _jobs: dict[str, _Job] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _queue: queue.SimpleQueue[_Job] = field(default_factory=queue.SimpleQueue)
    _worker: threading.Thread | None = None

    def __post_init__(self) -> None:
        background.register(self, EXIT_WAIT)

    def finish(self, timeout: float) -> None:
        """At exit: nothing queued starts (_work), and what runs is waited for."""
        self.join(timeout)

    def request(self, key: str, compute: Callable[[Progress], dict[str, Any]]) -> PartStatus:
        """Where the part of `key` stands, queuing `compute` where it is neither kept nor
        computing."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None:
                if job.state == "failed":
                    del self._jobs[key]  # reported once
                return job.status()
        found = read_part(self.cache_dir, key)
        if found is not None:
            return PartStatus("done", 1.0, result=found)
        with self._lock:
            job = self._jobs.get(key)
            if job is None:
                job = self._jobs[key] = _Job(key, compute)
                self._queue.put(job)
                if self._worker is None:
                    self._worker = threading.Thread(target=self._work, name="set-scores",
                                                    daemon=True)  # fmt: skip
                    self._worker.start()
            return job.status()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if background.exiting():  # the process is exiting: nothing new starts
                job.future.set_result(None)
                continue
            job.state = "running"
            try:
                write_part(self.cache_dir, job.key, job.compute(job.progress))
            except Exception as e:  # noqa: BLE001 (kept for the request that asks next)
                reason = " ".join(str(e).split()) or type(e).__name__
                log.error("set scores %s failed: %s", job.key, reason)
                job.detail, job.state = reason, "failed"
            else:
                with self._lock:  # the file answers from now on
                    self._jobs.pop(job.key, None)
                job.state = "done"
            job.future.set_result(None)

    def join(self, timeout: float | None = None) -> None:
        """Wait until every part started or queued so far has finished or failed."""
        with self._lock:
            futures = [job.future for job in self._jobs.values()]
        for future in futures:
            with contextlib.suppress(CancelledError, TimeoutError):
                future.result(timeout)
