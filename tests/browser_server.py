"""A real uvicorn server in a thread, on a socket that is already listening when the fixture
returns: the browser's first request simply waits in the backlog until the app is up."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from playwright.sync_api import Browser, Locator, Page, Playwright

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


# --- the explorer's picture and sliders, as the browser tests drive them -----------------------


def canvas_pixels(page: Page, model: str) -> str:
    return page.eval_on_selector(f'canvas.decoded[data-model="{model}"]', "c => c.toDataURL()")


def wait_painted(page: Page, model: str) -> str:
    """Once the model's picture is first painted: the decode URL it shows."""
    sel = f'canvas.decoded[data-model="{model}"]'
    page.wait_for_function(f"document.querySelector('{sel}').dataset.shown !== undefined")
    return page.eval_on_selector(sel, "c => c.dataset.shown")


def wait_repainted(page: Page, model: str, before: str) -> str:
    """Once the model's picture shows another z than `before`: the decode URL it shows."""
    sel = f'canvas.decoded[data-model="{model}"]'
    page.wait_for_function(
        "([sel, before]) => document.querySelector(sel).dataset.shown !== before", arg=[sel, before]
    )
    return page.eval_on_selector(sel, "c => c.dataset.shown")


def grab_and_drag(page: Page, slider: Locator, fraction: float) -> None:
    """Press the mouse on the middle of a range input and move it right by `fraction` of its
    width (left where negative), in steps; the button stays held (the caller lets go)."""
    b = slider.bounding_box()
    assert b is not None
    x, y = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + b["width"] * fraction, y, steps=8)
