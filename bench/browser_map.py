"""The latent map's speed in Chromium, on a live server with the shipped checkpoints: how long the
page takes to draw n points (20,000 by default: the API's limit) and to answer a hover.

Draw: the page's own timing of each redraw (window.__mapDraws: points projected and written into
the canvas's pixels), the first one (which also allocates the canvas's pixels) and the median of
`--redraws` more, from the reset-view button and from changes of the colour. Hover: the pointer is
moved onto `--hovers` points in turn, ~60 moves per second, and the page records the time from
the pointer event to the tooltip filled and placed (window.__mapHovers `ms`) and to the start of
the next frame (`frameMs`), and the handler's own share (`handlerMs`): once with the tooltip's
two images fetched from the server (which decodes them on the same cores), once with every PNG
answered at once by Playwright; also how long the hover index takes to build (once per view,
when the page is idle after a draw).

    python bench/browser_map.py [--model dsprites-beta-vae] [--n 20000] [--redraws 20]
        [--hovers 200] [--scale 1]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.settings import Settings  # noqa: E402
from tests.browser_server import launch_chromium, live_server  # noqa: E402


def tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def hover_pass(page, box: dict, xy: np.ndarray, chosen: np.ndarray, what: str) -> None:
    """The pointer onto each chosen point in turn at ~60 moves a second; prints the latencies."""
    page.evaluate("window.__mapHovers.length = 0")
    for i in chosen:
        page.mouse.move(box["x"] + xy[i, 0], box["y"] + xy[i, 1])
        page.wait_for_timeout(16)
    page.wait_for_timeout(100)  # the last frame
    hovers = page.evaluate("window.__mapHovers")
    found = [h for h in hovers if h["index"] >= 0]
    print(f"hover, {what}: {len(found)} of {len(hovers)} moves landed on a point")
    for key, name in (
        ("handlerMs", "in the handler"),
        ("ms", "tooltip placed"),
        ("frameMs", "next frame"),
    ):
        times = [h[key] for h in found if h[key] is not None]
        print(
            f"  event → {name:14s} p50 {statistics.median(times):5.2f} ms  "
            f"p95 {percentile(times, 95):5.2f} ms  max {max(times):5.2f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="dsprites-beta-vae")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--redraws", type=int, default=20)
    ap.add_argument("--hovers", type=int, default=200)
    ap.add_argument("--scale", type=float, default=1.0, help="device pixel ratio")
    a = ap.parse_args()
    with live_server(Settings()) as url, sync_playwright() as p:
        browser = launch_chromium(p)
        t0 = time.perf_counter()
        data = json.loads(
            browser.new_page()
            .request.get(f"{url}/api/models/{a.model}/map?n={a.n}&method=pca", timeout=600_000)
            .body()
        )
        print(f"map JSON of {a.n:,} points ready in {time.perf_counter() - t0:.1f} s (cold server)")
        page = browser.new_page(
            viewport={"width": 1280, "height": 900}, device_scale_factor=a.scale, bypass_csp=True
        )
        t0 = time.perf_counter()
        page.goto(f"{url}/map?model={a.model}&n={a.n}")
        page.wait_for_selector("#map[data-state=done]", timeout=600_000)
        seconds = time.perf_counter() - t0
        print(f"page with the map drawn {seconds:.2f} s after navigation (JSON cached)")
        size = page.eval_on_selector("#map-canvas", "c => [c.width, c.height]")
        colours = page.eval_on_selector_all("#map-colour option", "os => os.map(o => o.value)")
        for k in range(a.redraws):
            if k % 2:
                page.select_option("#map-colour", colours[k % len(colours)])
            else:
                page.click("#map-reset")
        draws = page.evaluate("window.__mapDraws")
        first, rest = draws[0]["ms"], [d["ms"] for d in draws[1:]]
        print(
            f"draw {draws[0]['n']:,} points on a {size[0]}×{size[1]} canvas: first {first:.1f} ms, "
            f"then median {statistics.median(rest):.1f} ms, max {max(rest):.1f} ms "
            f"over {len(rest)} redraws"
        )

        box = page.locator("#map-canvas").bounding_box()
        v = json.loads(page.get_attribute("#map", "data-view"))
        pts = np.asarray(data["points"])
        xy = np.c_[pts[:, 0] * v["k"] + v["tx"], v["ty"] - pts[:, 1] * v["k"]]
        rng = np.random.default_rng(0)
        chosen = rng.choice(len(xy), size=a.hovers, replace=False)
        hover_pass(page, box, xy, chosen, "tooltip images from the server")
        # the same moves with every PNG answered by Playwright at once: what the page itself
        # costs, without the server decoding two images per hover on the same cores
        page.route("**/*.png*", lambda r: r.fulfill(body=tiny_png(), content_type="image/png"))
        hover_pass(page, box, xy, chosen[::-1], "tooltip images stubbed")
        grids = page.evaluate("window.__mapGrids")
        builds = [g["ms"] for g in grids]
        print(
            f"hover index of {a.n:,} points (built when idle after a draw): first "
            f"{builds[0]:.2f} ms, then median {statistics.median(builds[1:] or builds):.2f} ms "
            f"over {len(builds)} builds"
        )
        browser.close()


if __name__ == "__main__":
    main()
