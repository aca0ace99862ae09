"""Whatever people drag into the explorer: every odd but real image is encoded sensibly, every
non-image or broken one gets a 4xx whose message names the problem, never a 500."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from app.data.dsprites import render

URL = "/api/models/tiny-vae/encode"


def sprite(size: int = 64) -> Image.Image:
    """A dSprites square, white on black, resized to `size`."""
    im = Image.fromarray((render(np.array([[0, 5, 0, 16, 16]]))[0] * 255).astype(np.uint8))
    return im.resize((size, size), Image.Resampling.NEAREST)


def encoded(im: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def post(client, data: bytes, name: str = "x.png", mime: str = "image/png"):
    return client.post(URL, files={"file": (name, data, mime)})


def model_input(r) -> np.ndarray:
    """The 64×64 input the model saw, as the response shows it."""
    import base64

    png = base64.b64decode(r.json()["input_png"].split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.int16)


@pytest.fixture(scope="module")
def reference(client):
    r = post(client, encoded(sprite(), "PNG"))
    assert r.status_code == 200
    return model_input(r), r.json()["mu"]


ODD_BUT_FINE = {
    "16-bit grey PNG": lambda: encoded(
        Image.fromarray(np.asarray(sprite(), np.uint16) * 257), "PNG"
    ),
    "palette PNG": lambda: encoded(sprite().convert("P"), "PNG"),
    "RGB JPEG": lambda: encoded(sprite(256).convert("RGB"), "JPEG", quality=95),
    "CMYK JPEG": lambda: encoded(sprite(256).convert("CMYK"), "JPEG", quality=95),
    "RGBA PNG, transparent background": lambda: encoded(
        Image.merge("RGBA", [sprite()] * 3 + [sprite()]), "PNG"
    ),
    "large 640×640 PNG": lambda: encoded(sprite(640), "PNG"),
    "BMP": lambda: encoded(sprite(), "BMP"),
    "WebP": lambda: encoded(sprite(), "WEBP", lossless=True),
}


@pytest.mark.parametrize("kind", list(ODD_BUT_FINE))
def test_odd_but_real_images_encode_to_what_a_person_would_expect(client, reference, kind):
    r = post(client, ODD_BUT_FINE[kind]())
    assert r.status_code == 200, r.text
    seen, want = model_input(r), reference[0]
    # the same sprite, whatever the container: the model sees (nearly) the same 64×64 input
    assert np.abs(seen - want).mean() < 8, kind
    assert np.allclose(r.json()["mu"], reference[1], atol=0.5), kind


def test_exif_orientation_is_honoured(client):
    im = Image.new("L", (64, 64), 0)
    im.paste(255, (0, 0, 16, 64))  # a bar on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    r = post(
        client, encoded(im.convert("RGB"), "JPEG", exif=exif, quality=95), "p.jpg", "image/jpeg"
    )
    assert r.status_code == 200, r.text
    seen = model_input(r)
    assert seen[:16].mean() > 150 and seen[-16:].mean() < 50  # the bar is at the top, as shown


def test_an_animated_gif_uses_its_first_frame_and_says_so(client, reference):
    frames = [sprite(), Image.new("L", (64, 64), 0)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    r = post(client, data, "a.gif", "image/gif")
    assert r.status_code == 200, r.text
    assert r.json()["notes"]["frames"] == 2
    assert "first frame" in r.json()["notes"]["note"]
    assert np.abs(model_input(r) - reference[0]).mean() < 8


@pytest.mark.parametrize("size", [(1, 1), (10000, 1), (1, 3000)])
def test_degenerate_shapes_are_handled(client, size):
    r = post(client, encoded(Image.new("L", size, 200), "PNG"))
    assert r.status_code == 200, r.text
    assert model_input(r).shape == (64, 64)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares an enormous image (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


BAD = {
    "empty": (b"", "the file is empty"),
    "text": (b"just some notes\n", "file is not an image"),
    "HTML": (b"<!doctype html><html><body>hi</body></html>", "file is not an image"),
    "SVG": (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>',
        "file is not an image",
    ),
    "PDF": (b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF", "file is not an image"),
    "bomb": (png_declaring(30000, 30000), "image is 30000×30000, the limit is 40,000,000 pixels"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_files_get_a_422_that_names_the_problem(client, kind):
    data, message = BAD[kind]
    r = post(client, data, "innocent.png", "image/png")  # the name and type lie
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_images_are_called_truncated(client, fmt):
    data = encoded(sprite(256).convert("RGB"), fmt)
    r = post(client, data[: len(data) // 2])
    assert r.status_code == 422, r.text
    assert "truncated or corrupt" in r.json()["detail"]


def test_uploads_never_reach_the_disk_under_the_name_people_give(client, tmp_path, monkeypatch):
    """A file over Starlette's 1 MiB spool threshold goes to an anonymous temporary file; no
    endpoint writes it anywhere under its client-given name (which could be a path)."""
    import os
    import tempfile

    tmp, cwd = tmp_path / "tmp", tmp_path / "cwd" / "deeper"
    tmp.mkdir()
    cwd.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.chdir(cwd)
    checkpoints = client.app.state.settings.checkpoints_dir
    before = sorted(p.relative_to(checkpoints) for p in checkpoints.rglob("*"))

    noise = np.random.default_rng(0).integers(0, 256, (1100, 1100), dtype=np.uint8)
    data = encoded(Image.fromarray(noise), "PNG")
    assert len(data) > 1024 * 1024  # big enough to leave memory
    names = ["user-chosen-name.png", "../escaped-name.png", "../../escaped-too.png"]
    for name in names:
        assert post(client, data, name).status_code == 200
        r = client.post("/ui/tiny-vae/encode", files={"file": (name, data, "image/png")})
        assert r.status_code == 200, r.text
        r = client.post(
            "/ui/tiny-vae/interpolate",
            files={"file_a": (name, data, "image/png"), "file_b": (name, data, "image/png")},
        )
        assert r.status_code == 200, r.text

    written = [p.name for p in tmp_path.rglob("*")]
    assert not [w for w in written if "name" in w], written
    assert os.listdir(tmp) == []  # and the temporary copies are gone once answered
    assert sorted(p.relative_to(checkpoints) for p in checkpoints.rglob("*")) == before
