"""The direction slider's input → paint in Chromium, from the first grab, on the explore page,
the map page and /compare, beside a latent slider's on the same pages.

Each round loads the page fresh twice. Once for a latent slider: the most informative one is
grabbed as soon as the first picture is up (after `--think` ms) and dragged `--moves` times at
~60 moves per second. Once for the direction slider (the model's first direction; on /compare
the direction section's slider, which moves each model along its own direction): grabbed as soon
as its direction is loaded, so its strip (path.png) may still be on its way, and dragged the
same way. The page records the time from each input event to the frame after the paint
(window.__latentPaints for the explorer's pictures, window.__directionPaints for /compare's
direction pictures). Prints p50/p95/max over every frame, and how many frames needed a request.

    python bench/browser_direction.py [--moves 20] [--rounds 3] [--think 0]
        [--page explore --page map --page compare]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_paint import drag_from_grab, percentile  # noqa: E402

from app.settings import Settings  # noqa: E402
from tests.browser_server import launch_chromium, live_server  # noqa: E402

MODEL = "dsprites-beta-vae"
PAGES = (
    ("explore", f"/?model={MODEL}"),
    ("map", f"/map?model={MODEL}"),
    ("compare", "/compare?a=dsprites-vae&b=dsprites-beta-vae"),
)


def fresh(browser, url: str) -> Page:
    # bypass_csp: Playwright's polling waits evaluate strings; our CSP refuses eval
    page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page.goto(url)
    page.wait_for_function("window.__latentPaints && window.__latentPaints.length > 0")
    return page


def latent_drag(browser, url: str, moves: int, think: int) -> list[dict]:
    page = fresh(browser, url)
    page.evaluate("window.__latentPaints.length = 0")
    page.wait_for_timeout(think)
    drag_from_grab(page, page.locator(".latent input[type=range]").first, moves)
    paints = page.evaluate("window.__latentPaints")
    page.close()
    return paints


def direction_drag(browser, url: str, moves: int, think: int) -> list[dict]:
    page = fresh(browser, url)
    if "/compare" in url:
        page.locator("#direction-compare").scroll_into_view_if_needed()
        page.wait_for_selector(".direction-compare-track[data-ready=true]", timeout=300_000)
        track, paints = page.locator("#direction-compare-t"), "window.__directionPaints"
    else:
        page.wait_for_selector("#direction-slider[data-ready=true]", timeout=300_000)
        track, paints = page.locator("#direction-slider-t"), "window.__latentPaints"
    page.evaluate(f"{paints}.length = 0")
    page.wait_for_timeout(think)
    drag_from_grab(page, track, moves)
    out = page.evaluate(paints)
    page.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--moves", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="fresh page loads per page and slider")
    ap.add_argument("--think", type=int, default=0, help="ms between ready and the grab")
    ap.add_argument("--page", action="append", choices=[n for n, _ in PAGES], default=[])
    a = ap.parse_args()
    heads = ("frames", "p50 ms", "p95 ms", "max ms")
    print(f"{'page':10s} {'slider':10s} " + " ".join(f"{h:>7s}" for h in heads) + "  fetched")
    with live_server(Settings()) as url, sync_playwright() as p:
        browser = launch_chromium(p)
        for name, path in PAGES:
            if a.page and name not in a.page:
                continue
            for slider, drag in (("latent", latent_drag), ("direction", direction_drag)):
                paints = []
                for _ in range(a.rounds):
                    paints += drag(browser, url + path, a.moves, a.think)
                times = [q["ms"] for q in paints]
                fetched = sum(not q["cached"] for q in paints)
                if not times:
                    print(f"{name:10s} {slider:10s} {0:7d}")
                    continue
                print(
                    f"{name:10s} {slider:10s} {len(times):7d} {statistics.median(times):7.1f} "
                    f"{percentile(times, 95):7.1f} {max(times):7.1f}  {fetched:7d}"
                )
        browser.close()


if __name__ == "__main__":
    main()
