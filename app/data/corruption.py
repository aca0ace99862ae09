"""Corrupting images: the denoising autoencoder's training inputs and the denoise view's inputs.

Images are float arrays in [0, 1], (B, C, H, W). Every draw comes from the numpy Generator it is
given, so a training step's corruption is a function of (seed, rank, step) like its data, and a
resumed run sees the same noise.
"""

from __future__ import annotations

import numpy as np

NOISES = ("gaussian", "salt_pepper", "mask")
# the levels the view offers and the DAE is trained over: σ of additive Gaussian noise; the
# fraction of pixels set to 0 or 1; the fraction of the image hidden by the mask
MAX_LEVEL = {"gaussian": 0.5, "salt_pepper": 0.3, "mask": 0.4}
MASK_FILL = 0.5  # hidden pixels are grey: neither background (0) nor sprite (1)


class CorruptionError(ValueError):
    """A corruption asked for that does not exist or is out of range, with a message."""


def gaussian(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """x + σ·N(0, 1) per pixel, clipped back to [0, 1]."""
    noise = rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(x + np.float32(sigma) * noise, 0.0, 1.0)


def salt_pepper(x: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A `fraction` of pixel positions (all channels together) set to 0 or 1, half each."""
    b, c, h, w = x.shape
    hit = rng.random((b, 1, h, w)) < fraction
    salt = rng.random((b, 1, h, w)) < 0.5
    out = x.copy()
    out[np.broadcast_to(hit & salt, x.shape)] = 1.0
    out[np.broadcast_to(hit & ~salt, x.shape)] = 0.0
    return out


def apply_mask(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Hide the pixels where `mask` (B or 1, 1, H, W) is true behind MASK_FILL."""
    return np.where(mask, np.float32(MASK_FILL), x).astype(np.float32)


def random_blocks(
    shape: tuple[int, int, int, int], fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """(B, 1, H, W) masks of one to three rectangles each, covering about `fraction` of the
    image in all (overlaps make it a little less)."""
    b, _, h, w = shape
    mask = np.zeros((b, 1, h, w), dtype=bool)
    n_blocks = rng.integers(1, 4, size=b)
    for i in range(b):  # a handful of rectangles per image: a loop over B is cheap here
        area = fraction * h * w / n_blocks[i]
        for _ in range(n_blocks[i]):
            aspect = rng.uniform(0.5, 2.0)
            bh = int(np.clip(round(np.sqrt(area * aspect)), 1, h))
            bw = int(np.clip(round(area / max(bh, 1)), 1, w))
            top, left = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
            mask[i, 0, top : top + bh, left : left + bw] = True
    return mask


def corrupt(x: np.ndarray, noise: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """One kind of corruption at one level for the whole batch (the view's inputs)."""
    if noise not in NOISES:
        raise CorruptionError(f"unknown noise {noise!r}: choose from {', '.join(NOISES)}")
    if not 0.0 <= level <= MAX_LEVEL[noise]:
        raise CorruptionError(f"{noise} level must be in 0..{MAX_LEVEL[noise]:g}, got {level:g}")
    if noise == "gaussian":
        return gaussian(x, level, rng)
    if noise == "salt_pepper":
        return salt_pepper(x, level, rng)
    return apply_mask(x, random_blocks(x.shape, level, rng))


def training_corruption(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The DAE's inputs: each image gets one of the three corruptions, at a level drawn
    uniformly up to its MAX_LEVEL, so one model learns to undo all the view offers."""
    b = x.shape[0]
    kind = rng.integers(0, len(NOISES), size=b)
    level = np.asarray(rng.random(b, dtype=np.float32))
    sigma = (level * MAX_LEVEL["gaussian"])[:, None, None, None]
    noisy = np.clip(x + sigma * rng.standard_normal(x.shape, dtype=np.float32), 0.0, 1.0)
    out = np.where((kind == 0)[:, None, None, None], noisy, x)
    for i in np.flatnonzero(kind == 1):
        out[i : i + 1] = salt_pepper(x[i : i + 1], float(level[i]) * MAX_LEVEL["salt_pepper"], rng)
    for i in np.flatnonzero(kind == 2):
        _, c, h, w = x.shape
        mask = random_blocks((1, c, h, w), float(level[i]) * MAX_LEVEL["mask"], rng)
        out[i : i + 1] = apply_mask(x[i : i + 1], mask)
    return out.astype(np.float32)
