"""Slider input → new picture painted, in Chromium, on the explore page (one model) and the
compare page (two models), over drags that start with the grab.

The page records, for every painted frame, the time from the input event to the frame after the
paint (window.__latentPaints). For each page this loads it fresh, waits `--think` ms (the time a
person takes to find a slider; 0 grabs as soon as the first picture is up), then, as a hand
would: moves the pointer onto a slider, presses on the thumb and drags it `--moves` times at
~60 moves per second, lets go, pauses `--think` ms and does the same on the next slider, over
the `--sliders` most informative ones. Each drag starts with the grab, so a strip fetched only
when the slider is grabbed would show in these figures. Prints p50/p95 over every frame of
every drag, and how long a page takes to load every slider's sweep in the background.

    python bench/browser_paint.py [--moves 20] [--sliders 5] [--think 300] [--rounds 3]
        [--page NAME=PATH ...] [--plugin package.module:factory ...]

`--page` replaces the default pages (e.g. `--page celeba=/?model=disvae-btcvae-celeba`, or
`--page kl=/?model=shapes-autoencoder-kl` for a spatial latent's channel sliders);
`--plugin` serves a plugin model beside the checkpoints (e.g. examples.mlp_vae:build, or
bench.conv8_plugin:build, an 8-latent convolutional VAE, for
`--page by-image=/compare?a=my-conv-vae&b=fashion-vae`: sliders of both models in turn);
`--checkpoints DIR` serves another folder of models.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.settings import Settings  # noqa: E402
from tests.browser_server import launch_chromium, live_server  # noqa: E402

# a flat model's latent sliders, or a spatial one's channel sliders (templates/spatial.html)
SLIDERS = ".latent input[type=range], .channel-sliders input[type=range]"
PAGES = (
    ("explore (1 model)", "/"),
    ("compare (2 models)", "/compare?a=dsprites-vae&b=dsprites-beta-vae"),
    ("explore, AE", "/?model=dsprites-ae"),
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def drag_from_grab(page, slider, moves: int) -> None:
    """Pointer onto the thumb, press, sweep `moves` times across the track at ~60 Hz, release."""
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    left, right = box["x"] + 4, box["x"] + box["width"] - 4
    thumb = left + (right - left) * (
        (float(slider.input_value()) - float(slider.get_attribute("min")))
        / (float(slider.get_attribute("max")) - float(slider.get_attribute("min")))
    )
    page.mouse.move(thumb, y)
    page.mouse.down()
    for i in range(moves):
        t = (i % 40) / 40
        x = left + (right - left) * (2 * t if t < 0.5 else 2 - 2 * t)
        page.mouse.move(x, y)
        page.wait_for_timeout(16)
    page.mouse.up()


def run_page(browser, url: str, moves: int, sliders: int, think: int) -> list[dict]:
    # bypass_csp: Playwright's polling waits evaluate strings; our CSP refuses eval
    page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page.goto(url)
    page.wait_for_function("window.__latentPaints && window.__latentPaints.length > 0")
    page.evaluate("window.__latentPaints.length = 0")
    page.wait_for_timeout(think)
    for slider in chosen_sliders(page, sliders):
        drag_from_grab(page, slider, moves)
        page.wait_for_timeout(think)
    paints = page.evaluate("window.__latentPaints")
    page.close()
    return paints


def chosen_sliders(page, n: int) -> list:
    """The page's `n` most informative sliders; on /compare by one image, where each model has
    its own (.explorer-panel), taken from the models in turn."""
    panels = page.locator(".explorer-panel")
    if not panels.count():
        handles = page.locator(SLIDERS)
        return [handles.nth(k) for k in range(min(n, handles.count()))]
    own = [panels.nth(i).locator(SLIDERS) for i in range(panels.count())]
    order = [(k, i) for k in range(n) for i in range(len(own)) if k < own[i].count()]
    return [own[i].nth(k) for k, i in order[:n]]


def sweeps_loaded(browser, url: str) -> float:
    """Seconds from navigation until every slider's strip, for every picture, is in the cache."""
    page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    t0 = time.perf_counter()
    page.goto(url)
    sliders = page.locator(SLIDERS).count()
    # one set of sliders drives every picture, or (by one image) each model has its own
    n = (
        sliders
        if page.locator(".explorer-panel").count()
        else sliders * page.locator("canvas.decoded").count()
    )
    page.wait_for_function(f"window.__latentSweeps.length >= {n}", timeout=60_000, polling=10)
    seconds = time.perf_counter() - t0
    page.close()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--moves", type=int, default=20)
    ap.add_argument("--sliders", type=int, default=5)
    ap.add_argument("--think", type=int, default=300, help="ms between load/drags")
    ap.add_argument("--rounds", type=int, default=3, help="fresh page loads per page")
    ap.add_argument("--page", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--plugin", action="append", default=[], metavar="MODULE:FACTORY")
    ap.add_argument("--checkpoints", type=Path, default=None, help="serve this folder instead")
    a = ap.parse_args()
    pages = [tuple(p.split("=", 1)) for p in a.page] or list(PAGES)
    folder = {"checkpoints_dir": a.checkpoints} if a.checkpoints else {}
    with live_server(Settings(plugins=tuple(a.plugin), **folder)) as url, sync_playwright() as p:
        browser = launch_chromium(p)
        for name, path in pages:
            loaded = statistics.median(sweeps_loaded(browser, url + path) for _ in range(3))
            print(f"{name:20s} every slider's sweep in the cache {loaded:.2f} s after navigation")
            paints = []
            for _ in range(a.rounds):
                paints += run_page(browser, url + path, a.moves, a.sliders, a.think)
            for kind, times in (
                ("all", [p["ms"] for p in paints]),
                ("fetched", [p["ms"] for p in paints if not p["cached"]]),
            ):
                if not times:
                    print(f"{name:20s} {kind:8s} frames    0")
                    continue
                print(
                    f"{name:20s} {kind:8s} frames {len(times):4d}  input→paint "
                    f"p50 {statistics.median(times):6.1f} ms  p95 {percentile(times, 95):6.1f} ms"
                    f"  max {max(times):6.1f} ms"
                )
        browser.close()


if __name__ == "__main__":
    main()
