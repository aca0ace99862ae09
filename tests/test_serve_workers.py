"""`latent-explorer serve --workers 2` end to end: a real supervisor and two worker processes on
a free port, serving a folder of tiny checkpoints. Both workers answer, they decode the same
bytes as the app in this process, and Ctrl-C stops everything cleanly.

Each worker is made to take 6 s more to boot (a `sitecustomize` that waits in spawned children
only), as a busy 2-core machine does when two workers import torch at once: uvicorn's
supervisor must not kill and restart a worker for being slow to start."""

from __future__ import annotations

import http.client
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BOOT_S = 6  # longer than uvicorn's default worker health-check timeout (5 s after a 0.5 s tick)
Z = "0.25,-1.5,0.75,0,2,-0.5,1,0,-2,0.5"
SLOW_BOOT = f"""
import sys, time
if "--multiprocessing-fork" in sys.argv:  # a worker process spawned by the supervisor
    time.sleep({BOOT_S})
"""

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="finds which worker answered through /proc"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    proc: subprocess.Popen
    port: int
    folder: Path
    lines: list[str] = field(default_factory=list)
    fresh: queue.Queue = field(default_factory=queue.Queue)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            self.fresh.put(line.rstrip())
        self.fresh.put(None)  # the process closed its output: it has exited

    def wait_for(self, pattern: str, count: int, timeout: float) -> None:
        """Block on the server's log until `pattern` has appeared `count` times."""
        deadline = time.monotonic() + timeout

        def seen() -> int:
            return sum(bool(re.search(pattern, line)) for line in list(self.lines))

        while seen() < count:
            # one item per line read, None once the output closed: wake on each, count again
            try:
                item = self.fresh.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"{pattern!r} seen {seen()} of {count} times in {timeout} s:\n"
                    + "\n".join(self.lines)
                ) from None
            if item is None:
                self.fresh.put(None)
                if seen() < count:
                    raise AssertionError("server exited:\n" + "\n".join(self.lines))

    def pids(self, pattern: str) -> list[int]:
        return [int(m.group(1)) for line in self.lines if (m := re.search(pattern, line))]

    @property
    def workers(self) -> list[int]:
        return self.pids(r"Started server process \[(\d+)\]")


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("two-workers")
    for name in ("tiny-vae", "tiny-cvae"):
        shutil.copytree(trained[name], folder / name)
    slow = tmp_path_factory.mktemp("slow-boot")
    (slow / "sitecustomize.py").write_text(SLOW_BOOT)
    script = Path(sys.executable).parent / "latent-explorer"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "app"]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(slow), str(ROOT)])}
    proc = subprocess.Popen(
        [*command, "serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
         "--checkpoints", str(folder)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group: nothing outlives the test
    )  # fmt: skip
    server = Served(proc, port, folder)
    threading.Thread(target=server.read, daemon=True).start()
    try:
        server.wait_for(r"Application startup complete", 2, timeout=90)
        yield server
    finally:
        try:  # the supervisor, and any worker a failed test left behind
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


def get(port: int, path: str) -> tuple[http.client.HTTPConnection, bytes]:
    """GET on a new keep-alive connection, left open so its server side can be found."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, body
    return conn, body


def answered_by(conn: http.client.HTTPConnection, server: Served) -> int:
    """The worker process holding the server side of this open connection."""
    client_port = conn.sock.getsockname()[1]
    inode = None
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = row.split()
        local, remote = int(cols[1].split(":")[1], 16), int(cols[2].split(":")[1], 16)
        if local == server.port and remote == client_port:
            inode = cols[9]
    assert inode not in (None, "0"), "no accepted server-side socket for this connection"
    for pid in server.workers:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no worker holds socket {inode}")


DECODE = f"/api/models/tiny-vae/decode.png?z={Z}"


def test_two_worker_processes_start_once_each(served):
    workers = served.workers
    assert len(workers) == 2 and len(set(workers)) == 2, served.lines
    assert served.proc.pid not in workers
    assert not any("died" in line for line in served.lines), served.lines  # none restarted
    # each worker loaded the models itself
    assert sum("loaded 2 model(s)" in line for line in served.lines) == 2


def test_both_workers_answer_with_the_bytes_of_the_in_process_app(served):
    with TestClient(create_app(Settings(checkpoints_dir=served.folder))) as client:
        here = client.get(DECODE).content
    first, body = get(served.port, DECODE)
    a = answered_by(first, served)
    assert body == here
    # with worker a paused, only the other one can accept the next connection
    os.kill(a, signal.SIGSTOP)
    try:
        second, body_b = get(served.port, DECODE)
        b = answered_by(second, served)
    finally:
        os.kill(a, signal.SIGCONT)
    assert {a, b} == set(served.workers)
    assert body_b == here
    # and worker a is back: its open connection is answered again
    first.request("GET", f"/api/models/tiny-cvae/decode.png?z={Z}&label=2")
    r = first.getresponse()
    assert r.status == 200 and r.read()[:8] == b"\x89PNG\r\n\x1a\n"
    first.close()
    second.close()


def test_ctrl_c_stops_the_supervisor_and_both_workers_cleanly(served):
    workers = served.workers
    served.proc.send_signal(signal.SIGINT)  # to the supervisor alone: it must stop the workers
    assert served.proc.wait(timeout=60) == 0
    served.wait_for(r"Stopping parent process", 1, timeout=10)
    for pid in workers:
        assert any(f"Finished server process [{pid}]" in line for line in served.lines)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # exited and reaped by the supervisor
    assert sum("Application shutdown complete" in line for line in served.lines) == 2
    assert not any("Traceback" in line or "ERROR" in line for line in served.lines), served.lines
