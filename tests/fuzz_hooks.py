"""What /openapi.json names but a fuzzer cannot make by itself: an image file of each media type
the uploads take (app/web/openapi.py: IMAGE_TYPES). Schemathesis would otherwise send random
bytes as an "image/png" part and call the 422 that rightly refuses them a valid request refused.

Loaded by `schemathesis run` (schemathesis.toml names this file) and by tests/test_fuzz.py."""

from __future__ import annotations

import io

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image

FORMATS = {
    "image/png": ("PNG", ["L", "RGB", "RGBA"]),
    "image/jpeg": ("JPEG", ["L", "RGB"]),
    "image/gif": ("GIF", ["L", "P"]),
    "image/webp": ("WEBP", ["RGB", "RGBA"]),
    "image/bmp": ("BMP", ["L", "RGB"]),
}


@st.composite
def image_files(draw: st.DrawFn, media_type: str) -> bytes:
    """A small picture of random size, mode and pixels, encoded in `media_type`."""
    fmt, modes = FORMATS[media_type]
    width, height = draw(st.integers(1, 96)), draw(st.integers(1, 96))
    mode = draw(st.sampled_from(modes))
    seed = draw(st.integers(0, 2**32 - 1))
    channels = {"L": 1, "P": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), np.uint8)
    picture = Image.fromarray(pixels[..., 0] if channels == 1 else pixels).convert(mode)
    buf = io.BytesIO()
    picture.save(buf, format=fmt)
    return buf.getvalue()


for media_type in FORMATS:
    schemathesis.openapi.media_type(media_type, image_files(media_type))
