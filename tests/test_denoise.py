"""The denoise view: the corruption asked for is the one applied (reproducibly), the numbers are
the images' own, painted masks hide exactly their pixels, and every bad request is named."""

from __future__ import annotations

import base64
import io
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.checkpoints import ModelCard
from app.data.corruption import MASK_FILL
from app.data.ground_truth import DSPRITES
from app.main import create_app
from app.settings import Settings
from app.studies.denoise import mask_hex, parse_mask
from app.studies.quality import PSNR_CAP, psnr, ssim
from app.web.denoise import default_pair

URL = "/api/models/tiny-ae/denoise"


def pixels(data_url: str) -> np.ndarray:
    png = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64) / 255


def as_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)[None, None]


def test_the_numbers_are_those_of_the_images_returned(client):
    r = client.get(URL, params={"index": 4242, "noise": "gaussian", "level": 0.3, "seed": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    clean, noisy, out = (pixels(body[k]) for k in ("clean_png", "corrupted_png", "output_png"))
    assert np.array_equal(clean, DSPRITES.image(4242)[0])
    assert clean.shape == noisy.shape == out.shape == (64, 64)
    assert abs(float(psnr(as_tensor(noisy), as_tensor(clean))) - body["before"]["psnr"]) < 1e-3
    assert abs(float(ssim(as_tensor(out), as_tensor(clean))) - body["after"]["ssim"]) < 1e-4
    # σ = 0.3 Gaussian noise on a binary image: about 11–12 dB after clipping
    assert 9 < body["before"]["psnr"] < 14 and body["before"]["ssim"] < 0.5


def test_the_seed_makes_the_noise_and_level_zero_is_no_noise(client):
    def corrupted(seed, level=0.2, noise="salt_pepper"):
        r = client.get(URL, params={"index": 7, "noise": noise, "level": level, "seed": seed})
        assert r.status_code == 200, r.text
        return pixels(r.json()["corrupted_png"]), r.json()

    a, _ = corrupted(1)
    b, _ = corrupted(1)
    c, _ = corrupted(2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    flipped = (a != pixels(client.get(URL, params={"index": 7}).json()["clean_png"])).mean()
    assert 0.03 < flipped < 0.2  # about half of the 20% hit pixels change (the rest already were)
    same, body = corrupted(1, level=0.0, noise="gaussian")
    assert body["before"]["psnr"] == PSNR_CAP and body["before"]["ssim"] == pytest.approx(1.0)


def test_a_painted_mask_hides_exactly_its_pixels(client):
    mask = np.zeros((1, 1, 64, 64), dtype=bool)
    mask[..., 20:40, 10:30] = True
    text = mask_hex(mask)
    assert len(text) == 1024 and np.array_equal(parse_mask(text, 64), mask)
    r = client.get(URL, params={"index": 99, "noise": "drawn", "mask": text})
    assert r.status_code == 200, r.text
    clean, noisy = pixels(r.json()["clean_png"]), pixels(r.json()["corrupted_png"])
    hidden = mask[0, 0]
    assert np.allclose(noisy[hidden], round(MASK_FILL * 255) / 255)
    assert np.array_equal(noisy[~hidden], clean[~hidden])


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"index": 1, "noise": "blur"}, 422, "unknown noise 'blur': choose from gaussian"),
        ({"index": 1, "noise": "gaussian", "level": 0.9}, 422, "gaussian level must be in 0..0.5"),
        ({"index": 1, "noise": "drawn"}, 422, "noise 'drawn' needs a mask"),
        ({"index": 1, "noise": "drawn", "mask": "ff"}, 422, "mask must be 1024 hex digits"),
        ({"index": 1, "noise": "drawn", "mask": "zz" * 512}, 422, "mask must be hex digits"),
        ({"index": 737280}, 422, "dSprites index must be in 0..737279"),
    ],
)
def test_bad_requests_name_the_problem(client, params, status, message):
    r = client.get(URL, params=params)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_unknown_model_is_a_404(client):
    r = client.get("/api/models/nope/denoise", params={"index": 1})
    assert r.status_code == 404 and "unknown model 'nope'" in r.json()["detail"]


def test_an_uploaded_image_is_denoised_too(client):
    im = Image.fromarray((DSPRITES.image(500)[0] * 255).astype(np.uint8))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    files = {"file": ("s.png", buf.getvalue(), "image/png")}
    r = client.post(URL, files=files, data={"noise": "mask", "level": 0.3, "seed": 3})
    assert r.status_code == 200, r.text
    assert np.array_equal(pixels(r.json()["clean_png"]), DSPRITES.image(500)[0])
    r = client.post(URL, files={"file": ("s.txt", b"hello", "text/plain")})
    assert r.status_code == 422 and "file is not an image" in r.json()["detail"]


def test_the_page_shows_both_models_and_the_partial_follows_the_form(client):
    page = client.get("/denoise", params={"index": 11, "noise": "gaussian", "level": 0.2})
    assert page.status_code == 200, page.text
    html = page.text
    assert html.count('class="pixel"') == 4  # clean, corrupted, two answers
    assert 'data-model="tiny-ae"' in html and 'data-model="tiny-vae"' in html
    assert 'id="mask-canvas"' in html and "/static/denoise.js" in html
    form = {"a": "tiny-vae", "b": "tiny-ae", "index": 12, "noise": "salt_pepper", "level": 0.1}
    r = client.post("/ui/denoise", data=form)
    assert r.status_code == 200, r.text
    assert r.headers["HX-Replace-Url"].startswith("/denoise?a=tiny-vae&b=tiny-ae&index=12")
    assert r.text.index('data-model="tiny-vae"') < r.text.index('data-model="tiny-ae"')
    r = client.post("/ui/denoise", data={**form, "level": 0.8})
    assert r.status_code == 422 and 'class="error"' in r.text
    assert "salt_pepper level must be in 0..0.3, got 0.8" in r.text
    assert client.get("/denoise", params={"a": "nope"}).status_code == 404


def test_the_default_pair_is_a_denoiser_beside_the_plain_vae():
    def ckpt(kind, beta=1.0, denoising=False, objective="beta", channels=1):
        card = {"denoising": {"noises": []}} if denoising else {}
        config = SimpleNamespace(kind=kind, beta=beta, objective=objective, channels=channels,
                                 image_size=64)  # fmt: skip
        return SimpleNamespace(description=config, card=ModelCard.from_json(card))

    registry = {"gan": ckpt("vae", objective="vaegan"), "ae": ckpt("ae"), "beta": ckpt("vae", 4.0),
                "vae": ckpt("vae"), "dae": ckpt("ae", denoising=True)}  # fmt: skip
    assert default_pair(registry) == ("dae", "vae")
    del registry["dae"]
    assert default_pair(registry) == ("ae", "vae")
    del registry["vae"]
    assert default_pair(registry) == ("ae", "beta")
    assert default_pair({"beta": registry["beta"]}) == ("beta", "beta")
    # never a pair that cannot share one image: a plain VAE of colour images is passed over
    registry["colour"] = ckpt("vae", channels=3)
    assert default_pair({"colour": registry["colour"], **registry}) == ("ae", "beta")
    assert default_pair({"ae": registry["ae"], "colour": registry["colour"]}) == ("ae", "ae")


@pytest.fixture(scope="module")
def no_denoiser(colour_beside_tiny):
    """The tiny dSprites models beside a colour VAE: no denoising model is served, and the
    plain VAE cannot take the AE's images."""
    with TestClient(create_app(Settings(checkpoints_dir=colour_beside_tiny))) as c:
        yield c


def test_without_a_denoiser_the_page_opens_on_two_models_that_take_one_image(no_denoiser):
    r = no_denoiser.get("/denoise")
    assert r.status_code == 200, r.text
    assert 'class="error"' not in r.text
    assert "No denoising model is served" in r.text
    selected = re.findall(r'<option value="([^"]+)" selected>\1</option>', r.text)
    assert selected == ["tiny-ae", "tiny-vae"]
    # the same page as naming that pair
    named = no_denoiser.get("/denoise", params={"a": "tiny-ae", "b": "tiny-vae"})
    assert named.status_code == 200 and named.text == r.text
    assert 'data-model="tiny-ae"' in r.text and 'data-model="tiny-vae"' in r.text
