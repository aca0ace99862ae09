"""/compare by one image in Chromium: an 8-latent plugin with no data beside the shipped
`fashion-vae`. Each model's own sliders move its own picture only; a new image (a dataset image
of either model, or an upload) is encoded by both and moves each model's sliders to its own μ;
the URL keeps both; nothing the page asks for itself is answered 4xx/5xx."""

from __future__ import annotations

import html
import io
import json
import re
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.browser_server import canvas_pixels, grab_and_drag, live_server, wait_painted
from tests.eight_latent_plugin import served_plugin

PAIR = "/compare?a=my-conv-vae&b=fashion-vae"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served_plugin(tmp_path_factory.mktemp("plugin"), "browser_eight_latents") as (settings, _):
        with live_server(settings) as url:
            yield url


@pytest.fixture
def page(browser, server):
    # bypass_csp: Playwright's polling waits evaluate strings, which our CSP (no eval) refuses
    context = browser.new_context(
        base_url=server, viewport={"width": 1400, "height": 1000}, bypass_csp=True
    )
    pg = context.new_page()
    failed: list[str] = []
    errors: list[str] = []
    pg.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert failed == [] and errors == []


def slider_values(page, side: str) -> dict[int, float]:
    """The z a panel's sliders show (their outputs, two decimals), by latent."""
    return page.eval_on_selector_all(
        f"#{side}-explorer input[type=range][data-dim]",
        "els => Object.fromEntries(els.map(e => [e.dataset.dim, "
        "Number(document.getElementById(e.id + '-value').textContent)]))",
    )


def mu_of(page, side: str) -> list[float]:
    return json.loads(page.get_attribute(f"#{side}-encode-result .encoding", "data-mu"))


def test_each_models_slider_moves_its_own_picture_only(page):
    page.goto(PAIR)
    shown = {m: wait_painted(page, m) for m in ("my-conv-vae", "fashion-vae")}
    for side, model, other in (
        ("a", "my-conv-vae", "fashion-vae"),
        ("b", "fashion-vae", "my-conv-vae"),
    ):
        before = {m: canvas_pixels(page, m) for m in shown}
        slider = page.locator(f"#{side}-explorer .latent input[type=range]").first
        grab_and_drag(page, slider, 0.35)
        page.mouse.up()
        page.wait_for_function(
            "([m, was]) => document.querySelector(`canvas.decoded[data-model='${m}']`)"
            ".dataset.shown !== was",
            arg=[model, shown[model]],
        )
        assert canvas_pixels(page, model) != before[model]
        assert canvas_pixels(page, other) == before[other]  # the other model's own z is unmoved
        shown[model] = page.eval_on_selector(
            f"canvas.decoded[data-model='{model}']", "c => c.dataset.shown"
        )
        dim = slider.get_attribute("data-dim")
        # the URL keeps this model's z under its own name (za, zb), as its sliders show it
        page.wait_for_function(
            "([key, d, v]) => new URLSearchParams(location.search).get(key)?.split(',')[d] === v",
            arg=[f"z{side}", int(dim), f"{slider_values(page, side)[dim]:.2f}"],
        )
    paints = page.evaluate("window.__latentPaints")
    assert {p["model"] for p in paints} == {"my-conv-vae", "fashion-vae"}


def test_a_random_image_is_encoded_by_both_and_moves_each_models_sliders(page, server):
    page.goto(PAIR)
    wait_painted(page, "my-conv-vae")
    page.click("#random-image")  # from fashion-vae's test split, the one model with images
    page.wait_for_function("new URLSearchParams(location.search).get('index') !== null")
    index = int(parse_qs(urlparse(page.url).query)["index"][0])
    for side, model in (("a", "my-conv-vae"), ("b", "fashion-vae")):
        page.wait_for_function(
            "([side, text]) => (document.querySelector(`#${side}-encode-result .encoded-picture`)"
            "?.textContent || '').includes(text)",
            arg=[side, f"test image {index:,}:"],
        )
        # the server's encoding of that garment by this model, asked apart from the page
        own = httpx.get(
            f"{server}/ui/{model}/encode-picture", params={"source": "fashion-vae", "index": index}
        ).text
        mu = mu_of(page, side)
        np.testing.assert_allclose(mu, encoded_mu(own), atol=1e-6)
        # and the model's sliders moved to it (two decimals, within its ±3)
        want = [max(-3.0, min(3.0, round(v, 2))) for v in mu]
        page.wait_for_function(
            "([side, want]) => Array.from(document.querySelectorAll(`#${side}-explorer "
            "input[type=range][data-dim]`)).every(e => Math.abs(Number(document.getElementById("
            "e.id + '-value').textContent) - want[Number(e.dataset.dim)]) < 0.006)",
            arg=[side, want],
        )


def encoded_mu(fragment: str) -> list[float]:
    return json.loads(html.unescape(re.search(r'data-mu="([^"]+)"', fragment).group(1)))


def test_an_upload_is_encoded_by_both_each_at_its_own_size(page, server):
    rng = np.random.default_rng(3)
    picture = (rng.random((40, 40)) > 0.7).astype(np.uint8) * 255
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG")
    data = buf.getvalue()
    page.goto(PAIR)
    wait_painted(page, "fashion-vae")
    page.set_input_files(
        "#compare-upload-file",
        files=[{"name": "dots.png", "mimeType": "image/png", "buffer": data}],
    )
    for side, model, size in (("a", "my-conv-vae", 64), ("b", "fashion-vae", 28)):
        page.wait_for_function(
            "([side, size]) => { const img = document.querySelector(`#${side}-encode-result "
            ".encoding img`); return img && img.alt.startsWith(`the ${size}×${size} input`); }",
            arg=[side, size],
        )
        want = httpx.post(
            f"{server}/api/models/{model}/encode",
            files={"file": ("dots.png", data, "image/png")},
            data={"fit": "false"},
        ).json()["mu"]
        np.testing.assert_allclose(mu_of(page, side), want, atol=1e-5)
    assert "index" not in parse_qs(urlparse(page.url).query)  # no dataset image is named now
