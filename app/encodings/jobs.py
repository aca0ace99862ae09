"""Encodings computed in the background of a server: one at a time per process, on a daemon
thread (a server that stops does not wait for it), each request answered at once with where its
encoding stands. What is finished is read from the cache folder, so a restarted server, and every
server process sharing the folder, find it; a key another process is encoding is reported as
running there (its lock file), with the share of its chunks written, never started twice."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from app import background
from app.checkpoints.served import ServedModel
from app.data.sets.record import ImageSet
from app.encodings.cache import EncodingPlan, held_elsewhere, plan_encoding, read_encoding
from app.encodings.record import DataEncoding, EncodingBusy, EncodingError
from app.encodings.run import RunSettings, encode_set

log = logging.getLogger(__name__)

State = Literal["queued", "running", "done", "failed"]


@dataclass(frozen=True)
class EncodingStatus:
    """Where one encoding stands. `fraction` and `images_per_s` while running; `reason` (one
    line) when failed; `encoding` when done; `elsewhere` when another process is computing it."""

    state: State
    fraction: float = 0.0
    images_per_s: float = 0.0
    reason: str = ""
    encoding: DataEncoding | None = None
    elsewhere: bool = False


@dataclass
class _Job:
    plan: EncodingPlan
    served: ServedModel
    data: ImageSet
    label_column: str | None
    state: State = "queued"
    fraction: float = 0.0
    images_per_s: float = 0.0
    reason: str = ""
    future: Future[None] = field(default_factory=Future)

    def status(self) -> EncodingStatus:
        return EncodingStatus(self.state, self.fraction, self.images_per_s, self.reason)

    def progress(self, fraction: float, images_per_s: float) -> None:
        background.check()  # heard after each batch: at exit the run stops there, parts kept
        self.fraction, self.images_per_s = fraction, images_per_s


# at exit (app.background) a running encoding stops after its batch (a fraction of a second)
# and is waited for at most this long
EXIT_WAIT = 30.0


@dataclass
class EncodingJobs:
    """The encodings a server process computes, one at a time, kept under `cache_dir`."""

    cache_dir: Path
    settings: RunSettings = field(default_factory=RunSettings)
    _jobs: dict[str, _Job] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _queue: queue.SimpleQueue[_Job] = field(default_factory=queue.SimpleQueue)
    _worker: threading.Thread | None = None

    def __post_init__(self) -> None:
        background.register(self, EXIT_WAIT)

    def finish(self, timeout: float) -> None:
        """At exit: nothing queued starts (_work), and what runs is waited for."""
        self.join(timeout)

    def request(
        self, served: ServedModel, data: ImageSet, label_column: str | None = None
    ) -> EncodingStatus:
        """Where the encoding of `served` on `data` stands, starting it where nobody has. A
        failure is reported once, to the request after it, and forgotten: the next request
        tries again."""
        status = self._look(served, data, label_column, start=True)
        return status or EncodingStatus("queued")

    def status(
        self, served: ServedModel, data: ImageSet, label_column: str | None = None
    ) -> EncodingStatus | None:
        """Where it stands without starting anything: None where nobody computes it and it is
        not kept."""
        return self._look(served, data, label_column, start=False)

    def _look(
        self, served: ServedModel, data: ImageSet, label_column: str | None, start: bool
    ) -> EncodingStatus | None:
        try:
            plan = plan_encoding(served, data, self.cache_dir, label_column)
        except EncodingError as e:
            return EncodingStatus("failed", reason=str(e))
        with self._lock:
            job = self._jobs.get(plan.key)
            if job is not None and job.state in ("queued", "running"):
                return job.status()
            if job is not None and job.state == "failed":
                if start:
                    del self._jobs[plan.key]  # reported once
                return job.status()
        found = read_encoding(plan)
        if found is not None:
            return EncodingStatus("done", fraction=1.0, encoding=found)
        elsewhere = held_elsewhere(plan)
        if elsewhere is not None:
            return EncodingStatus("running", fraction=elsewhere, elsewhere=True)
        if not start:
            return None
        with self._lock:
            job = self._jobs.get(plan.key)
            if job is None:  # not queued by another request meanwhile
                job = _Job(plan, served, data, label_column)
                self._jobs[plan.key] = job
                self._queue.put(job)
                if self._worker is None:
                    self._worker = threading.Thread(target=self._work, name="encode", daemon=True)
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
                encode_set(
                    job.served, job.data, self.cache_dir, job.label_column, self.settings,
                    progress=job.progress,
                )  # fmt: skip
            except background.Stopped:
                job.reason, job.state = "stopped: the server was exiting", "failed"
            except EncodingBusy:
                with self._lock:  # another process took it first: its lock reports it now
                    self._jobs.pop(job.plan.key, None)
            except Exception as e:  # noqa: BLE001 (kept for the request that asks next)
                reason = " ".join(str(e).split()) or type(e).__name__
                log.error("encoding %s on %s failed: %s", job.served.name, job.data.name, reason)
                job.reason, job.state = reason, "failed"
            else:
                with self._lock:  # the file answers from now on
                    self._jobs.pop(job.plan.key, None)
                job.state = "done"
            job.future.set_result(None)

    def join(self, timeout: float | None = None) -> None:
        """Wait until every encoding started or queued so far has finished or failed."""
        with self._lock:
            futures = [job.future for job in self._jobs.values()]
        for future in futures:
            with contextlib.suppress(CancelledError, TimeoutError):
                future.result(timeout)
