"""Bytes ↔ tensors, in one place: upload decoding and validation, resizing, PNG/GIF encoding,
image grids."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from app.photo_fit import PhotoForm, fit_photo


class ImageInputError(ValueError):
    """An upload that cannot be used as an image, with a message that says why."""


# Pillow's own bomb check fires inside Image.open with a message that doesn't name the size; ours
# (load_upload) runs right after open, which reads only the header, and before any decoding.
Image.MAX_IMAGE_PIXELS = None


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) floats in [0, 1] → (B, H, W, C) uint8, rounded."""
    arr = images.detach().clamp(0, 1).mul(255).round().to(torch.uint8)
    return arr.permute(0, 2, 3, 1).cpu().numpy()


def _pil(arr: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 → a grey or RGB PIL image."""
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)


def png_bytes(image: torch.Tensor, scale: int = 1) -> bytes:
    """One image (C, H, W) in [0, 1] → PNG bytes, optionally enlarged with nearest-neighbour."""
    im = _pil(to_uint8(image[None])[0])
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)  # speed over a few bytes: 64×64 is tiny
    return buf.getvalue()


def grid(
    images: torch.Tensor, rows: int, cols: int, pad: int = 2, fill: float = 1.0
) -> torch.Tensor:
    """(rows·cols, C, H, W) → one (C, rows·(H+pad)+pad, cols·(W+pad)+pad) image, row-major."""
    n, c, h, w = images.shape
    if n != rows * cols:
        raise ValueError(f"grid of {rows}×{cols} needs {rows * cols} images, got {n}")
    out = torch.full((c, rows * (h + pad) + pad, cols * (w + pad) + pad), fill)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        out[:, y : y + h, x : x + w] = images[i]
    return out


def gif_bytes(frames: torch.Tensor, scale: int = 1, ms_per_frame: int = 120) -> bytes:
    """(N, C, H, W) in [0, 1] → an animated, looping GIF that plays forward then back."""
    arrs = to_uint8(frames)
    ims = [_pil(a) for a in arrs]
    if scale > 1:
        ims = [
            im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST) for im in ims
        ]
    ims = ims + ims[-2:0:-1]  # ping-pong
    buf = io.BytesIO()
    ims[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=ims[1:],
        duration=ms_per_frame,
        loop=0,
        optimize=False,
    )
    return buf.getvalue()


def load_upload(
    data: bytes, size: int, channels: int, max_pixels: int, form: PhotoForm | None = None
) -> tuple[torch.Tensor, dict[str, object]]:
    """Uploaded file bytes → the exact (C, size, size) tensor in [0, 1] a model sees, plus notes
    on what was done to it. With a `form` (app.photo_fit) the photo is fitted to it: notes
    `fitted` says whether it was, `fit` lists the steps; a photo in which no object is found is
    resized plainly. An image over `max_pixels` is refused from its header, before it is decoded.
    Raises ImageInputError with a message a person can act on."""
    if not data:
        raise ImageInputError("the file is empty")
    notes: dict[str, object] = {}
    try:
        opened = Image.open(io.BytesIO(data))  # reads the header only
        w, h = opened.size
        if w * h > max_pixels:
            raise ImageInputError(f"image is {w}×{h}, the limit is {max_pixels:,} pixels")
        if opened.format not in ("PNG", "JPEG", "GIF", "WEBP", "BMP"):
            raise ImageInputError(f"file is a {opened.format} image; upload a PNG or JPEG")
        notes["original_size"] = [w, h]
        notes["format"] = opened.format
        frames = getattr(opened, "n_frames", 1)
        if frames > 1:
            notes["frames"] = frames
            notes["note"] = "animated image: its first frame was used"
            opened.seek(0)
        im = ImageOps.exif_transpose(opened)
        im.load()
    except ImageInputError:
        raise
    except UnidentifiedImageError as e:
        raise ImageInputError("file is not an image (PNG or JPEG expected)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageInputError(f"image is truncated or corrupt ({e})") from e
    fitted = None
    if form is not None:
        fitted, notes["fit"] = fit_photo(im, size, form)
        notes["fitted"] = fitted is not None
    if fitted is not None:
        arr = np.repeat(fitted[None], channels, axis=0).astype(np.float32) / 255.0
    else:
        arr = to_model_input(im, size, channels).astype(np.float32) / 255.0
    return torch.from_numpy(arr), notes


def fit_image(image: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """One image (C, H, W) in [0, 1] → (channels, size, size) in [0, 1], fitted as an upload is
    (to_model_input: grey or RGB, centre-cropped, area-resampled, in whole 8-bit levels); the
    image itself where it already has that shape."""
    if tuple(image.shape) == (channels, size, size):
        return image
    fitted = to_model_input(_pil(to_uint8(image[None])[0]), size, channels)
    return torch.from_numpy(fitted.astype(np.float32) / 255.0)


def to_model_input(im: Image.Image, size: int, channels: int) -> np.ndarray:
    """A decoded picture → (C, size, size) uint8 as a model sees it: transparent pixels become
    background (black, as in dSprites), grey or RGB as the model takes, centre-cropped to a
    square and area-resampled."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    im = im.convert("L" if channels == 1 else "RGB")
    im = ImageOps.fit(im, (size, size), method=Image.Resampling.BOX)
    arr = np.asarray(im, dtype=np.uint8)
    return arr[None].copy() if channels == 1 else arr.transpose(2, 0, 1).copy()
