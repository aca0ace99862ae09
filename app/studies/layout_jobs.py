"""Layouts computed in the background (t-SNE, UMAP): one at a time on a daemon thread, each
kept per key (the method, the weights, the images, n, seed, the method's settings) in memory
and, where a cache folder is set, on disk, which is what lets a restarted server, and several
server processes, share one computation. A request that finds its layout not ready gets where
it stands (`Pending`, with the fraction done where the method reports it) instead of waiting."""

from __future__ import annotations

import contextlib
import io
import json
import queue
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app import background
from app.cache_files import lock_is_stale, replaced_atomically, take_lock
from app.checkpoints.served import ServedModel
from app.studies.layouts import Layout, Progress

# seconds per point on the 2-core machine, for the 202's estimate (bench/layout_speed.py,
# 2026-12-06 15:45: openTSNE 14.6 s for 20,000 and 44.1 s for 70,000; UMAP 51.0 s for 70,000,
# plus 8 s of numba compiling the first time in a process); a busy machine takes 2-3 times as
# long
SECONDS_PER_POINT = {"tsne": 0.00065, "umap": 0.00075}
NAMES = {"tsne": "t-SNE", "umap": "UMAP"}

Compute = Callable[[Progress], Layout]  # hears the fraction done as it goes


@dataclass
class Pending:
    """A layout not finished yet: where it stands, for the 202 the API answers meanwhile."""

    state: str  # "queued" | "computing" | "computing elsewhere" (another server process)
    started: float | None  # time.time() it began computing
    estimate: float  # seconds it should take
    method: str = "tsne"
    progress: float | None = None  # the fraction done, where the method reports it

    def detail(self, n: int) -> str:
        what = NAMES.get(self.method, self.method)
        about = f"about {self.estimate:.0f} s on 2 cores"
        if self.state == "queued":
            return f"{what} of {n:,} points is queued behind another map ({about} once started)"
        elapsed = 0 if self.started is None else time.time() - self.started
        where = " by another server process" if self.state == "computing elsewhere" else ""
        done = "" if self.progress is None else f", {self.progress:.0%} done"
        return (
            f"{what} of {n:,} points is being computed{where}: {elapsed:.0f} s so far{done}, "
            f"{about}"
        )

    def report(self, fraction: float) -> None:
        background.check()  # openTSNE calls this between iterations: at exit it stops there
        self.progress = fraction


# at exit (app.background) queued layouts are dropped, a t-SNE stops at its next progress
# report (a fraction of a second), and what runs is waited for at most this long: a server
# asked to stop does not wait out a UMAP, which cannot be stopped (47 s for 70,000 points),
# and one still running after the wait can still abort the exit
EXIT_WAIT = 10.0


@dataclass
class LayoutJobs:
    """One layout at a time on a background daemon thread (a server that is stopped does not
    wait for it); results kept per key (most recent `size` in memory; all on disk under
    `cache_dir` when set: `<key>.npz`, written whole or not at all, beside a `<key>.lock` that
    says which process is computing it: `{"host": ..., "pid": ...}`). A file that is not the
    map its key asks for (n points in 2-D, all finite) is computed again, never served. A lock
    of this host whose process is gone (a server killed mid-run) is taken over at once; one of
    another host, or one that cannot be read, once it is `stale_after` old. At most
    `max_queued` wait their turn: past that the longest waiting is dropped, and computed again
    if it is asked for again. A failure is kept once, for the next request to report, and then
    forgotten so the one after tries again."""

    cache_dir: Path | None = None
    size: int = 16
    max_queued: int = 4
    stale_after: float = 3600.0  # another host's lock older than this: it died mid-run
    _done: OrderedDict[str, Layout] = field(default_factory=OrderedDict)
    _running: dict[str, tuple[Future[Layout], Pending]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _queue: queue.SimpleQueue[tuple[str, Future[Layout], Pending, Compute]] = field(
        default_factory=queue.SimpleQueue
    )
    _worker: threading.Thread | None = None

    def __post_init__(self) -> None:
        background.register(self, EXIT_WAIT)

    def finish(self, timeout: float) -> None:
        """Drop what waits its turn and wait for what runs, at most `timeout` seconds."""
        with self._lock:
            running = []
            for future, pending in self._running.values():
                if pending.state == "queued":
                    future.cancel()
                else:
                    running.append(future)
        for future in running:
            with contextlib.suppress(CancelledError, TimeoutError, Exception):
                future.exception(timeout)

    def get(self, key: str, n: int, compute: Compute, method: str = "tsne") -> Layout | Pending:
        """The layout if it is ready; else where it stands, starting it if nobody has. `method`
        names it in the 202's words and sets the estimate."""
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key]
            running = self._running.get(key)
            if running is not None:
                future, pending = running
                if not future.done():
                    return pending
                del self._running[key]
                if not future.cancelled():
                    return self._keep(key, future.result())  # raises the failure, once
            stored = self._read(key, n)
            if stored is not None:
                return self._keep(key, stored)
            if not self._claim(key):
                return Pending(
                    "computing elsewhere", self._lock_time(key), _estimate(method, n), method
                )
            return self._enqueue(key, n, compute, method)

    def _enqueue(self, key: str, n: int, compute: Compute, method: str) -> Pending:
        waiting = [
            (k, f) for k, (f, p) in self._running.items() if p.state == "queued" and not f.done()
        ]
        for k, f in waiting[: max(0, len(waiting) - self.max_queued + 1)]:
            f.cancel()  # the longest waiting: its next request queues it again
            self._release(k)
        pending = Pending("queued", None, _estimate(method, n), method)
        future: Future[Layout] = Future()
        self._running[key] = (future, pending)
        self._queue.put((key, future, pending, compute))
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="layouts", daemon=True)
            self._worker.start()
        return pending

    def _work(self) -> None:
        while True:
            key, future, pending, compute = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue  # dropped while it waited
            pending.state, pending.started = "computing", time.time()
            try:
                layout = compute(pending.report)
                self._write(key, layout)
            except BaseException as e:  # noqa: BLE001 (kept for the request that asks next)
                self._release(key)
                future.set_exception(e)
            else:
                self._release(key)  # before the result: whoever sees it done sees no lock
                future.set_result(layout)

    def join(self, timeout: float | None = None) -> None:
        """Wait until every layout started or queued so far has finished, failed or been
        dropped."""
        with self._lock:
            futures = [future for future, _ in self._running.values()]
        for future in futures:
            with contextlib.suppress(CancelledError):
                future.exception(timeout)

    def _keep(self, key: str, layout: Layout) -> Layout:
        self._done[key] = layout
        while len(self._done) > self.size:
            self._done.popitem(last=False)
        return layout

    # the on-disk side, shared by server processes
    def _path(self, key: str, suffix: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"{key}{suffix}"

    def _read(self, key: str, n: int) -> Layout | None:
        """The map kept on disk, if it is one of n finite points in 2-D; else None, and it is
        computed again and written over (a file cut short, or not this request's)."""
        path = self._path(key, ".npz")
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                points, settings = f["points"], json.loads(str(f["settings"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        if (
            points.shape != (n, 2)
            or not np.issubdtype(points.dtype, np.number)
            or not np.isfinite(points).all()
            or not isinstance(settings, dict)
        ):
            return None
        return Layout(points=points.astype(np.float64), settings=settings)

    def _write(self, key: str, layout: Layout) -> None:
        path = self._path(key, ".npz")
        if path is None:
            return
        buf = io.BytesIO()
        np.savez(buf, points=layout.points, settings=np.array(json.dumps(layout.settings)))
        with replaced_atomically(path) as f:  # whole or not at all
            f.write(buf.getvalue())

    def _claim(self, key: str) -> bool:
        """Take the key's lock file, or say that another process holds it: created only where
        none is (O_EXCL), so of two processes asking at once one computes. A stale lock is
        removed and taken."""
        lock = self._path(key, ".lock")
        if lock is None:
            return True
        return take_lock(lock, self.stale_after)

    def _stale(self, lock: Path) -> bool:
        return lock_is_stale(lock, self.stale_after)

    def _lock_time(self, key: str) -> float:
        lock = self._path(key, ".lock")
        try:
            return lock.stat().st_mtime if lock is not None else time.time()
        except OSError:
            return time.time()

    def _release(self, key: str) -> None:
        lock = self._path(key, ".lock")
        if lock is not None:
            lock.unlink(missing_ok=True)


def _estimate(method: str, n: int) -> float:
    return n * SECONDS_PER_POINT.get(method, SECONDS_PER_POINT["tsne"])


def layout_key(
    method: str, ckpt: ServedModel, dataset: str | None, n: int, seed: int,
    perplexity: float | None = None,
) -> str:  # fmt: skip
    """A file name for one layout: the method, the weights, where the images came from (the
    dataset's name, None for the model's own prior samples), n, seed, and t-SNE's perplexity."""
    source = (dataset or "prior").replace(" ", "-").lower()
    key = f"{method}-{ckpt.digest[:16]}-{source}-n{n}-s{seed}"
    return key if perplexity is None else f"{key}-p{perplexity:g}"
