"""The explorer in a real browser: Debian's Chromium driven by Playwright, against a live server
on the shipped checkpoints."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest
from PIL import Image

from app.data.dsprites import render
from tests.browser_server import canvas_pixels, grab_and_drag, wait_painted, wait_repainted


@pytest.fixture(scope="module")
def server(shipped_server):
    return shipped_server


@pytest.fixture
def page(browser, server):
    # Playwright's polling wait_for_function evaluates strings in the page, which our CSP (no
    # eval) refuses: these tests bypass it; the CSP test below runs with it on and waits without
    context = browser.new_context(
        base_url=server, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert errors == []


def test_dragging_a_slider_changes_the_image_while_the_button_is_held(page):
    page.goto("/?model=dsprites-beta-vae")
    shown = wait_painted(page, "dsprites-beta-vae")
    before = canvas_pixels(page, "dsprites-beta-vae")
    slider = page.locator(".latent input[type=range]").first  # the most informative latent
    grab_and_drag(page, slider, 0.4)
    during = wait_repainted(page, "dsprites-beta-vae", shown)  # the button is still held
    assert canvas_pixels(page, "dsprites-beta-vae") != before
    value = float(slider.input_value())
    assert value > 0.5
    dim = int(slider.get_attribute("data-dim"))
    z = [float(v) for v in parse_qs(urlparse(during).query)["z"][0].split(",")]
    assert z[dim] > 0.2  # what is painted is a decode of the dragged value, not a stale one
    page.mouse.up()


def test_every_sweep_arrives_before_the_grab_so_a_drag_requests_nothing(page):
    page.goto("/compare?a=dsprites-vae&b=dsprites-beta-vae")
    models = ("dsprites-vae", "dsprites-beta-vae")
    shown = {m: wait_painted(page, m) for m in models}
    # untouched, the page loads one strip per slider and model in the background
    page.wait_for_function("window.__latentSweeps.length >= 20")
    sweeps = page.evaluate("window.__latentSweeps")
    assert sorted((s["model"], s["dim"]) for s in sweeps) == sorted(
        (m, d) for m in models for d in range(10)
    )
    assert {s["tiles"] for s in sweeps} == {121}
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/" in r.url else None)
    page.evaluate("window.__latentPaints.length = 0")
    slider = page.locator(".latent input[type=range]").first
    box = slider.bounding_box()
    # the thumb where the slider's value puts it: the drag starts with the grab
    lo, hi = float(slider.get_attribute("min")), float(slider.get_attribute("max"))
    x = box["x"] + 8 + (box["width"] - 16) * (float(slider.input_value()) - lo) / (hi - lo)
    y = box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.9, y, steps=10)
    for m in models:
        wait_repainted(page, m, shown[m])
    paints = page.evaluate("window.__latentPaints")
    # letting go loads the other sliders' strips at the new z (the next row's first): only what
    # was asked for while the button was held counts
    during = list(requests)
    page.mouse.up()
    assert len(paints) >= 2 and all(p["cached"] for p in paints)
    assert not [u for u in during if "/decode.png" in u or "/sweep.png" in u]
    # and what was painted from the strip is what a single decode gives
    for m in models:
        url = page.eval_on_selector(f'canvas.decoded[data-model="{m}"]', "c => c.dataset.shown")
        painted = page.eval_on_selector(
            f'canvas.decoded[data-model="{m}"]',
            """c => { const t = document.createElement('canvas'); t.width = t.height = 64;
                      t.getContext('2d').drawImage(c, 0, 0, 64, 64);
                      return Array.from(t.getContext('2d').getImageData(0, 0, 64, 64).data); }""",
        )
        single = np.asarray(Image.open(io.BytesIO(page.request.get(url).body())).convert("L"))
        assert np.array_equal(np.array(painted[::4], dtype=np.uint8).reshape(64, 64), single)


def test_letting_go_of_a_slider_loads_the_other_sliders_strips_at_the_new_z(page):
    page.goto("/?model=dsprites-beta-vae")
    wait_painted(page, "dsprites-beta-vae")
    page.wait_for_function("window.__latentSweeps.length >= 10")
    first = page.evaluate("window.__latentSweeps[0].z")
    slider = page.locator(".latent input[type=range]").first
    slider.focus()
    page.keyboard.press("ArrowRight")  # a step: z changes, every other strip is stale
    page.wait_for_function("window.__latentSweeps.length >= 19")
    again = page.evaluate("window.__latentSweeps.slice(10)")
    moved = int(slider.get_attribute("data-dim"))
    assert sorted(s["dim"] for s in again) == sorted(d for d in range(10) if d != moved)
    assert all(s["z"] != first for s in again)


def test_uploading_an_image_moves_the_sliders_to_its_mu(page, server):
    sprite = render(np.array([[2, 5, 0, 8, 24]]))[0] * 255
    buf = io.BytesIO()
    Image.fromarray(sprite.astype(np.uint8)).save(buf, format="PNG")
    data = buf.getvalue()
    page.goto("/?model=dsprites-beta-vae")
    wait_painted(page, "dsprites-beta-vae")
    page.set_input_files(
        "#upload-file", files=[{"name": "heart.png", "mimeType": "image/png", "buffer": data}]
    )
    page.wait_for_selector(".encoding[data-mu]")
    mu = httpx.post(
        f"{server}/api/models/dsprites-beta-vae/encode",
        files={"file": ("heart.png", data, "image/png")},
    ).json()["mu"]
    sliders = page.locator(".latent input[type=range]")
    for i in range(sliders.count()):
        s = sliders.nth(i)
        dim = int(s.get_attribute("data-dim"))
        want = max(-3.0, min(3.0, round(mu[dim], 2)))
        assert float(page.inner_text(f"#z{dim}-value")) == pytest.approx(want, abs=0.001)
        assert float(s.input_value()) == pytest.approx(want, abs=0.026)  # the thumb: step 0.05
    assert any(abs(m) > 0.3 for m in mu)  # the sliders really moved away from 0
    assert (
        page.locator(".encoding img").count() == 2
    )  # the input as the model sees it, and its reconstruction


def test_a_bad_upload_shows_its_error_inline(page):
    page.goto("/?model=dsprites-beta-vae")
    page.set_input_files(
        "#upload-file",
        files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"just some text"}],
    )
    error = page.wait_for_selector("#encode-result .error")
    assert "file is not an image" in error.inner_text()


def test_compare_page_shows_two_models_responding_to_one_slider(page):
    page.goto("/compare?a=dsprites-vae&b=dsprites-beta-vae")
    shown = {m: wait_painted(page, m) for m in ("dsprites-vae", "dsprites-beta-vae")}
    before = {m: canvas_pixels(page, m) for m in shown}
    slider = page.locator(".latent input[type=range]").first
    slider.focus()
    for _ in range(150):  # keyboard-usable: arrows move a native range input
        page.keyboard.press("ArrowRight")
    for m in shown:
        wait_repainted(page, m, shown[m])
        assert canvas_pixels(page, m) != before[m]
    assert page.locator("img.traverse").count() == 2


def test_the_url_restores_a_state_and_follows_the_sliders(page):
    z = [1.25, -0.5, 0, 0, 2, 0, 0, 0, 0, -1]
    page.goto(f"/?model=dsprites-cvae&z={','.join(map(str, z))}&label=2")
    shown = wait_painted(page, "dsprites-cvae")
    assert "label=2" in shown and "z=1.25,-0.50,0.00,0.00,2.00" in shown
    for d, v in enumerate(z):
        assert float(page.input_value(f"#z{d}")) == pytest.approx(v)
    assert page.is_checked('input[name="label"][value="2"]')
    page.focus("#z0")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("new URLSearchParams(location.search).get('z').startsWith('1.30,')")
    assert parse_qs(urlparse(page.url).query)["label"] == ["2"]


def test_one_click_shows_a_random_z_decoded_by_the_ae_and_the_vae(page):
    page.goto("/?model=dsprites-ae")
    page.click("#ae-vs-vae")
    page.wait_for_url("**/compare?**")
    query = parse_qs(urlparse(page.url).query)
    assert query["a"] == ["dsprites-ae"] and query["b"] == ["dsprites-vae"]
    assert len(query["z"][0].split(",")) == 10
    for m in ("dsprites-ae", "dsprites-vae"):
        wait_painted(page, m)


def test_pages_and_the_api_docs_run_under_the_content_security_policy(browser, server):
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.goto("/compare?a=dsprites-vae&b=dsprites-beta-vae")
    page.wait_for_selector('canvas.decoded[data-model="dsprites-beta-vae"][data-shown]')
    page.locator(".latent input[type=range]").first.focus()  # grab a slider: sweeps, blobs
    page.keyboard.press("ArrowRight")
    page.locator("#figure2, .figure2").first.scroll_into_view_if_needed()
    page.wait_for_selector(".figure2 svg", timeout=60_000)  # htmx-loaded inline SVG
    page.goto("/docs")
    page.wait_for_selector(".opblock", timeout=30_000)  # Swagger UI rendered our operations
    assert page.locator(".opblock").count() >= 10
    assert "decode.png" in page.inner_text("#swagger-ui")
    context.close()
    assert not [m for m in console if "Content Security Policy" in m], console


def test_painting_a_mask_hides_those_pixels_and_the_models_answer(page):
    import base64

    page.goto("/denoise?index=5&noise=gaussian&level=0.2")
    before = page.get_attribute("#corrupted-image", "src")
    box = page.locator("#mask-canvas").bounding_box()
    # a horizontal stroke across the middle of the 64×64 image (the canvas shows it 4× larger)
    page.mouse.move(box["x"] + 40, box["y"] + 128)
    page.mouse.down()
    for x in range(40, 220, 8):
        page.mouse.move(box["x"] + x, box["y"] + 128)
    page.mouse.up()
    page.wait_for_function(
        "src => document.querySelector('#corrupted-image').src !== src", arg=before
    )
    assert page.input_value("#noise") == "drawn"
    png = base64.b64decode(page.get_attribute("#corrupted-image", "src").split(",", 1)[1])
    seen = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    grey = seen == 128  # MASK_FILL, as a PNG level
    assert grey[30:34, 12:52].all()  # the stroke's centre line is hidden...
    assert not grey[:20].any() and not grey[44:].any()  # ...and nothing far from it
    assert page.locator(".denoise-table tr[data-model]").count() == 2
