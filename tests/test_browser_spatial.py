"""A spatial latent's explore page in Chromium: an AutoencoderKL saved by diffusers itself (random
weights, 64×64 images, 4 channels over 8×8 cells) served from a checkpoints folder; every channel's
sweep loaded before a grab, a drag painting from memory the z an independent calculation gives,
a painted region confining the slider to its cells, an upload encoded as the API encodes it."""

from __future__ import annotations

import io
import json
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest
from PIL import Image

from app.settings import Settings
from tests.browser_server import live_server, wait_painted, wait_repainted

diffusers = pytest.importorskip("diffusers")

NAME = "tiny-kl"
C, H, W = 4, 8, 8


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import torch

    root = tmp_path_factory.mktemp("spatial")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8, 8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=C, norm_num_groups=4,
        sample_size=64,
    )  # fmt: skip
    vae.save_pretrained(str(root / NAME))
    (root / NAME / "card.json").write_text(json.dumps({"dataset": "shapes3d"}))
    with live_server(Settings(checkpoints_dir=root, cache_dir=root / "cache")) as url:
        yield url


@pytest.fixture
def page(browser, server):
    context = browser.new_context(
        base_url=server, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    pg = context.new_page()
    errors: list[str] = []
    failed: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    yield pg
    context.close()
    assert errors == [] and failed == []


def shown_z(url: str) -> np.ndarray:
    return np.array([float(v) for v in parse_qs(urlparse(url).query)["z"][0].split(",")])


def start_z(page) -> np.ndarray:
    return np.array([float(v) for v in page.get_attribute("#spatial", "data-z").split(",")])


def drag_channel(page, channel: int, fraction: float) -> None:
    """Press on the thumb (at 0, the middle) of a channel's slider and move right by `fraction`
    of its width; the button stays held."""
    box = page.locator(f"#channel{channel}").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + box["width"] * fraction, y, steps=8)


def test_a_drag_paints_from_the_sweep_the_z_of_the_channel_moved_everywhere(page):
    page.goto(f"/?model={NAME}")
    first = wait_painted(page, NAME)
    assert np.allclose(shown_z(first), start_z(page))
    page.wait_for_function(f"window.__latentSweeps.length >= {C}")
    assert sorted(s["channel"] for s in page.evaluate("window.__latentSweeps")) == list(range(C))
    # the channel images are drawn from z: not blank
    pixels = page.eval_on_selector('canvas.channel[data-channel="0"]', "c => c.toDataURL()")
    assert pixels != page.eval_on_selector('canvas.channel[data-channel="1"]', "c => c.toDataURL()")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/decode.png" in r.url else None)
    page.evaluate("window.__latentPaints.length = 0")
    drag_channel(page, 2, 0.3)
    during = wait_repainted(page, NAME, first)
    value = float(page.locator("#channel2").input_value())
    page.mouse.up()
    assert value > 0.5
    expected = start_z(page).reshape(C, H * W)
    expected[2] += value  # the whole image: every cell of channel 2
    assert np.allclose(shown_z(during), expected.ravel(), atol=1e-9)
    paints = page.evaluate("window.__latentPaints")
    assert paints and all(p["cached"] for p in paints) and requests == []


def test_a_painted_region_confines_the_slider_to_its_cells(page):
    page.goto(f"/?model={NAME}")
    first = wait_painted(page, NAME)
    box = page.locator("canvas.region").bounding_box()
    cell = box["width"] / W
    # paint cells (0, 0) → (0, 2) along the top row: from the whole image, painting starts anew
    page.mouse.move(box["x"] + cell * 0.5, box["y"] + cell * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + cell * 2.5, box["y"] + cell * 0.5, steps=6)
    page.mouse.up()
    assert "Region: 3 of 64 cells" in page.locator("#region-line").inner_text()
    # every channel's sweep again, over the region (cells 0-2: the first three bits)
    page.wait_for_function(
        f"window.__latentSweeps.filter((s) => s.mask === 'e{'0' * 15}').length >= {C}"
    )
    drag_channel(page, 1, -0.3)
    during = wait_repainted(page, NAME, first)
    value = float(page.locator("#channel1").input_value())
    page.mouse.up()
    assert value < -0.5
    expected = start_z(page).reshape(C, H * W)
    expected[1, [0, 1, 2]] += value
    assert np.allclose(shown_z(during), expected.ravel(), atol=1e-9)


def test_an_upload_is_encoded_as_the_api_encodes_it(page, server, tmp_path):
    page.goto(f"/?model={NAME}")
    first = wait_painted(page, NAME)
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[16:48, 8:40] = (230, 40, 40)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    file = tmp_path / "red.png"
    file.write_bytes(buf.getvalue())
    page.set_input_files("#upload-file", str(file))
    after = wait_repainted(page, NAME, first)
    mu = httpx.post(f"{server}/api/models/{NAME}/encode", files={"file": buf.getvalue()}).json()
    expected = np.clip(np.round(np.array(mu["mu"]) * 100) / 100, -7, 7)
    assert np.allclose(shown_z(after), expected, atol=1e-9)
