"""A person's photo, fitted to the form of a model's data: a shoe on a white table becomes what a
Fashion-MNIST model was shown, a grey shoe, bright, centred on black, filling the frame.

Each dataset with a known form is one row of FORMS, built the way its makers describe:
- Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): trim the background, resize the longest edge
  to 28, sharpen, extend to 28×28 with the object at the centre, negate the intensities, convert
  to 8-bit grey. Our 32×32 conv models pad that with 2 black pixels a side (app/data/fashion_mnist).
- MNIST (LeCun et al. 1998): each digit size-normalised into a 20×20 box keeping its aspect
  ratio, then placed in 28×28 with its centre of mass at the centre. disentangling-vae's models
  (the imported disvae-*-mnist) see that scaled to 32×32 (`transforms.Resize(32)`), not padded.

A photo is fitted in the same steps, each one reported in words with its numbers: grey; the
background judged from the border (light → negated, dark → kept); everything within a margin of
the border's level made black; cropped to the object's box; resized (longest side to the form's
box, with anti-aliasing); centred (by box or centre of mass); brought to the model's side; the
brightest part stretched to white. Fashion-MNIST's sharpening is left out (a small change on
the outlines, for one more step to explain). An image already in the data's form (one of the
dataset's own, say) is used as it is: fitting it again would cut its faint edges and move it.
numpy and PIL only, no randomness: the same photo always gives the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter

WORKING_SIDE = 1024  # larger photos are box-reduced by a whole factor first: 28 pixels need no more
BORDER_FRACTION = 0.02  # the border ring is 2% of the shorter side (at least 1 pixel) wide
MIN_MARGIN = 32.0  # grey levels above the background that count as object, at the least...
NOISE_MARGIN = 4.0  # ...or 4 robust σ of the border's noise, if that is more (JPEG, sensor noise)
BRIGHT_PERCENTILE = 99.0  # "the brightest part" (a few hot pixels do not set the white point)
# An image already in a form's data is used as it is. What "already" allows was measured on the
# 10,000 Fashion-MNIST test images: every one's border is commonest at 0 and its brightest pixel
# 254 or 255; its box's longest side is 28, or 26..27 where a faint edge rounded to 0 (167
# images); its box is centred to half a pixel, or a whole one (16 images). Fitting them again
# (the background's margin made black, the box cut at that margin and resized, the 99th
# percentile stretched to white) changed them by up to 255 levels and fashion-vae's μ by up to
# 6.2. MNIST's digits (not at hand to measure) were size-normalised and centred alike.
FORM_SIZE_SLACK = 2  # the box's longest side may fall this short of (or exceed) the form's
FORM_CENTRE_SLACK = 1.0  # pixels between the box's (or mass's) centre and the field's
FORM_WHITE = 254  # the brightest pixel at least this


@dataclass(frozen=True)
class PhotoForm:
    """How a dataset's images were made from photos, as far as fitting an upload needs."""

    dataset: str  # the name models carry in their description
    field: int  # the side of the dataset's own images
    box: int  # the object's longest side within the field
    centre: Literal["box", "mass"]  # centred by its bounding box or by its centre of mass
    larger: Literal["pad", "scale"]  # how a model with a larger side saw the field


FORMS = {
    form.dataset: form
    for form in (
        PhotoForm("fashion-mnist", field=28, box=28, centre="box", larger="pad"),
        PhotoForm("mnist", field=28, box=20, centre="mass", larger="scale"),
    )
}


def form_of(dataset: str) -> PhotoForm | None:
    """The photo form of a model's dataset, or None where uploads are used as they are."""
    return FORMS.get(dataset)


def fit_photo(im: Image.Image, size: int, form: PhotoForm) -> tuple[np.ndarray | None, list[str]]:
    """A decoded photo → (size, size) uint8 grey in `form`, and the steps taken, in words. None in
    place of the pixels when no object stands out from the background (the caller then resizes the
    photo plainly); the steps then end with why."""
    grey, steps = _grey(im)
    as_is = _as_in_form(grey, size, form)
    if as_is is not None:
        steps.append(as_is)
        if grey.shape != (size, size):
            grey = np.clip(np.round(_to_side(grey.astype(np.float64), size, form, steps)), 0, 255)
        return grey.astype(np.uint8), steps
    h, w = grey.shape
    factor = max(1, math.ceil(max(h, w) / WORKING_SIDE))
    if factor > 1:
        grey = np.asarray(Image.fromarray(grey).reduce(factor), dtype=np.uint8)
        steps.append(f"reduced {factor}× to {grey.shape[1]}×{grey.shape[0]} to find the object")
    x = grey.astype(np.float64)

    border = _border(x)
    level = float(np.median(border))
    if level >= 128:
        x = 255.0 - x
        border = 255.0 - border
        steps.append(
            f"background light (border median {level:.0f}): inverted, object bright on dark"
        )
    else:
        steps.append(f"background dark (border median {level:.0f}): kept")
    ground = float(np.median(border))
    noise = 1.4826 * float(np.median(np.abs(border - ground)))  # robust σ from the MAD
    threshold = ground + max(MIN_MARGIN, NOISE_MARGIN * noise)

    # isolated noisy pixels above the threshold would stretch the box: a 3×3 median drops them
    above = Image.fromarray(((x > threshold) * 255).astype(np.uint8))
    mask = np.asarray(above.filter(ImageFilter.MedianFilter(3))) > 0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        steps.append(
            f"no object found: nothing stands out from the background (level {ground:.0f}, "
            f"threshold {threshold:.0f}); the photo was resized plainly instead"
        )
        return None, steps
    steps.append(
        f"background removed: levels up to {threshold:.0f} (the border's {ground:.0f} + "
        f"{threshold - ground:.0f}) made black"
    )
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = np.clip(x[top:bottom, left:right] - threshold, 0, None)
    ch, cw = crop.shape
    steps.append(
        f"cropped to the object's {cw * factor}×{ch * factor} box at "
        f"({left * factor}, {top * factor})"
    )

    longest = max(ch, cw)
    nh, nw = (max(1, round(n * form.box / longest)) for n in (ch, cw))
    small = np.asarray(
        Image.fromarray(crop.astype(np.float32)).resize((nw, nh), Image.Resampling.LANCZOS)
    ).clip(0, None)
    steps.append(f"resized to {nw}×{nh}")

    field = np.zeros((form.field, form.field), dtype=np.float64)
    if form.centre == "box":
        # an odd pixel left over goes above and left: Fashion-MNIST's own images have it there
        # (1,921 of the 2,033 test images with an odd number of rows left over, 3,224 of 3,234
        # with columns); placed below and right instead, fashion-vae's μ of a test image pasted
        # on a photo lay a median 1.22 from its μ of the image itself, 0.62 placed so
        y0, x0 = (form.field - nh + 1) // 2, (form.field - nw + 1) // 2
        steps.append(f"centred on {form.field}×{form.field} by its box")
    else:
        cy, cx = _centre_of_mass(small)
        middle = (form.field - 1) / 2
        y0 = min(max(math.floor(middle - cy + 0.5), 0), form.field - nh)
        x0 = min(max(math.floor(middle - cx + 0.5), 0), form.field - nw)
        steps.append(
            f"centred on {form.field}×{form.field} by its centre of mass "
            f"({x0 + cx:.1f}, {y0 + cy:.1f})"
        )
    field[y0 : y0 + nh, x0 : x0 + nw] = small
    out = _to_side(field, size, form, steps)

    bright = float(np.percentile(out[out > 0], BRIGHT_PERCENTILE)) if (out > 0).any() else 0.0
    if bright <= 0:
        steps.append("no object left after resizing; the photo was resized plainly instead")
        return None, steps
    out = out * (255.0 / bright)
    steps.append(f"contrast stretched: its brightest part ({bright:.0f} of 255) made white")
    return np.clip(np.round(out), 0, 255).astype(np.uint8), steps


def _grey(im: Image.Image) -> tuple[np.ndarray, list[str]]:
    """Grey levels (H, W) uint8. Transparent pixels take the level opposite the opaque object's
    (white behind a dark object, black behind a light one), so that the object stands out."""
    steps = [f"converted to grey from {im.mode}"] if im.mode not in ("L", "1") else []
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        grey = np.asarray(rgba.convert("L"), dtype=np.float64)
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float64) / 255.0
        opaque = alpha > 0.5
        if opaque.any() and not opaque.all():
            behind = 255.0 if np.median(grey[opaque]) < 128 else 0.0
            grey = grey * alpha + behind * (1 - alpha)
            steps.append(f"transparent pixels made {'white' if behind else 'black'}")
        return np.clip(np.round(grey), 0, 255).astype(np.uint8), steps
    return np.asarray(im.convert("L"), dtype=np.uint8), steps


def _as_in_form(grey: np.ndarray, size: int, form: PhotoForm) -> str | None:
    """Why `grey` is already as the form's data are, in words, or None where it is not: the
    field's side (or the model's, padded as its data were), a black ground, the object's box of
    the form's size and centred (by box or by mass), its brightest pixel white."""
    field = grey
    if grey.shape == (size, size) and size > form.field and form.larger == "pad":
        before = (size - form.field) // 2
        field = grey[before : before + form.field, before : before + form.field]
        if grey.sum(dtype=np.int64) != field.sum(dtype=np.int64):
            return None  # the padding is not all black
    if field.shape != (form.field, form.field) or field.max() < FORM_WHITE:
        return None
    if np.bincount(_border(field)).argmax() != 0:
        return None
    rows, cols = np.flatnonzero(field.any(axis=1)), np.flatnonzero(field.any(axis=0))
    h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    if abs(max(h, w) - form.box) > FORM_SIZE_SLACK:
        return None
    if form.centre == "box":
        cy, cx = rows[0] + (h - 1) / 2, cols[0] + (w - 1) / 2
    else:
        cy, cx = _centre_of_mass(field.astype(np.float64))
    middle = (form.field - 1) / 2
    if max(abs(cy - middle), abs(cx - middle)) > FORM_CENTRE_SLACK:
        return None
    return (
        f"already in the data's form ({grey.shape[1]}×{grey.shape[0]}, black ground, its {w}×{h} "
        f"box centred by its {'box' if form.centre == 'box' else 'centre of mass'}, brightest "
        f"{field.max()}): used as it is"
    )


def _border(x: np.ndarray) -> np.ndarray:
    """The pixels of the ring along the image's edges, flattened."""
    h, w = x.shape
    r = max(1, round(min(h, w) * BORDER_FRACTION))
    if 2 * r >= min(h, w):
        return x.ravel()
    return np.concatenate(
        [x[:r].ravel(), x[-r:].ravel(), x[r:-r, :r].ravel(), x[r:-r, -r:].ravel()]
    )


def _centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted centre, in pixel indices."""
    total = a.sum()
    ys, xs = np.indices(a.shape)
    return float((ys * a).sum() / total), float((xs * a).sum() / total)


def _to_side(field: np.ndarray, size: int, form: PhotoForm, steps: list[str]) -> np.ndarray:
    """The dataset's field brought to the model's side, as the model's own data was."""
    if size == form.field:
        return field
    if size > form.field and form.larger == "pad":
        before = (size - form.field) // 2
        steps.append(f"padded with black to {size}×{size}, as the model's data was")
        return np.pad(field, ((before, size - form.field - before),) * 2)
    resample = Image.Resampling.BILINEAR if size > form.field else Image.Resampling.BOX
    scaled = Image.fromarray(field.astype(np.float32)).resize((size, size), resample)
    steps.append(f"scaled to {size}×{size}, as the model's data was")
    return np.asarray(scaled, dtype=np.float64).clip(0, None)
