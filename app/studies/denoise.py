"""Denoising and inpainting, for the denoise view: corrupt a clean image, give the corrupted one
to each model, and measure how close what comes back is to the clean image.

A model's answer is its reconstruction from z = μ (the decoder's pixel means), as everywhere in
the explorer. "Before" is the corrupted input against the clean image, "after" the model's
output against it: a model helps where "after" beats "before". Images are rounded to the 256
levels a PNG shows before they are measured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from app import inference
from app.checkpoints.served import ServedModel
from app.data import corruption
from app.inference import InferenceError
from app.studies.quality import Quality, quality, to_8bit

NOISE_CHOICES = (*corruption.NOISES, "drawn")  # "drawn": the mask a person painted
MAX_LEVEL = corruption.MAX_LEVEL  # each noise's highest level: what the view offers
MASK_HEX_CHARS = 64 * 64 // 4  # a 64×64 bit mask, row by row, MSB first, as hex


class DenoiseError(InferenceError):
    """A corruption or mask that cannot be applied, with a message that says why."""


def parse_mask(text: str, size: int) -> np.ndarray:
    """A hex string of size×size bits (row-major, most significant bit first; what the page's
    mask canvas sends) → (1, 1, size, size) bool."""
    want = size * size // 4
    text = text.strip().lower()
    if len(text) != want:
        raise DenoiseError(f"mask must be {want} hex digits ({size}×{size} bits), got {len(text)}")
    if not re.fullmatch(r"[0-9a-f]*", text):
        raise DenoiseError("mask must be hex digits (0-9, a-f)")
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))
    return bits.astype(bool).reshape(1, 1, size, size)


def mask_hex(mask: np.ndarray) -> str:
    """The inverse of parse_mask."""
    return np.packbits(mask.astype(np.uint8).ravel()).tobytes().hex()


def corrupt_image(
    clean: torch.Tensor, noise: str, level: float, seed: int, mask: np.ndarray | None = None
) -> torch.Tensor:
    """(1, C, H, W) → the same image corrupted: `noise` at `level` drawn from `seed`, or, for
    "drawn", the pixels under `mask` hidden."""
    x = clean.numpy()
    if noise == "drawn":
        if mask is None:
            raise DenoiseError("noise 'drawn' needs a mask: paint over the image first")
        return torch.from_numpy(corruption.apply_mask(x, mask))
    try:
        out = corruption.corrupt(x, noise, level, np.random.default_rng(seed))
    except corruption.CorruptionError as e:
        raise DenoiseError(str(e)) from None
    return torch.from_numpy(out)


@dataclass(frozen=True)
class Answer:
    model: str
    output: torch.Tensor  # (1, C, H, W) in [0, 1], 8-bit levels
    after: Quality  # output against the clean image


@dataclass(frozen=True)
class Denoising:
    clean: torch.Tensor  # (1, C, H, W)
    corrupted: torch.Tensor  # (1, C, H, W), 8-bit levels
    before: Quality  # corrupted against clean
    answers: list[Answer]


def denoise(
    models: list[ServedModel], clean: torch.Tensor, corrupted: torch.Tensor,
    label: int | None = None,
) -> Denoising:  # fmt: skip
    """Each model's answer to `corrupted`, measured against `clean`."""
    corrupted = to_8bit(corrupted)
    answers = []
    for ckpt in models:
        own = label if ckpt.description.kind == "cvae" else None
        out = to_8bit(inference.encode_images(ckpt, corrupted, own).reconstruction)
        answers.append(Answer(ckpt.name, out, quality(out, clean)[0]))
    return Denoising(clean, corrupted, quality(corrupted, clean)[0], answers)
