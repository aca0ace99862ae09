"""A real uvicorn server in a thread, on a socket that is already listening when the fixture
returns: the browser's first request simply waits in the backlog until the app is up."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from playwright.sync_api import Browser, Playwright

from app.main import create_app
from app.server import tcp_listener
from app.settings import Settings

CHROMIUM = "/usr/bin/chromium"  # Debian's package, installed by `make test`
# headless, and without the background networking that this closed network would refuse
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(p: Playwright) -> Browser:
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    sock = tcp_listener("127.0.0.1", 0)  # TCP named, so responses aren't held by Nagle
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
