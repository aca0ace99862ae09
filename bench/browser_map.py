"""The latent map's speed in Chromium: a server process on a persistent cache folder answers the
binary map (GET /api/models/{name}/map.bin), and the page draws it. For each case:

- **bytes**: the map on the wire (gzip, as the browser asks for it) and decoded;
- **first paint**: from the bytes arrived in the page to every point drawn and on screen (the
  page's window.__mapLoad.firstPaintMs: decoding, the hover index, the colours, the GPU's draw);
- **pan and zoom**: the pointer drags the map (`--moves` moves, ~60 a second), then the wheel
  zooms in and out; of the frames drawn meanwhile (window.__mapFrames), the gap from the last
  where the page drew one after the other (a frame after a pause with nothing to draw has
  none), and the time from each pan or zoom event to the first frame drawn after it,
  p50/p95/max; then how long the points took to be drawn again for the view it ended on;
- **pointer → tooltip**: the pointer moved onto `--hovers` points in turn, ~60 moves a second,
  the time from the pointer event to the tooltip filled and placed (window.__mapHovers `ms`) and
  to the next frame (`frameMs`), with the tooltip's images answered at once by Playwright (the
  server would otherwise decode two images per hover on the same cores);
- **server RSS**: the server process's resident memory after the case, and its peak.

`--regl` draws the first case's points with npm's regl-scatterplot 1.16.0 as well (package.json's
devDependencies; `npm install` puts them in node_modules/), in the same Chromium on a canvas of
the same size, coloured by the same column: its first draw, its frame gaps under the same drag
and wheel, and pointer → its `pointover` event.

The dSprites map of all 737,280 images needs the set's encoding, minutes of work the first time:
the server keeps it in `--cache` (`.cache/bench-map`, git-ignored), so a later run finds it.
While it is computed the map answers 202 with its progress, which is printed.

    python bench/browser_map.py [--cases dsprites-beta-vae:dsprites:737280,...]
        [--cache .cache/bench-map] [--moves 120] [--hovers 200] [--regl]
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.browser_server import launch_chromium  # noqa: E402

CASES = (
    "dsprites-beta-vae:dsprites:737280",
    "dsprites-beta-vae:dsprites:20000",
    "fashion-vae:fashion-mnist:10000",
)


def tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    return buf.getvalue()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def spread(values: list[float]) -> str:
    if not values:
        return "no frames"
    return (
        f"p50 {statistics.median(values):6.1f} ms  p95 {percentile(values, 95):6.1f} ms  "
        f"max {max(values):6.1f} ms  ({len(values)} frames)"
    )


def serve(cache: Path, port: int) -> None:
    """The server, in this (child) process."""
    import uvicorn  # noqa: PLC0415

    from app.main import create_app  # noqa: PLC0415
    from app.settings import Settings  # noqa: PLC0415

    uvicorn.run(create_app(Settings(cache_dir=cache)), host="127.0.0.1", port=port,
                log_level="warning")  # fmt: skip


def rss_mib(pid: int) -> tuple[float, float]:
    """The process's resident memory now and at its peak, MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    kib = lambda k: int(fields[k].split()[0]) / 1024  # noqa: E731
    return kib("VmRSS"), kib("VmHWM")


def wait_for_map(url: str, model: str, data: str, n: int, wait: float) -> httpx.Response:
    """The binary map once the server has it (printing the 202's progress meanwhile)."""
    params = {"n": n, "method": "pca"} | ({"data": data} if data else {})
    start = time.perf_counter()
    said = 0.0
    while True:
        resp = httpx.get(f"{url}/api/models/{model}/map.bin", params=params, timeout=600,
                         headers={"Accept-Encoding": "gzip"})  # fmt: skip
        if resp.status_code != 202:
            resp.raise_for_status()
            return resp
        waited = time.perf_counter() - start
        if waited > wait:
            raise SystemExit(f"the map was not ready in {wait:.0f} s: {resp.json()['detail']}")
        if waited - said >= 30 or not said:
            print(f"  {waited:5.0f} s: {resp.json().get('detail')}", flush=True)
            said = waited or 1e-9
        time.sleep(float(resp.headers.get("Retry-After", 5)))


def frames_between(page: Page, t0: float, t1: float) -> list[dict]:
    return page.evaluate(
        "([a, b]) => window.__mapFrames.filter(f => f.t >= a && f.t <= b)", [t0, t1]
    )


def frame_spread(frames: list[dict]) -> str:
    """Gaps between frames the page drew one after another (not across a pause with nothing to
    draw), from each pan or zoom event to the first frame drawn after it, and each frame's own
    work on the page's thread (the GL calls issued; SwiftShader rasterises in the GPU process)."""
    gaps = [f["gap"] for f in frames if f["gap"] is not None]
    inputs = [f["inputMs"] for f in frames if f.get("inputMs") is not None]
    work = [f["ms"] for f in frames if f.get("ms") is not None]
    return (
        f"frame gap {spread(gaps)}\n{'':27s}event → frame drawn {spread(inputs)}\n"
        f"{'':27s}a frame's work on the page's thread {spread(work)}"
    )


def settle(page: Page) -> float:
    """ms from now until the canvas shows its view drawn exactly."""
    t0 = page.evaluate("performance.now()")
    page.wait_for_function(
        "() => { const m = document.getElementById('map');"
        " return m.dataset.shown === m.dataset.view; }",
        timeout=120_000,
    )
    done = page.evaluate("window.__mapFrames.filter(f => f.complete !== undefined).at(-1)")
    return max(0.0, done["t"] - t0) if done else 0.0


def pan_and_zoom(page: Page, moves: int) -> None:
    box = page.locator("#map-canvas").bounding_box()
    x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
    now = lambda: page.evaluate("performance.now()")  # noqa: E731
    page.mouse.move(x, y)
    page.mouse.down()
    t0 = now()
    for k in range(moves):
        page.mouse.move(x + 2 * k, y + k)
        page.wait_for_timeout(16)
    t1 = now()
    page.mouse.up()
    print(f"  pan ({moves} moves):       {frame_spread(frames_between(page, t0, t1))}")
    print(f"  then drawn again for the view it ended on in {settle(page):.0f} ms")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    t0 = now()
    for k in range(moves // 2):
        page.mouse.wheel(0, -30 if k < moves // 4 else 30)
        page.wait_for_timeout(16)
    t1 = now()
    print(f"  zoom ({moves // 2} wheel events): {frame_spread(frames_between(page, t0, t1))}")
    print(f"  then drawn again for the view it ended on in {settle(page):.0f} ms")


def hover(page: Page, count: int) -> None:
    page.click("#map-reset")
    settle(page)
    box = page.locator("#map-canvas").bounding_box()
    v = json.loads(page.get_attribute("#map", "data-view"))
    p = page.evaluate(
        "() => { const p = window.latentMapView.points();"
        " return [Array.from(p.x.subarray(0, 50000)), Array.from(p.y.subarray(0, 50000))]; }"
    )
    xy = np.c_[np.asarray(p[0]) * v["k"] + v["tx"], v["ty"] - np.asarray(p[1]) * v["k"]]
    chosen = np.random.default_rng(0).choice(len(xy), size=min(count, len(xy)), replace=False)
    page.evaluate("window.__mapHovers.length = 0")
    for i in chosen:
        page.mouse.move(box["x"] + xy[i, 0], box["y"] + xy[i, 1])
        page.wait_for_timeout(16)
    page.wait_for_timeout(100)  # the last frame
    found = [h for h in page.evaluate("window.__mapHovers") if h["index"] >= 0]
    names = (("handlerMs", "in the handler"), ("ms", "tooltip placed"), ("frameMs", "next frame"))
    for key, name in names:
        times = [h[key] for h in found if h[key] is not None]
        print(
            f"  pointer → {name:14s} p50 {statistics.median(times):5.2f} ms  "
            f"p95 {percentile(times, 95):5.2f} ms  max {max(times):5.2f} ms  ({len(times)} moves)"
        )


def run_case(browser, url: str, server: subprocess.Popen, case: str, a) -> None:
    model, data, n_text = case.split(":")
    n = int(n_text)
    print(f"\n{model}, data={data or '(its own)'}, n={n:,}, PCA", flush=True)
    wait_for_map(url, model, data, n, a.wait)
    t0 = time.perf_counter()
    resp = wait_for_map(url, model, data, n, a.wait)
    print(f"  map.bin served in {1000 * (time.perf_counter() - t0):.0f} ms (kept): "
          f"{resp.num_bytes_downloaded / 1e6:.2f} MB on the wire (gzip), "
          f"{len(resp.content) / 1e6:.2f} MB decoded")  # fmt: skip
    page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page.route("**/*.png*", lambda r: r.fulfill(body=tiny_png(), content_type="image/png"))
    query = f"model={model}&n={n}&colour={a.colour}" + (f"&data={data}" if data else "")
    page.goto(f"{url}/map?{query}")
    page.wait_for_selector("#map[data-state=done]", timeout=600_000)
    page.evaluate("window.latentMapView.ready")
    load = page.evaluate("window.__mapLoad")
    gpu = page.get_attribute("#map", "data-gpu")
    first = page.evaluate("window.__mapDraws[0]")
    grid = page.evaluate("window.__mapGrids[0]")
    size = page.eval_on_selector("#map-canvas", "c => [c.width, c.height]")
    kind = page.get_attribute("#map", "data-renderer")
    print(f"  renderer: {kind}, {gpu}; canvas {size[0]}×{size[1]}")
    print(f"  bytes in the page after {load['fetchMs']:.0f} ms ({load['format']}, "
          f"{load['bytes'] / 1e6:.2f} MB); first paint {load['firstPaintMs']:.0f} ms after them "
          f"(decode {load['decodeMs']:.1f} ms, hover index {grid['ms']:.1f} ms, every point "
          f"drawn {first['ms']:.0f} ms)")  # fmt: skip
    pan_and_zoom(page, a.moves)
    hover(page, a.hovers)
    now, peak = rss_mib(server.pid)
    print(f"  server RSS {now:.0f} MiB (peak {peak:.0f} MiB)", flush=True)
    page.close()


REGL_PAGE = """<!doctype html><html><body style="margin:0">
<canvas id="plot" style="width:{side}px;height:{side}px;display:block"></canvas>
<script src="regl.min.js"></script>
<script type="module">
import createPubSub from "./pub-sub-es.js";
window.createPubSub = createPubSub;  // the UMD build reads its dependencies as globals
const s = document.createElement("script");
s.src = "regl-scatterplot.min.js";
s.onload = () => (window.__loaded = true);
document.body.append(s);
</script></body></html>"""

REGL_DRAW = """async ([x, y, z, colours, side]) => {
  const lib = window.createScatterplot;
  const create = lib.default || lib.createScatterplot || lib;
  const canvas = document.getElementById("plot");
  const plot = create({canvas, width: side, height: side, pointSize: 3.2, syncEvents: true,
    pointColor: colours, colorBy: "valueA", backgroundColor: "#ffffff", lassoOnLongPress: false});
  window.__plot = plot;
  window.__hovers = [];
  let moved = 0;
  canvas.addEventListener("pointermove", (ev) => (moved = ev.timeStamp), {capture: true});
  plot.subscribe("pointover", (i) => window.__hovers.push({i, ms: performance.now() - moved}));
  window.__frames = [];
  let last = null;
  const tick = (t) => { if (last !== null) window.__frames.push({t, gap: t - last}); last = t;
    requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  const points = {x: new Float32Array(x), y: new Float32Array(y), z: new Int32Array(z)};
  const t0 = performance.now();
  await plot.draw(points);
  // the GPU done with it: a pixel read back waits for it
  const copy = document.createElement("canvas");
  copy.width = copy.height = 1;
  copy.getContext("2d").drawImage(canvas, 0, 0, 1, 1);
  copy.getContext("2d").getImageData(0, 0, 1, 1);
  return performance.now() - t0;
}"""


def regl_case(browser, url: str, case: str, a) -> None:
    """The same points drawn by regl-scatterplot, measured as the page is."""
    from app.web import map_binary  # noqa: PLC0415

    model, data, n_text = case.split(":")
    params = {"n": n_text, "method": "pca"} | ({"data": data} if data else {})
    body = httpx.get(f"{url}/api/models/{model}/map.bin", params=params, timeout=600).content
    header, arrays = map_binary.decode(body)
    xy = arrays["points"].reshape(-1, 2).astype(np.float64)
    # regl-scatterplot wants [-1, 1]: the extent scaled by its longer side, centred
    mid = (xy.min(axis=0) + xy.max(axis=0)) / 2
    half = (xy.max(axis=0) - xy.min(axis=0)).max() / 2 * 1.05
    norm = (xy - mid) / half
    named = [c for c in header["colour_by"] if c["name"] == a.colour]
    column = (named or header["colour_by"])[0]
    codes = arrays[column["array"]].astype(np.int64)
    palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
               "#ff9da7", "#9c755f", "#bab0ac"][: column["size"]]  # fmt: skip
    modules = ROOT / "node_modules"
    files = {
        "regl.min.js": modules / "regl/dist/regl.min.js",
        "pub-sub-es.js": modules / "pub-sub-es/dist/index.js",
        "regl-scatterplot.min.js": modules / "regl-scatterplot/dist/regl-scatterplot.min.js",
    }
    side = 592  # the map page's canvas at 1280×900
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    def answer(route) -> None:
        name = route.request.url.rsplit("/", 1)[-1]
        if name in files:
            route.fulfill(body=files[name].read_bytes(), content_type="text/javascript")
        else:
            route.fulfill(body=REGL_PAGE.replace("{side}", str(side)), content_type="text/html")

    page.route("http://regl.bench/**", answer)
    page.goto("http://regl.bench/index.html")
    page.wait_for_function("window.__loaded === true")
    print(f"\nregl-scatterplot 1.16.0, {len(xy):,} points, {side}×{side} canvas", flush=True)
    first = page.evaluate(REGL_DRAW, [norm[:, 0].tolist(), norm[:, 1].tolist(), codes.tolist(),
                                      palette, side])  # fmt: skip
    print(f"  first draw (points given → drawn): {first:.0f} ms")
    box = page.locator("#plot").bounding_box()
    x, y = box["x"] + side * 0.3, box["y"] + side * 0.3
    now = lambda: page.evaluate("performance.now()")  # noqa: E731
    page.mouse.move(x, y)
    page.mouse.down()
    t0 = now()
    for k in range(a.moves):
        page.mouse.move(x + 2 * k, y + k)
        page.wait_for_timeout(16)
    t1 = now()
    page.mouse.up()
    gaps = page.evaluate("([a, b]) => window.__frames.filter(f => f.t >= a && f.t <= b)"
                         ".map(f => f.gap)", [t0, t1])  # fmt: skip
    print(f"  pan ({a.moves} moves):      {spread(gaps)}")
    page.mouse.move(box["x"] + side / 2, box["y"] + side / 2)
    t0 = now()
    for k in range(a.moves // 2):
        page.mouse.wheel(0, -30 if k < a.moves // 4 else 30)
        page.wait_for_timeout(16)
    t1 = now()
    gaps = page.evaluate("([a, b]) => window.__frames.filter(f => f.t >= a && f.t <= b)"
                         ".map(f => f.gap)", [t0, t1])  # fmt: skip
    print(f"  zoom ({a.moves // 2} wheel events): {spread(gaps)}")
    page.evaluate("window.__hovers.length = 0")
    rng = np.random.default_rng(0)
    for _ in range(a.hovers):
        page.mouse.move(box["x"] + rng.uniform(0.2, 0.8) * side,
                        box["y"] + rng.uniform(0.2, 0.8) * side)  # fmt: skip
        page.wait_for_timeout(16)
    times = [h["ms"] for h in page.evaluate("window.__hovers")]
    if times:
        print(f"  pointer → pointover p50 {statistics.median(times):5.2f} ms  "
              f"p95 {percentile(times, 95):5.2f} ms  max {max(times):5.2f} ms  "
              f"({len(times)} of {a.hovers} moves)")  # fmt: skip
    page.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help="model:data:n, comma-separated")
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "bench-map")
    ap.add_argument("--colour", default="shape")
    ap.add_argument("--moves", type=int, default=120)
    ap.add_argument("--hovers", type=int, default=200)
    ap.add_argument("--wait", type=float, default=3600, help="s to wait for an encoding")
    ap.add_argument("--regl", action="store_true", help="also regl-scatterplot, first case")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the child: the server
    a = ap.parse_args()
    if a.serve:
        serve(a.cache, a.serve)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    child = [sys.executable, __file__, "--serve", str(port), "--cache", str(a.cache)]
    server = subprocess.Popen(child)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(f"{url}/api/models", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = launch_chromium(p)
            for case in a.cases.split(","):
                run_case(browser, url, server, case, a)
            if a.regl:
                regl_case(browser, url, a.cases.split(",")[0], a)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
