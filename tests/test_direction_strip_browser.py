"""The direction slider in Chromium paints from its strip (path.png): after the first grab a drag
asks the server for no decode, on the explore page and on /compare; and a direction handed over
with `direction:use` moves z along its vector."""

from __future__ import annotations

import numpy as np
import pytest

from tests.browser_server import canvas_pixels, grab_and_drag, wait_painted, wait_repainted

MODEL = "dsprites-beta-vae"


@pytest.fixture(scope="module")
def server(shipped_server):
    return shipped_server


@pytest.fixture
def page(browser, server):
    # bypass_csp: Playwright's polling waits evaluate strings, which our CSP (no eval) refuses
    context = browser.new_context(
        base_url=server, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert errors == []


def decode_requests(page) -> list[str]:
    """Every decode.png the page asks for from now on (the list grows)."""
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/decode.png" in r.url else None)
    return asked


def slider_z(page) -> np.ndarray:
    """z as the latent sliders' outputs show it."""
    return np.asarray(
        page.evaluate(
            """() => Array.from(document.querySelectorAll('input[type=range][data-dim]'))
                  .sort((a, b) => a.dataset.dim - b.dataset.dim)
                  .map(s => Number(document.getElementById(s.id + '-value').textContent))"""
        )
    )


def test_after_the_first_grab_a_direction_drag_asks_for_no_decode(page):
    page.goto(f"/?model={MODEL}")
    page.wait_for_selector("#direction-slider[data-ready=true]", timeout=120_000)
    shown = wait_painted(page, MODEL)
    before = canvas_pixels(page, MODEL)
    track = page.locator("#direction-slider-t")
    grab_and_drag(page, track, 0.0)  # the grab, on the thumb at t = 0
    page.wait_for_function("window.__directionStrips.length >= 1")
    strip = page.evaluate("window.__directionStrips[0]")
    assert strip["model"] == MODEL and strip["tiles"] == 201  # t = −1 … 1 in hundredths
    asked = decode_requests(page)
    box = track.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.85, box["y"] + box["height"] / 2, steps=12)
    during = wait_repainted(page, MODEL, shown)
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] / 2, steps=12)
    page.wait_for_function(
        "([sel, at]) => document.querySelector(sel).dataset.shown !== at",
        arg=[f'canvas.decoded[data-model="{MODEL}"]', during],
    )
    t = float(track.input_value())
    page.mouse.up()
    assert t < -0.3
    assert canvas_pixels(page, MODEL) != before  # the picture follows t
    assert asked == []  # every position came from the strip


def test_direction_use_drives_the_slider_along_the_given_vector(page):
    page.goto(f"/map?model={MODEL}&z=0.5,0,0,0,0,0,0,0,0,-0.5")
    page.wait_for_selector("#direction-slider[data-ready=true]", timeout=120_000)
    own = page.get_attribute("#direction-slider", "data-vector")
    vector = [0.5, -0.25, 0, 0, 1.2, 0, 0.3333, 0, 0, 0.75]
    page.evaluate(
        """v => document.getElementById('explorer').dispatchEvent(new CustomEvent('direction:use',
             {detail: {vector: v, name: 'selection A → selection B',
                       about: 'from the mean μ of 40 points to that of 25'}}))""",
        vector,
    )
    page.wait_for_selector("#direction-slider[data-ready=true]")  # with its strip
    assert page.eval_on_selector("#direction-slider-choice", "s => s.selectedOptions[0].text") == (
        "selection A → selection B"
    )
    assert "40 points" in page.inner_text("#direction-slider-fit")
    z_start = slider_z(page)
    page.locator("#direction-slider-t").fill("0.63")
    page.wait_for_selector("#direction-slider-t-value:text-is('0.63')")
    z = slider_z(page)
    assert z == pytest.approx(np.clip(z_start + 0.63 * np.asarray(vector), -3, 3), abs=0.0051)
    assert abs(z[4] - z_start[4]) > 0.7  # it moved
    # the picker still goes back to the model's own directions
    page.select_option("#direction-slider-choice", index=1)
    page.wait_for_function(
        "v => document.getElementById('direction-slider').dataset.vector === v", arg=own
    )


def test_the_compare_direction_slider_paints_each_model_from_its_strip(page):
    models = ("dsprites-vae", "dsprites-beta-vae")
    page.goto(f"/compare?a={models[0]}&b={models[1]}")
    # the section loads once revealed, swapped whole by htmx: scroll to whichever copy is in the
    # page now (a locator's element can be swapped out between finding it and scrolling to it)
    page.evaluate("document.getElementById('direction-compare').scrollIntoView()")
    page.wait_for_selector(".direction-compare-track[data-ready=true]", timeout=120_000)
    live = 'canvas.direction-live[data-name="{}"]'
    for m in models:  # each model's picture at t = 0
        page.wait_for_selector(live.format(m) + "[data-shown]")
    shown = {m: page.get_attribute(live.format(m), "data-shown") for m in models}
    track = page.locator("#direction-compare-t")
    grab_and_drag(page, track, 0.0)
    page.wait_for_function("window.__directionStrips.length >= 2")
    assert sorted(s["model"] for s in page.evaluate("window.__directionStrips")) == sorted(models)
    asked = decode_requests(page)
    box = track.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2, steps=10)
    for m in models:
        page.wait_for_function(
            "([sel, at]) => document.querySelector(sel).dataset.shown !== at",
            arg=[live.format(m), shown[m]],
        )
    page.mouse.up()
    assert asked == []
    # each model moves along its own direction: the two pictures' z differ
    z = {m: page.get_attribute(live.format(m), "data-shown").split("z=")[1] for m in models}
    assert z[models[0]] != z[models[1]]
