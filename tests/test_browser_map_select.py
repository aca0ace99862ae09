"""The latent map on the GPU and its selections, in Chromium: the points are drawn with WebGL2
and a pan moves them; a lasso and a box drawn with the mouse select exactly the points inside
(checked against even-odd ray casting done here on the map API's own positions); the page's
handle (window.latentMapView) selects and clears by polygon."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from playwright.sync_api import Page

from tests.test_browser_map import canvas_rgb, isolated, new_page, on_screen, settled, view

MODEL = "dsprites-beta-vae"
N = 2000


@pytest.fixture(scope="module")
def server(shipped_server):
    return shipped_server


@pytest.fixture(scope="module")
def pca(server) -> dict:
    resp = httpx.get(f"{server}/api/models/{MODEL}/map", params={"n": N}, timeout=300)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
def page(browser, server):
    pg = new_page(browser, server)
    pg.goto(f"/map?model={MODEL}&n={N}&colour=shape")
    pg.wait_for_selector("#map[data-state=done]", timeout=120_000)
    pg.evaluate("window.latentMapView.ready")
    # every map:selection event, as plain arrays
    pg.evaluate(
        """() => { window.__selections = [];
        document.getElementById('explorer').addEventListener('map:selection', (e) => {
          const d = e.detail;
          window.__selections.push({slot: d.slot, polygon: d.polygon,
            rows: Array.from(d.rows), indices: Array.from(d.indices),
            typed: d.rows instanceof Uint32Array && d.indices instanceof Uint32Array});
        }); }"""
    )
    yield pg
    pg.context.close()
    assert pg.errors == []  # type: ignore[attr-defined]


def inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Rows of the points inside the polygon by the even-odd rule: a ray to +x crosses an odd
    number of edges (an edge counts where one end is above the point and the other not)."""
    x, y = points[:, 0][:, None], points[:, 1][:, None]
    xa, ya = polygon[:, 0][None, :], polygon[:, 1][None, :]
    xb, yb = np.roll(polygon[:, 0], 1)[None, :], np.roll(polygon[:, 1], 1)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        crosses = ((ya > y) != (yb > y)) & (x < (xb - xa) * (y - ya) / (yb - ya) + xa)
    return np.flatnonzero(crosses.sum(axis=1) % 2 == 1)


def positions(pca: dict) -> np.ndarray:
    """The points as the page holds them: the API's numbers in float32."""
    return np.asarray(pca["points"], dtype=np.float32).astype(np.float64)


def to_data(screen: np.ndarray, v: dict) -> np.ndarray:
    return np.c_[(screen[:, 0] - v["tx"]) / v["k"], (v["ty"] - screen[:, 1]) / v["k"]]


def selections(page: Page, count: int) -> list[dict]:
    page.wait_for_function(f"window.__selections.length >= {count}")
    return page.evaluate("window.__selections")


def drag_path(page: Page, box: dict, path: list[tuple[int, int]]) -> None:
    """Press at the first vertex, move to each in turn, let go at the last (page px)."""
    page.mouse.move(box["x"] + path[0][0], box["y"] + path[0][1])
    page.mouse.down()
    for x, y in path[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y)
    page.mouse.up()


def whole(box: dict, xs: list[float], ys: list[float]) -> list[tuple[int, int]]:
    """Offsets from the canvas that land on whole page pixels (where the browser puts them)."""
    x0, y0 = box["x"], box["y"]
    return [(round(x0 + x) - x0, round(y0 + y) - y0) for x, y in zip(xs, ys, strict=True)]


def test_the_map_is_drawn_with_webgl_and_a_pan_moves_its_points(page, pca):
    kind = page.eval_on_selector(
        "#map-canvas",
        "c => [c.getContext('webgl2') !== null, c.getContext('2d') === null]",
    )
    assert kind == [True, True]  # the canvas holds a WebGL2 context, not a 2-D one
    assert page.get_attribute("#map", "data-renderer") == "webgl2"
    box = page.locator("#map-canvas").bounding_box()
    side = box["width"]
    v0 = view(page)
    xy = on_screen(pca["points"], v0)
    alone = isolated(xy, side, margin=60)[:25]
    shape = np.asarray(next(c for c in pca["colour_by"] if c["name"] == "shape")["values"])
    palette = {0: (0x4E, 0x79, 0xA7), 1: (0xF2, 0x8E, 0x2B), 2: (0xE1, 0x57, 0x59)}
    want = np.array([palette[s] for s in shape[alone]])
    assert np.array_equal(canvas_rgb(page, xy[alone]), want)
    page.mouse.move(box["x"] + 50, box["y"] + 50)
    page.mouse.down()
    page.mouse.move(box["x"] + 80, box["y"] + 70, steps=4)
    page.mouse.up()
    v1 = view(page)
    assert (v1["tx"] - v0["tx"], v1["ty"] - v0["ty"]) == pytest.approx((30, 20))
    settled(page)
    # each point is drawn 30 px right and 20 px down; where it was is now blank, unless another
    # point has moved onto it
    moved = on_screen(pca["points"], v1)
    assert np.array_equal(canvas_rgb(page, moved[alone]), want)
    empty = [i for i in alone if np.hypot(*(moved - xy[i]).T).min() > 7]
    assert empty and (canvas_rgb(page, xy[empty]) == 255).all()
    # zoomed in about a corner (the GPU is given only the cells in view): every point in view
    # is drawn, in its colour
    page.mouse.move(box["x"] + side * 0.3, box["y"] + side * 0.3)
    page.mouse.wheel(0, -800)
    zoomed = "JSON.parse(document.getElementById('map').dataset.view).k"
    page.wait_for_function(f"{zoomed} > {3 * v1['k']}")
    settled(page)
    v2 = view(page)
    xy2 = on_screen(pca["points"], v2)
    seen = isolated(xy2, side)
    assert len(seen) > 30
    assert np.array_equal(canvas_rgb(page, xy2[seen]), [palette[s] for s in shape[seen]])


def test_a_lasso_selects_exactly_the_points_inside_it(page, pca):
    page.click("#map-tool-lasso")
    assert page.get_attribute("#map-tool-lasso", "aria-pressed") == "true"
    box = page.locator("#map-canvas").bounding_box()
    side = box["width"]
    # a freehand loop round the middle of the map that crosses itself: a star, drawn with
    # the mouse
    t = np.linspace(0, 2 * np.pi, 11)[:-1]
    r = np.where(np.arange(10) % 2 == 0, 0.36, 0.14) * side
    path = whole(box, list(side / 2 + r * np.cos(2 * t)), list(side / 2 + r * np.sin(2 * t)))
    v = view(page)
    drag_path(page, box, path)
    [event] = selections(page, 1)
    polygon = to_data(np.asarray(path), v)
    assert event["slot"] == "A" and event["typed"]
    assert np.allclose(event["polygon"], polygon, atol=1e-9)
    want = inside(positions(pca), polygon)
    assert 50 < len(want) < N - 50  # some inside, some out
    assert event["rows"] == want.tolist()
    assert event["indices"] == [pca["indices"][i] for i in want]
    assert page.inner_text("#map-count-A") == f"{len(want):,} points"
    # the next selection fills B
    assert page.get_attribute("#map-slot-B", "aria-pressed") == "true"
    # the selected points keep their colour; the rest are paled
    settled(page)
    xy = on_screen(pca["points"], v)
    alone = isolated(xy, side)
    chosen = np.isin(alone, want)
    shape = np.asarray(next(c for c in pca["colour_by"] if c["name"] == "shape")["values"])
    palette = {0: (0x4E, 0x79, 0xA7), 1: (0xF2, 0x8E, 0x2B), 2: (0xE1, 0x57, 0x59)}
    got = canvas_rgb(page, xy[alone])
    full = np.array([palette[s] for s in shape[alone]])
    assert chosen.any() and (~chosen).any()
    assert np.array_equal(got[chosen], full[chosen])
    assert (got[~chosen].sum(axis=1) > full[~chosen].sum(axis=1) + 200).all()


def test_the_box_tool_selects_the_points_in_its_rectangle(page, pca):
    page.focus("#map-tool-box")
    page.keyboard.press("Enter")  # the toolbar's buttons answer the keyboard
    assert page.get_attribute("#map-tool-box", "aria-pressed") == "true"
    page.click("#map-slot-B")
    box = page.locator("#map-canvas").bounding_box()
    side = box["width"]
    (x0, y0), (x1, y1) = whole(box, [side * 0.55, side * 0.3], [side * 0.25, side * 0.6])
    v = view(page)
    drag_path(page, box, [(x0, y0), (x1 + 40, y1 - 30), (x1, y1)])
    [event] = selections(page, 1)
    assert event["slot"] == "B"
    corners = to_data(np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]), v)
    assert np.allclose(event["polygon"], corners, atol=1e-9)
    p = positions(pca)
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    want = np.flatnonzero(((p > lo) & (p < hi)).all(axis=1))
    assert 20 < len(want) < N - 20
    assert event["rows"] == want.tolist()
    assert event["indices"] == [pca["indices"][i] for i in want]


def test_the_page_handle_selects_by_polygon_and_clears(page, pca):
    p = positions(pca)
    triangle = [[float(p[:, 0].min()), float(p[:, 1].min())],
                [float(p[:, 0].max()), float(p[:, 1].min())],
                [0.0, float(p[:, 1].max())]]  # fmt: skip
    page.evaluate("t => window.latentMapView.selectPolygon('B', t)", triangle)
    [event] = selections(page, 1)
    want = inside(p, np.asarray(triangle))
    assert event["slot"] == "B" and event["rows"] == want.tolist() and len(want) > 100
    assert page.inner_text("#map-count-B") == f"{len(want):,} points"
    # toScreen: where the view puts a point, as the page reports its view
    got = page.evaluate("([x, y]) => window.latentMapView.toScreen(x, y)", triangle[0])
    assert got == pytest.approx(on_screen([triangle[0]], view(page))[0])
    pts = page.evaluate(
        "() => { const p = window.latentMapView.points();"
        " return [p.x.length, p.x[5], p.y[5], p.indices[5], p.x instanceof Float32Array]; }"
    )
    assert pts == [N, pytest.approx(p[5, 0]), pytest.approx(p[5, 1]), pca["indices"][5], True]
    page.evaluate("window.latentMapView.clear('B')")
    events = selections(page, 2)
    assert events[1] == {"slot": "B", "polygon": [], "rows": [], "indices": [], "typed": True}
    assert page.inner_text("#map-count-B") == "empty"
