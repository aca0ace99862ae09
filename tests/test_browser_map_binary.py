"""A data set's map past the JSON form's 20,000 points, in Chromium: the page reads the binary map
(no μ in it), offers "all N", offers no latent to colour by, and a click on a point asks the
server to encode that image and loads its μ into the sliders (compared with GET .../encode)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from PIL import Image

from app.settings import Settings
from tests.browser_server import live_server, wait_painted, wait_repainted
from tests.test_browser_map import new_page, slider_z, view

MODEL = "fashion-vae"  # a 28×28 MLP: 20,000 images encode in a few seconds on 2 cores
N = 20_100  # past the JSON form's limit, so the binary map carries no μ
KINDS = ("dots", "stripes", "blocks")


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> dict:
    """A folder data set of N small grey images in three class sub-folders, each image a few
    random blobs (so the encoder spreads them out), served as data set `many`."""
    root = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    for kind in KINDS:
        (root / kind).mkdir()
    for i in range(N):
        pixels = np.zeros((28, 28), dtype=np.uint8)
        for x, y, w, h, grey in rng.integers((0, 0, 3, 3, 60), (24, 24, 14, 14, 256), (3, 5)):
            pixels[y : y + h, x : x + w] = grey
        Image.fromarray(pixels, mode="L").save(root / KINDS[i % 3] / f"{i:05d}.png")
    with live_server(Settings(data={"many": root})) as url:
        yield {"url": url}


def test_a_map_past_20000_points_is_read_as_bytes_and_a_click_encodes_the_point(browser, many):
    server = many["url"]
    page = new_page(browser, server)
    page.goto(f"/map?model={MODEL}&data=many&n={N}")
    page.wait_for_selector("#map[data-state=done]", timeout=240_000)
    page.evaluate("window.latentMapView.ready")
    assert page.evaluate("window.__mapLoad.format") == "binary"
    assert page.inner_text("#map-n option:checked") == f"all {N:,}"
    assert page.get_attribute("#map-canvas", "data-drawn") == str(N)
    # no μ in the map: nothing to colour by but the set's class column
    assert page.eval_on_selector_all("#map-colour option", "os => os.map(o => o.value)") == [
        "class"
    ]
    resp = httpx.get(
        f"{server}/api/models/{MODEL}/map.bin", params={"data": "many", "n": N}, timeout=60
    )
    assert resp.status_code == 200 and b'"latents"' not in resp.content[:4096]

    got = page.evaluate(
        "() => { const p = window.latentMapView.points();"
        " return [Array.from(p.x), Array.from(p.y), Array.from(p.indices)]; }"
    )
    points = np.c_[got[0], got[1]]
    v = view(page)
    xy = np.c_[points[:, 0] * v["k"] + v["tx"], v["ty"] - points[:, 1] * v["k"]]
    box = page.locator("#map-canvas").bounding_box()
    # the pointer on a whole pixel near a point; under it, the nearest point (the later row of
    # points in one place, as drawn over the earlier), by the page's arithmetic done here
    px = round(box["x"] + xy[N // 2, 0])
    py = round(box["y"] + xy[N // 2, 1])
    at = ((px - box["x"] - v["tx"]) / v["k"], (v["ty"] - (py - box["y"])) / v["k"])
    d = (points[:, 0] - at[0]) ** 2 + (points[:, 1] - at[1]) ** 2
    i = int(np.flatnonzero(d == d.min())[-1])
    assert d[i] <= (6 / v["k"]) ** 2
    image = got[2][i]
    page.mouse.move(px, py)
    page.wait_for_selector(f'#map-tip[data-index="{i}"]')
    # the reconstruction comes with the encoding the server makes once the pointer rests
    page.wait_for_function(
        "() => (document.querySelector('.map-tip-recon').getAttribute('src') || '')"
        ".startsWith('data:image/png')"
    )
    before = wait_painted(page, MODEL)
    page.mouse.click(px, py)
    wait_repainted(page, MODEL, before)
    mu = httpx.get(
        f"{server}/api/models/{MODEL}/encode", params={"index": image, "data": "many"}, timeout=60
    ).json()["mu"]
    ranges = page.eval_on_selector_all(
        "input[type=range][data-dim]", "s => s.map(x => [x.dataset.dim, x.min, x.max])"
    )
    want = list(mu)
    for dim, lo, hi in ranges:
        want[int(dim)] = min(float(hi), max(float(lo), want[int(dim)]))
    assert slider_z(page) == pytest.approx(want, abs=0.0051)
    assert any(abs(m) > 0.3 for m in want)
    page.context.close()
    assert page.errors == []  # type: ignore[attr-defined]
