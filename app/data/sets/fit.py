"""Fitting one image to a model's input: grey or colour, and the model's side."""

from __future__ import annotations

import numpy as np
from PIL import Image

from app.data.sets.record import Fitting
from app.imaging import to_model_input


def fit_picture(im: Image.Image, fitting: Fitting) -> np.ndarray:
    """A decoded picture → (C, S, S) uint8: transparency onto black, grey or RGB, then resized
    (centre-cropped square, area-resampled: imaging.to_model_input, as every upload) or padded
    with black where it is no larger than the side."""
    mode = "L" if fitting.channels == 1 else "RGB"
    if im.mode == mode and im.size == (fitting.size, fitting.size):
        # already the model's size and mode (most of a data set made for it): no crop, resize or
        # conversion, each of which would copy it
        arr = np.asarray(im, dtype=np.uint8)
        return arr[None] if fitting.channels == 1 else arr.transpose(2, 0, 1)
    if fitting.method == "pad" and max(im.size) <= fitting.size:
        return pad(_convert(im, fitting.channels), fitting.size)
    return to_model_input(im, fitting.size, fitting.channels)


def fit_array(image: np.ndarray, fitting: Fitting) -> np.ndarray:
    """(C, H, W) uint8 as stored → (C, S, S) uint8; unchanged where it already fits."""
    c, h, w = image.shape
    if c == fitting.channels and h == w == fitting.size:
        return image
    if fitting.method == "pad" and c == fitting.channels and max(h, w) <= fitting.size:
        return pad(image, fitting.size)
    mode = "L" if c == 1 else "RGB"
    im = Image.fromarray(image[0] if c == 1 else image.transpose(1, 2, 0), mode)
    return fit_picture(im, fitting)


def _convert(im: Image.Image, channels: int) -> np.ndarray:
    """(C, H, W) uint8 at the picture's own size, converted as imaging.to_model_input does."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return arr[None].copy() if channels == 1 else arr.transpose(2, 0, 1).copy()


def pad(image: np.ndarray, size: int) -> np.ndarray:
    """(C, H, W) → (C, size, size), centred on black (an odd margin's extra pixel at the end)."""
    c, h, w = image.shape
    top, left = (size - h) // 2, (size - w) // 2
    out = np.zeros((c, size, size), dtype=image.dtype)
    out[:, top : top + h, left : left + w] = image
    return out


def native_array(im: Image.Image) -> np.ndarray:
    """A decoded picture as stored → (C, H, W) uint8, C = 1 for grey modes, else 3."""
    grey = im.mode in ("1", "L", "LA", "I", "I;16", "F")
    return _convert(im, 1 if grey else 3)
