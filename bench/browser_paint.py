"""Slider input → new picture painted, in Chromium, on the explore page (one model) and the
compare page (two models). The page records, for every painted frame, the time from the input
event to the frame after the paint (window.__latentPaints); this drags the top slider back and
forth with the mouse, as a person would, and prints p50/p95 of those times.

    python bench/browser_paint.py [--moves 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.settings import Settings  # noqa: E402
from tests.browser_server import launch_chromium, live_server  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def drag(page, moves: int) -> list[float]:
    page.wait_for_function("window.__latentPaints && window.__latentPaints.length > 0")
    page.evaluate("window.__latentPaints.length = 0")
    slider = page.locator(".latent input[type=range]").first
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    left, right = box["x"] + 4, box["x"] + box["width"] - 4
    page.mouse.move((left + right) / 2, y)
    page.mouse.down()
    for i in range(moves):
        # sweep across the track and back at ~60 moves per second, like a hand
        t = (i % 100) / 100
        x = left + (right - left) * (2 * t if t < 0.5 else 2 - 2 * t)
        page.mouse.move(x, y)
        page.wait_for_timeout(16)
    page.mouse.up()
    page.wait_for_timeout(300)
    return page.evaluate("window.__latentPaints")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--moves", type=int, default=300)
    a = ap.parse_args()
    with live_server(Settings()) as url, sync_playwright() as p:
        browser = launch_chromium(p)
        for name, path in (
            ("explore (1 model)", "/?model=dsprites-beta-vae"),
            ("compare (2 models)", "/compare?a=dsprites-vae&b=dsprites-beta-vae"),
        ):
            # bypass_csp: Playwright's polling waits evaluate strings; our CSP refuses eval
            page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
            page.goto(url + path)
            paints = drag(page, a.moves)
            for kind, times in (
                ("all", [p["ms"] for p in paints]),
                ("fetched", [p["ms"] for p in paints if not p["cached"]]),
            ):
                print(
                    f"{name:20s} {kind:8s} frames {len(times):4d}  input→paint "
                    f"p50 {statistics.median(times):6.1f} ms  p95 {percentile(times, 95):6.1f} ms"
                )
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
