"""The interpolate, compress and denoise pages fit an uploaded photo to the data's form as the
explore page does: a checkbox, ticked by default, for a Fashion-MNIST (or MNIST) model and for
no other; ticked, the image each page encodes is app.imaging.load_upload's fitted photo, and the
steps are listed beside it; unticked, the plain centre-crop and resize."""

from __future__ import annotations

import base64
import html
import io
import re
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from PIL import Image, ImageOps

from app.imaging import load_upload
from app.photo_fit import form_of
from app.settings import Settings
from tests.test_photo_fit import photo, png

MODEL = "tiny-fashion-vae"  # MLP, 28×28, one channel
# the steps as the notes name them for the default photo (tests/test_photo_fit.py: SHOE)
STEPS = ("inverted", "cropped to the object's 241×121 box", "resized to 28×14", "centred on 28×28")


@pytest.fixture(scope="module")
def shoe() -> bytes:
    return png(photo())


def fitted_pixels(data: bytes) -> np.ndarray:
    """What the pages should encode with the switch on: load_upload with the data's form."""
    x, notes = load_upload(data, 28, 1, Settings().max_upload_pixels, form_of("fashion-mnist"))
    assert notes["fitted"] is True, notes
    return np.round(x[0].numpy() * 255).astype(np.uint8)


def plain_pixels() -> np.ndarray:
    """With it off: the photo grey, centre-cropped to a square and area-resampled to 28×28."""
    grey = photo().convert("L")
    return np.asarray(ImageOps.fit(grey, (28, 28), method=Image.Resampling.BOX))


def pixels(data_url: str) -> np.ndarray:
    raw = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("L"))


def img_src(html: str, marker: str) -> str:
    """The src of the <img> whose tag contains `marker`."""
    tags = [t for t in re.findall(r"<img [^>]*>", html) if marker in t]
    assert len(tags) == 1, f"{len(tags)} images with {marker!r} in the page"
    return re.search(r'src="([^"]+)"', tags[0]).group(1)


def assert_steps_listed(page: str) -> None:
    text = html.unescape(page)
    assert "Fitted to the data's form:" in text, "no fitting steps on the page"
    for words in STEPS:
        assert words in text, f"{words!r} missing from the page's notes"


def test_fitting_changes_what_the_photo_becomes():
    # else the comparisons below could not tell fitted from plain
    assert (np.abs(fitted_pixels(png(photo())).astype(int) - plain_pixels()) > 64).sum() > 50


# --- interpolate -----------------------------------------------------------------------------


def interpolate(client, data: bytes, **form):
    files = {"file_a": ("shoe.png", data, "image/png")}
    r = client.post(f"/ui/{MODEL}/interpolate", files=files, data={"index_b": 3, **form})
    assert r.status_code == 200, r.text
    return r


def test_interpolate_encodes_the_fitted_photo_and_lists_the_steps(fashion_client, shoe):
    r = interpolate(fashion_client, shoe, fit="true")
    seen = pixels(img_src(r.text, 'alt="image A as the model sees it"'))
    assert (seen == fitted_pixels(shoe)).all(), "end A is not the fitted photo"
    assert_steps_listed(r.text)
    # and the path starts at the model's μ of that image, as the encode API gives it
    z0 = parse_qs(urlparse(r.headers["HX-Replace-Url"]).query)["z0"][0]
    files = {"file": ("shoe.png", shoe, "image/png")}
    mu = fashion_client.post(f"/api/models/{MODEL}/encode", files=files).json()["mu"]
    assert [float(v) for v in z0.split(",")] == pytest.approx(mu, abs=6e-4)


def test_interpolate_without_the_box_ticked_resizes_plainly(fashion_client, shoe):
    r = interpolate(fashion_client, shoe)  # an unticked checkbox sends nothing
    seen = pixels(img_src(r.text, 'alt="image A as the model sees it"'))
    assert (seen == plain_pixels()).all(), "end A is not the plain resize"
    assert "Fitted to the data" not in r.text and "inverted" not in r.text


# --- compress --------------------------------------------------------------------------------


def compress_page(client, data: bytes, **form):
    files = {"file": ("shoe.png", data, "image/png")}
    r = client.post(f"/ui/{MODEL}/compress", files=files, data={"source": "upload", **form})
    assert r.status_code == 200, r.text
    return r


def test_compress_encodes_the_fitted_photo_and_lists_the_steps(fashion_client, shoe):
    r = compress_page(fashion_client, shoe, fit="true")
    seen = pixels(img_src(r.text, 'alt="the 28×28 image as the model sees it"'))
    assert (seen == fitted_pixels(shoe)).all(), "the compressed original is not the fitted photo"
    assert_steps_listed(r.text)


def test_compress_without_the_box_ticked_resizes_plainly(fashion_client, shoe):
    r = compress_page(fashion_client, shoe)
    seen = pixels(img_src(r.text, 'alt="the 28×28 image as the model sees it"'))
    assert (seen == plain_pixels()).all()
    assert "Fitted to the data" not in r.text


# --- denoise ---------------------------------------------------------------------------------


def denoise_page(client, data: bytes, **form):
    files = {"file": ("shoe.png", data, "image/png")}
    pair = {"a": MODEL, "b": "tiny-fashion-cvae", "noise": "gaussian", "level": "0.2"}
    r = client.post("/ui/denoise", files=files, data={**pair, **form})
    assert r.status_code == 200, r.text
    return r


def switch(html: str) -> str:
    """The fit switch the response redraws out of band."""
    match = re.search(r'<span id="denoise-fit" hx-swap-oob="true">(.*?)</span>', html, re.S)
    assert match, "no out-of-band fit switch in the response"
    return match.group(1)


def test_denoise_cleans_the_fitted_photo_and_lists_the_steps(fashion_client, shoe):
    r = denoise_page(fashion_client, shoe, fit="true", fit_offered="true")
    seen = pixels(img_src(r.text, 'id="clean-image"'))
    assert (seen == fitted_pixels(shoe)).all(), "the clean image is not the fitted photo"
    assert_steps_listed(r.text)
    assert "checked" in switch(r.text)


def test_denoise_without_the_box_ticked_resizes_plainly(fashion_client, shoe):
    r = denoise_page(fashion_client, shoe, fit_offered="true")  # shown, left unticked
    seen = pixels(img_src(r.text, 'id="clean-image"'))
    assert (seen == plain_pixels()).all()
    assert "Fitted to the data" not in r.text
    box = switch(r.text)
    assert 'id="denoise-fit-box"' in box and "checked" not in box, box


def test_denoise_fits_by_default_when_its_form_did_not_show_the_switch(fashion_client, shoe):
    # the page was drawn for models of data without a form, then the models were changed
    r = denoise_page(fashion_client, shoe)
    assert (pixels(img_src(r.text, 'id="clean-image"')) == fitted_pixels(shoe)).all()
    assert 'id="denoise-fit-box"' in switch(r.text) and "checked" in switch(r.text)


@pytest.mark.parametrize("route, image", [("compress", "original_png"), ("denoise", "clean_png")])
def test_the_upload_apis_fit_by_default_and_fit_false_turns_it_off(
    fashion_client, shoe, route, image
):
    files = {"file": ("shoe.png", shoe, "image/png")}
    on = fashion_client.post(f"/api/models/{MODEL}/{route}", files=files).json()
    off = fashion_client.post(
        f"/api/models/{MODEL}/{route}", files=files, data={"fit": "false"}
    ).json()
    assert on["fitted"] is True and off["fitted"] is False
    assert (pixels(on[image]) == fitted_pixels(shoe)).all()
    assert (pixels(off[image]) == plain_pixels()).all()
    assert any("inverted" in s for s in on["notes"]["fit"]) and "fit" not in off["notes"]


# --- the switch is offered where it means something -----------------------------------------


@pytest.mark.parametrize(
    ("url", "box"),
    [
        (f"/interpolate?model={MODEL}", "interp-fit"),
        (f"/compress?model={MODEL}", "compress-fit"),
        (f"/denoise?a={MODEL}&b=tiny-fashion-cvae", "denoise-fit-box"),
    ],
)
def test_a_fashion_models_page_offers_the_switch_ticked(fashion_client, url, box):
    page = fashion_client.get(url)
    assert page.status_code == 200, page.text
    tag = re.search(rf'<input [^>]*id="{box}"[^>]*>', page.text)
    assert tag and "checked" in tag.group(0), f"no ticked {box} on {url}"


@pytest.mark.parametrize(
    ("url", "box"),
    [
        ("/interpolate?model=tiny-vae", "interp-fit"),
        ("/compress?model=tiny-vae", "compress-fit"),
        ("/denoise?a=tiny-vae&b=tiny-ae", "denoise-fit-box"),
    ],
)
def test_a_dsprites_models_page_has_no_switch(client, url, box):
    page = client.get(url)
    assert page.status_code == 200, page.text
    assert f'id="{box}"' not in page.text and "fit_offered" not in page.text


def test_a_dsprites_upload_is_not_fitted_and_the_switch_stays_away(client, shoe):
    files = {"file": ("shoe.png", shoe, "image/png")}
    data = {"a": "tiny-vae", "b": "tiny-ae", "fit": "true"}
    r = client.post("/ui/denoise", files=files, data=data)
    assert r.status_code == 200, r.text
    assert switch(r.text).strip() == "" and "Fitted to the data" not in r.text
    body = client.post("/api/models/tiny-vae/compress", files=files, data={"fit": "true"}).json()
    assert body["fitted"] is False and "fit" not in body["notes"]
