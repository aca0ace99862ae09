"""An image of one's own placed on a t-SNE map in Chromium (/map's "Place an image"): the file is
encoded by the model, its μ goes into the sliders, and the marker lands where the layout's own
transform puts that z (GET marker.place answers the same point for it), not at a nearest-
neighbour average."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from app.data import dsprites
from app.web.latent_map import layout_jobs

MODEL = "dsprites-beta-vae"
N = 300


@pytest.fixture(scope="module")
def server(shipped_server):
    return shipped_server


def sprite_png(index: int) -> bytes:
    pixels = dsprites.render(dsprites.index_to_classes(index))[0] * 255
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_an_uploaded_image_is_placed_by_the_layouts_own_transform(browser, server):
    url = f"{server}/api/models/{MODEL}/map"
    first = httpx.get(url, params={"n": N, "method": "tsne"}, timeout=60)
    assert first.status_code in (200, 202)
    layout_jobs(None).join()  # the live server's background t-SNE, in this process
    the_map = httpx.get(url, params={"n": N, "method": "tsne"}, timeout=60).json()
    assert the_map["marker"]["kind"] == "transform"

    page = browser.new_context(base_url=server, bypass_csp=True).new_page()
    page.goto(f"/map?model={MODEL}&n={N}&method=tsne")
    page.evaluate("() => window.latentMapView.ready")
    index = int(the_map["indices"][17])
    page.set_input_files(
        "#map-upload-file", files=[{"name": "sprite.png", "mimeType": "image/png",
                                    "buffer": sprite_png(index)}],
    )  # fmt: skip
    page.wait_for_function("() => document.getElementById('map-upload').dataset.mu")
    mu = [float(v) for v in page.get_attribute("#map-upload", "data-mu").split(",")]
    encoded = httpx.post(
        f"{server}/api/models/{MODEL}/encode", files={"file": ("s.png", sprite_png(index))}
    ).json()["mu"]
    np.testing.assert_allclose(mu, encoded, atol=1e-6)
    # the marker: where /place's transform puts the sliders' z (μ in hundredths)
    z_text = ",".join(f"{v:.4f}" for v in np.round(np.array(mu) * 100) / 100)
    page.wait_for_function(
        "(z) => document.getElementById('map-overlay').dataset.markerZ === z", arg=z_text
    )
    assert page.get_attribute("#map-overlay", "data-marker-how") == "transform"
    place = httpx.get(
        f"{server}/api/models/{MODEL}/map/place",
        params={"n": N, "method": "tsne", "z": z_text},
    ).json()
    assert place["how"] == "transform"
    shown = [float(v) for v in page.get_attribute("#map-overlay", "data-marker").split(",")]
    np.testing.assert_allclose(shown, [place["x"], place["y"]], atol=1e-6)
    # and it lands among the map's points near the same image's own point
    points = np.array(the_map["points"])
    own = points[17]
    spread = np.linalg.norm(points - points.mean(axis=0), axis=1).mean()
    assert np.linalg.norm(np.array(shown) - own) < spread
