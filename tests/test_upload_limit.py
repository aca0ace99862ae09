"""Every route that takes an image upload reads it the one way (app/web/uploads.py): a file over
the upload limit is refused with the same message, naming the limit, whichever route it was
sent to; one of exactly the limit is read."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings

LIMIT = 1000
TOO_BIG = "file is larger than the upload limit of 1,000 bytes"


@pytest.fixture(scope="module")
def small_client(trained, tmp_path_factory):
    """The tiny models behind an upload limit of 1,000 bytes."""
    root = tmp_path_factory.mktemp("served-small-uploads")
    for name in ("tiny-ae", "tiny-vae"):
        shutil.copytree(trained[name], root / name)
    with TestClient(create_app(Settings(checkpoints_dir=root, max_upload_bytes=LIMIT))) as c:
        yield c


def square_png(size: int) -> bytes:
    """A white square on black, as PNG bytes padded with zeros after its end to `size` bytes
    (a decoder stops at the PNG's end chunk)."""
    pixels = np.zeros((64, 64), np.uint8)
    pixels[24:40, 24:40] = 255
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    data = buf.getvalue()
    assert len(data) <= size
    return data + b"\0" * (size - len(data))


def upload(size: int) -> dict:
    return {"file": ("x.png", square_png(size), "image/png")}


@pytest.mark.parametrize("operation", ["encode", "compress", "denoise"])
def test_an_upload_over_the_limit_gets_the_same_413_from_every_api_route(small_client, operation):
    r = small_client.post(f"/api/models/tiny-vae/{operation}", files=upload(LIMIT + 1))
    assert r.status_code == 413, r.text
    assert r.json()["detail"] == TOO_BIG


@pytest.mark.parametrize("operation", ["encode", "compress", "denoise"])
def test_an_upload_of_exactly_the_limit_is_read(small_client, operation):
    r = small_client.post(f"/api/models/tiny-vae/{operation}", files=upload(LIMIT))
    assert r.status_code == 200, r.text


def test_the_pages_say_the_same_of_an_upload_over_the_limit(small_client):
    # url → (the rest of the form, the field the file goes in, status, message)
    pages = {
        "/ui/tiny-vae/encode": ({}, "file", 422, TOO_BIG),
        "/ui/tiny-vae/compress": ({"source": "upload"}, "file", 413, TOO_BIG),
        "/ui/denoise": ({"a": "tiny-vae", "b": "tiny-ae"}, "file", 422, TOO_BIG),
        "/ui/tiny-vae/interpolate": (
            {"index_b": 0},
            "file_a",
            422,
            "image A is larger than the upload limit of 1,000 bytes",
        ),
    }
    for url, (form, field, status, message) in pages.items():
        r = small_client.post(url, data=form, files={field: upload(LIMIT + 1)["file"]})
        assert r.status_code == status, (url, r.status_code)
        assert message in r.text, url
