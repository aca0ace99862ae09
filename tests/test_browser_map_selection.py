"""Selections A and B on /map in Chromium, on the shipped dsprites-beta-vae: the panel shows what
the server says the selected images have in common, their CSV holds exactly the images inside
each polygon (found here by even-odd ray casting over the map API's own positions), the URL
carries the polygons and a page opened at it selects the same images again, and the direction
from A to B reaches the direction slider as the difference of the two groups' mean μ."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest

MODEL = "dsprites-beta-vae"
N = 1000


@pytest.fixture(scope="module")
def server(shipped_server):
    return shipped_server


@pytest.fixture(scope="module")
def the_map(server) -> dict:
    r = httpx.get(f"{server}/api/models/{MODEL}/map", params={"n": N}, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


def inside(points: np.ndarray, polygon: list[list[float]]) -> np.ndarray:
    """Even-odd rule, one edge at a time."""
    x, y = points[:, 0], points[:, 1]
    result = np.zeros(len(points), dtype=bool)
    for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if y0 == y1:
            continue
        crosses = (y0 > y) != (y1 > y)
        result ^= crosses & (x < x0 + (y - y0) * (x1 - x0) / (y1 - y0))
    return result


def polygons(points: np.ndarray) -> tuple[list[list[float]], list[list[float]]]:
    """A: the triangle under the map's diagonal; B: a quadrilateral on its right, over part of
    A (an image in both counts in both)."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    mid = (lo + hi) / 2
    a = [[lo[0] - 1, lo[1] - 1], [hi[0] + 1, lo[1] - 1], [lo[0] - 1, hi[1] + 1]]
    b = [[mid[0], lo[1] - 1], [hi[0] + 1, mid[1]], [mid[0], hi[1] + 1], [mid[0] - 0.5, mid[1]]]
    return [[round(v, 4) for v in p] for p in a], [[round(v, 4) for v in p] for p in b]


def open_map(browser, server, query: str):
    page = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900},
                               bypass_csp=True).new_page()  # fmt: skip
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    page.goto(f"/map?model={MODEL}&n={N}{query}")
    page.evaluate("() => window.latentMapView.ready")
    return page


def both_shown(page) -> None:
    page.wait_for_function(
        "() => window.__mapSelections.A && window.__mapSelections.B && "
        "document.querySelector('.map-sel-direction-text').textContent.includes('|v|')",
        timeout=60_000,
    )


def test_two_selections_their_panel_csv_url_and_direction(browser, server, the_map):
    points = np.array(the_map["points"])
    indices = np.array(the_map["indices"])
    latents = np.array(the_map["latents"])
    poly_a, poly_b = polygons(points)
    want = {"A": inside(points, poly_a), "B": inside(points, poly_b)}
    assert 20 < want["A"].sum() < N - 20 and 20 < want["B"].sum() < N - 20

    page = open_map(browser, server, "")
    page.evaluate(
        """([a, b]) => { window.latentMapView.selectPolygon("A", a);
                         window.latentMapView.selectPolygon("B", b); }""",
        [poly_a, poly_b],
    )
    both_shown(page)
    for slot in ("A", "B"):
        unique = np.unique(indices[want[slot]])
        answer = page.evaluate(f"() => window.__mapSelections.{slot}.answer")
        assert answer["count"] == len(unique)
        shown = page.locator(f'.map-sel-slot[data-slot="{slot}"] .map-sel-count').inner_text()
        assert f"{len(unique):,} images" in shown
        csv = httpx.get(server + answer["csv"]).text.split()
        assert csv == ["index", *map(str, unique.tolist())]
        # the mean reconstruction is a picture, and shown
        mean_img = page.locator(f'.map-sel-slot[data-slot="{slot}"] .map-sel-mean img')
        assert mean_img.get_attribute("src").startswith("data:image/png;base64,")
    # the direction: B's mean μ − A's, over each group's images once, from the map's own μ
    first = {i: r for r, i in reversed(list(enumerate(indices.tolist())))}
    mean = {s: latents[[first[i] for i in np.unique(indices[want[s]])]].mean(axis=0) for s in want}
    vector = page.evaluate("() => window.__mapSelections.direction.vector")
    np.testing.assert_allclose(vector, mean["B"] - mean["A"], atol=2e-4)
    # the direction slider took it
    choice = page.locator("#direction-slider").inner_text()
    assert "selection A" in choice and "selection B" in choice
    # the URL holds both polygons; /compare's link both selections
    query = parse_qs(urlparse(page.url).query)
    assert query["sel_a"] == [";".join(f"{x:g},{y:g}" for x, y in poly_a)]
    compare = parse_qs(urlparse(page.locator("#map-sel-compare").get_attribute("href")).query)
    ids = {s: page.evaluate(f"() => window.__mapSelections.{s}.id") for s in "AB"}
    assert compare["sel_a"] == [ids["A"]] and compare["sel_b"] == [ids["B"]]
    # a page opened at that URL selects the same images again
    again = open_map(browser, server, "&" + urlparse(page.url).query.split("&", 1)[1])
    both_shown(again)
    assert {s: again.evaluate(f"() => window.__mapSelections.{s}.id") for s in "AB"} == ids
    assert page.errors == [] and again.errors == []  # type: ignore[attr-defined]
