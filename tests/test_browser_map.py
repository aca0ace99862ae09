"""The latent map (/map) and the direction slider in a real browser: Debian's Chromium driven by
Playwright against a live server on the shipped checkpoints. What the page draws and does is
checked against the map API's JSON, fetched by the test, and arithmetic done here."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html import unescape
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page

from app.studies.latent_map import METHODS as MAP_METHODS
from tests.browser_server import grab_and_drag, wait_painted, wait_repainted

MODEL = "dsprites-beta-vae"
N = 1000
SHAPES = {0: (0x4E, 0x79, 0xA7), 1: (0xF2, 0x8E, 0x2B), 2: (0xE1, 0x57, 0x59)}  # Tableau 10
VIRIDIS_ENDS = ((0x44, 0x01, 0x54), (0xFD, 0xE7, 0x25))  # viridis at 0 and at 1 (matplotlib)


@pytest.fixture(scope="module")
def server(shipped_server):
    return shipped_server


@pytest.fixture(scope="module")
def pca(server) -> dict:
    """The map the page draws, asked of the API by the test."""
    resp = httpx.get(f"{server}/api/models/{MODEL}/map", params={"n": N}, timeout=300)
    assert resp.status_code == 200, resp.text
    return resp.json()


def new_page(browser, server, scale: float = 1, csp: bool = False) -> Page:
    # Playwright's wait_for_function evaluates strings in the page, which our CSP (no eval)
    # refuses: tests that use it bypass the CSP; the first test runs with it on
    context = browser.new_context(
        base_url=server,
        viewport={"width": 1280, "height": 900},
        device_scale_factor=scale,
        bypass_csp=not csp,
        accept_downloads=True,
    )
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.console = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    page.on("console", lambda m: page.console.append(m.text))  # type: ignore[attr-defined]
    return page


@pytest.fixture
def page(browser, server):
    pg = new_page(browser, server)
    yield pg
    pg.context.close()
    assert pg.errors == []  # type: ignore[attr-defined]


def open_map(page: Page, query: str = "") -> None:
    page.goto(f"/map?model={MODEL}&n={N}{query}")
    page.wait_for_selector("#map[data-state=done]", timeout=120_000)
    page.evaluate("window.latentMapView.ready")  # the points drawn


def draws(page: Page) -> int:
    """How many times the page has drawn every point for a view."""
    return int(page.get_attribute("#map-canvas", "data-draws"))


def drawn_again(page: Page, before: int) -> None:
    """Once the page has drawn its points again since `before` draws (no eval: CSP-safe)."""
    page.wait_for_selector(f'#map-canvas:not([data-draws="{before}"])')


def settled(page: Page) -> None:
    """Once the canvas shows the view the page holds, drawn for it (not the last one moved)."""
    page.wait_for_function(
        "() => { const m = document.getElementById('map');"
        " return m.dataset.shown === m.dataset.view; }"
    )


def view(page: Page) -> dict:
    return json.loads(page.get_attribute("#map", "data-view"))


def on_screen(points: list, v: dict) -> np.ndarray:
    """Each point's position on the canvas, CSS px, by the view the page reports."""
    p = np.asarray(points)
    return np.c_[p[:, 0] * v["k"] + v["tx"], v["ty"] - p[:, 1] * v["k"]]


def isolated(xy: np.ndarray, side: float, gap: float = 7.0, margin: float = 12.0) -> np.ndarray:
    """Indices of points with no other point within `gap` px, away from the canvas edges."""
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    inside = ((xy > margin) & (xy < side - margin)).all(axis=1)
    return np.flatnonzero(inside & (d.min(axis=1) > gap))


def canvas_rgb(page: Page, points: list) -> np.ndarray:
    """The map canvas's pixels at CSS positions, read at the canvas's own resolution (copied
    into a 2-D canvas: the map's own is WebGL's)."""
    return np.array(
        page.eval_on_selector(
            "#map-canvas",
            """(c, pts) => { const r = c.width / c.getBoundingClientRect().width;
                const copy = document.createElement('canvas');
                copy.width = c.width;
                copy.height = c.height;
                const g = copy.getContext('2d');
                g.drawImage(c, 0, 0);
                const at = (x, y) => g.getImageData(Math.round(x * r), Math.round(y * r), 1, 1);
                return pts.map(([x, y]) => Array.from(at(x, y).data.slice(0, 3))); }""",
            [[float(x), float(y)] for x, y in points],
        )
    )


def slider_z(page: Page) -> list[float]:
    """z as the sliders' outputs show it."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('input[type=range][data-dim]'))
              .sort((a, b) => a.dataset.dim - b.dataset.dim)
              .map(s => Number(document.getElementById(s.id + '-value').textContent))"""
    )


def test_the_map_draws_every_point_in_the_colours_of_the_chosen_factor(browser, server, pca):
    page = new_page(browser, server, scale=2, csp=True)  # a 2× screen, under the CSP
    open_map(page, "&colour=shape")
    side = page.eval_on_selector("#map-canvas", "c => c.getBoundingClientRect().width")
    assert page.eval_on_selector("#map-canvas", "c => c.width") == round(2 * side)
    assert page.get_attribute("#map-canvas", "data-drawn") == str(N)
    xy = on_screen(pca["points"], view(page))
    assert ((xy > 0) & (xy < side)).all()  # the reset view holds every point
    alone = isolated(xy, side)
    assert len(alone) > 30
    shape = np.asarray(next(c for c in pca["colour_by"] if c["name"] == "shape")["values"])
    got = canvas_rgb(page, xy[alone])
    want = np.array([SHAPES[s] for s in shape[alone]])
    assert np.array_equal(got, want), "a point is not its shape's colour"
    assert page.locator("#map-legend .map-legend-item").all_inner_texts() == [
        "square",
        "ellipse",
        "heart",
    ]
    # an ordered factor: viridis from its lowest class to its highest, brighter as it grows
    before = draws(page)
    page.select_option("#map-colour", "scale")
    page.wait_for_selector('#map[data-colour="scale"]')
    drawn_again(page, before)
    scale = np.asarray(next(c for c in pca["colour_by"] if c["name"] == "scale")["values"])
    got = canvas_rgb(page, xy[alone])
    assert not np.array_equal(got, want)
    for s, end in ((0, VIRIDIS_ENDS[0]), (5, VIRIDIS_ENDS[1])):
        assert (got[scale[alone] == s] == end).all(), f"scale {s} is not viridis's end"
    brightness = [got[scale[alone] == s].sum(axis=1).mean() for s in range(6)]
    assert brightness == sorted(brightness), brightness
    assert page.get_attribute("#map-legend", "data-kind") == "ramp"
    assert parse_qs(urlparse(page.url).query)["colour"] == ["scale"]
    page.context.close()
    assert not [m for m in page.console if "Content Security Policy" in m], page.console  # type: ignore[attr-defined]
    assert page.errors == []  # type: ignore[attr-defined]


def test_hovering_a_point_shows_its_image_and_a_click_loads_its_mu(page, pca):
    open_map(page)
    box = page.locator("#map-canvas").bounding_box()
    xy = on_screen(pca["points"], view(page))
    i = int(isolated(xy, box["width"])[0])
    page.mouse.move(box["x"] + xy[i, 0] + 2, box["y"] + xy[i, 1] - 1)
    page.wait_for_selector(f'#map-tip[data-index="{i}"]')
    assert page.is_visible("#map-tip")
    index = pca["indices"][i]
    assert page.get_attribute(".map-tip-image", "src") == f"/api/models/{MODEL}/dataset/{index}.png"
    recon = parse_qs(urlparse(page.get_attribute(".map-tip-recon", "src")).query)["z"][0]
    assert np.allclose([float(v) for v in recon.split(",")], pca["latents"][i], atol=0.0051)
    text = page.inner_text(".map-tip-text")
    assert f"{index:,}" in text
    for c in pca["colour_by"]:
        v = c["values"][i]
        assert f"{c['name']}: {c['names'][v] if c['names'] else v}" in text
    assert page.evaluate("window.__mapHovers.at(-1).index") == i
    # far from every point, nothing is under the pointer
    page.mouse.move(box["x"] + 3, box["y"] + 3)
    page.wait_for_selector("#map-tip", state="hidden")

    before = wait_painted(page, MODEL)
    page.mouse.click(box["x"] + xy[i, 0], box["y"] + xy[i, 1])
    wait_repainted(page, MODEL, before)
    los = page.eval_on_selector_all(
        "input[type=range][data-dim]", "s => s.map(x => [x.dataset.dim, x.min, x.max])"
    )
    want = list(pca["latents"][i])
    for dim, lo, hi in los:
        want[int(dim)] = min(float(hi), max(float(lo), want[int(dim)]))
    assert slider_z(page) == pytest.approx(want, abs=0.0051)
    assert any(abs(v) > 0.3 for v in want)


def test_dragging_a_slider_moves_the_marker_to_the_pca_projection_of_z(page, pca):
    open_map(page)
    mean = np.asarray(pca["marker"]["mean"])
    components = np.asarray(pca["marker"]["components"])

    def marker_and_z() -> tuple[np.ndarray, np.ndarray]:
        m = page.get_attribute("#map-overlay", "data-marker")
        return np.array([float(v) for v in m.split(",")]), np.asarray(slider_z(page))

    start, z0 = marker_and_z()
    assert np.allclose(start, (z0 - mean) @ components.T, atol=2e-6)
    slider = page.locator(".latent input[type=range]").first  # the most informative latent
    grab_and_drag(page, slider, 0.4)
    page.wait_for_function(
        "m => document.getElementById('map-overlay').dataset.marker !== m",
        arg=",".join(f"{v:.6f}" for v in start),
    )
    during, z = marker_and_z()  # the button is still held
    page.mouse.up()
    assert abs(z - z0).max() > 0.5
    assert np.allclose(during, (z - mean) @ components.T, atol=2e-6)
    assert np.linalg.norm(during - start) > 0.05
    # drawn where the view puts it
    drawn = [float(v) for v in page.get_attribute("#map-overlay", "data-marker-px").split(",")]
    assert drawn == pytest.approx(on_screen([during], view(page))[0], abs=0.01)


def test_zoom_pan_and_the_svg_and_png_exports_show_the_current_view(page, pca):
    open_map(page, "&colour=shape")
    box = page.locator("#map-canvas").bounding_box()
    side = box["width"]
    v0 = view(page)
    # a whole screen pixel: where the browser puts the pointer
    mx, my = round(box["x"] + side * 0.6) - box["x"], round(box["y"] + side * 0.4) - box["y"]
    page.mouse.move(box["x"] + mx, box["y"] + my)
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"JSON.parse(document.getElementById('map').dataset.view).k > {v0['k']}")
    v1 = view(page)
    assert v1["k"] / v0["k"] > 1.3
    # the data under the pointer stays under it
    under = lambda v: ((mx - v["tx"]) / v["k"], (v["ty"] - my) / v["k"])  # noqa: E731
    assert under(v1) == pytest.approx(under(v0), abs=1e-9)

    page.mouse.move(box["x"] + 100, box["y"] + 100)
    page.mouse.down()
    page.mouse.move(box["x"] + 160, box["y"] + 70, steps=5)
    page.mouse.up()
    v2 = view(page)
    assert (v2["tx"] - v1["tx"], v2["ty"] - v1["ty"]) == pytest.approx((60, -30), abs=0.01)
    settled(page)
    assert v2["k"] == v1["k"]

    xy = on_screen(pca["points"], v2)
    in_view = ((xy >= 0) & (xy <= side)).all(axis=1)
    assert 0 < in_view.sum() < N
    # drawn: the points whose dot (a few px wide) touches the canvas
    near = ((xy >= -2) & (xy <= side + 2)).all(axis=1)
    assert in_view.sum() <= int(page.get_attribute("#map-canvas", "data-drawn")) <= near.sum()
    with page.expect_download() as d:
        page.click("#map-svg")
    svg = ET.parse(d.value.path()).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    circles = svg.findall(f".//{ns}circle")
    assert len(circles) == in_view.sum()
    # each circle where the view puts its point, in its shape's colour
    shape = np.asarray(next(c for c in pca["colour_by"] if c["name"] == "shape")["values"])
    hex_of = lambda rgb: "#" + "".join(f"{v:02x}" for v in rgb)  # noqa: E731
    seen = np.array(
        [(float(c.get("cx")), float(c.get("cy"))) for g in svg.findall(f"{ns}g") for c in g]
    )
    fills = [g.get("fill") for g in svg.findall(f"{ns}g") for _ in g]
    wanted = np.flatnonzero(in_view)
    gaps = np.hypot(*(seen[:, None, :] - xy[wanted][None, :, :]).transpose(2, 0, 1))
    assert gaps.min(axis=1).max() < 0.08 and gaps.min(axis=0).max() < 0.08
    nearest = wanted[gaps.argmin(axis=1)]
    assert fills == [hex_of(SHAPES[s]) for s in shape[nearest]]
    assert [t.text for t in svg.findall(f"{ns}text")] == ["shape", "square", "ellipse", "heart"]

    page.click("#map-reset")
    assert view(page) == pytest.approx(v0)
    with page.expect_download() as d:
        page.click("#map-png")
    png = Image.open(d.value.path())
    assert png.format == "PNG"
    assert png.size == (round(side) + 190, round(side))  # the map and its legend
    pixels = np.asarray(png.convert("RGB"))
    xy = on_screen(pca["points"], v0)
    alone = isolated(xy, side)[:20]
    got = pixels[np.round(xy[alone, 1]).astype(int), np.round(xy[alone, 0]).astype(int)]
    assert np.array_equal(got, [SHAPES[s] for s in shape[alone]])


def test_the_direction_slider_moves_z_along_the_direction(page, server):
    vector = np.asarray(
        httpx.get(f"{server}/api/models/{MODEL}/direction", params={"factor": "scale"}, timeout=300)
        .raise_for_status()
        .json()["vector"]
    )
    page.goto(f"/?model={MODEL}&z=0.5,0,0,0,0,0,0,0,0,-0.5")
    page.wait_for_selector("#direction-slider[data-ready=true]", timeout=120_000)
    shown = wait_painted(page, MODEL)
    z_start = np.asarray(slider_z(page))
    track = page.locator("#direction-slider-t")
    grab_and_drag(page, track, 0.3)
    wait_repainted(page, MODEL, shown)  # the picture follows while the button is held
    t = float(track.input_value())
    z = np.asarray(slider_z(page))
    page.mouse.up()
    assert 0.3 < t <= 1
    assert np.all(np.abs(z_start + t * vector) < 3)  # inside the sliders: nothing clipped
    assert z - z_start == pytest.approx(t * vector, abs=0.0051)
    fit = page.inner_text("#direction-slider-fit")
    assert "participation ratio" in fit and "held-out" in fit

    # a latent slider moved by hand: the direction starts again from there
    page.focus("#z0")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("#direction-slider-t-value:text-is('0.00')")
    assert float(track.input_value()) == 0
    # the link to the map carries the z the sliders now hold, so its marker starts there
    z_text = ",".join(f"{v:.2f}" for v in slider_z(page))
    page.wait_for_function(
        "z => new URL(document.getElementById('map-link').href).searchParams.get('z') === z",
        arg=z_text,
    )


def test_the_pages_link_each_other_and_offer_directions_only_where_there_are_some(server):
    html = httpx.get(f"{server}/", params={"model": "disvae-vae-celeba"}, timeout=120).text
    # no directions of its own: the slider waits, hidden, for one handed over (direction:use)
    assert 'id="explorer"' in html and 'id="direction-slider" hidden' in html
    html = httpx.get(f"{server}/", params={"model": MODEL}, timeout=120).text
    assert 'id="direction-slider" data-model' in html and f'href="/map?model={MODEL}&z=' in html
    assert '<a href="/map">Map</a>' in html  # in the nav
    z = "0.50,0.00,0.00,0.00,0.00,0.00,0.00,0.00,0.00,-1.00"
    query = {"model": MODEL, "method": "isomap", "n": 99_999, "z": z}
    html = unescape(httpx.get(f"{server}/map", params=query, timeout=120).text)
    known = ", ".join(MAP_METHODS[:-1]) + f" or {MAP_METHODS[-1]}"
    assert f"unknown method 'isomap' ({known}); showing PCA" in html
    assert [f'<option value="{m}"' in html for m in MAP_METHODS] == [True] * len(MAP_METHODS)
    assert f"a map of {MODEL} holds 2 to 20,000 points; showing 5,000" in html
    assert 'data-method="pca" data-n="5000"' in html
    assert f'href="/?model={MODEL}&z={z}"' in html  # back to explore, at the same z
    assert 'id="direction-slider"' in html
    assert ">all 10,000<" not in html  # a model's own drawn images: no "all"
    html = httpx.get(
        f"{server}/map", params={"model": "fashion-vae", "data": "fashion-mnist"}, timeout=120
    ).text
    assert re.search(r'<option value="10000"[^>]*>all 10,000</option>', html)  # its test split


def test_a_tsne_map_says_it_is_computing_and_then_places_z_by_its_neighbours(page, server):
    n = 300  # small: t-SNE takes about 2 s
    page.goto(f"/map?model={MODEL}&method=tsne&n={n}")
    page.wait_for_selector("#map[data-state=computing]", timeout=60_000)
    assert page.inner_text("#map-status").startswith("computing…")
    # the explorer is not held up meanwhile
    shown = wait_painted(page, MODEL)
    page.focus("#z0")
    page.keyboard.press("ArrowRight")
    wait_repainted(page, MODEL, shown)
    page.wait_for_selector("#map[data-state=done]", timeout=180_000)
    data = httpx.get(
        f"{server}/api/models/{MODEL}/map", params={"n": n, "method": "tsne"}, timeout=60
    ).json()
    if data["marker"].get("place"):
        # the server places z on the map (the layout's own transform, or the nearest points):
        # the marker is where it answers for the z the page asked about
        page.wait_for_selector("#map-overlay[data-marker-z]")
        z_asked = page.get_attribute("#map-overlay", "data-marker-z")
        placed = httpx.get(f"{server}{data['marker']['place']}&z={z_asked}", timeout=60).json()
        got = [float(v) for v in page.get_attribute("#map-overlay", "data-marker").split(",")]
        assert got == pytest.approx([placed["x"], placed["y"]], abs=1e-6)
        assert page.inner_text("#map-marker-about") == placed["about"]
        assert np.allclose([float(v) for v in z_asked.split(",")], slider_z(page), atol=0.0051)
        return
    assert data["marker"]["kind"] == "nearest"
    assert page.inner_text("#map-marker-about") == data["marker"]["about"]
    # the marker: the 1/distance-weighted mean of the k nearest points' positions by μ
    z = np.asarray(slider_z(page))
    d = np.linalg.norm(np.asarray(data["latents"]) - z, axis=1)
    near = np.argsort(d)[: data["marker"]["k"]]
    w = 1 / (d[near] + 1e-6)
    want = (w[:, None] * np.asarray(data["points"])[near]).sum(axis=0) / w.sum()
    got = [float(v) for v in page.get_attribute("#map-overlay", "data-marker").split(",")]
    assert got == pytest.approx(want, abs=1e-4)
