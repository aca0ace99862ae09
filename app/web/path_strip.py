"""The latent vectors of a direction slider's strip (GET /api/models/{name}/path.png): the z the
page asks `decode.png` for at each position t, so that a tile and a single decode are one image.

The page (static/direction.js and static/explore.js) computes z_start + t·v in doubles, rounds
each component to hundredths with Math.round, holds it within the slider's range and writes it
with toFixed(2). This repeats each step in the same float64 arithmetic: JavaScript has no fused
multiply-add, and numpy's elementwise `*` and `+` round after each operation as it does.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import torch


def latent_doubles(text: str) -> np.ndarray:
    """'0.1,-2,3' → float64, the numbers as JavaScript's Number() reads them (the text is
    checked by inputs.parse_latents first)."""
    return np.array([float(p) for p in text.split(",")], dtype=np.float64)


def js_round(x: np.ndarray) -> np.ndarray:
    """Math.round: the nearest whole number, halves toward +∞. `x - floor(x)` is exact in
    doubles, so a value just under a half stays under (floor(x + 0.5) would not)."""
    floor = np.floor(x)
    return floor + (x - floor >= 0.5)


def to_fixed_2(x: np.ndarray) -> np.ndarray:
    """toFixed(2) read back: the hundredth nearest the double's exact value, halves away from
    0 (the larger of two), and no −0 (toFixed writes −0 as "0.00")."""
    hundredth = Decimal("0.01")
    out = [float(Decimal(v).quantize(hundredth, ROUND_HALF_UP)) for v in x.ravel().tolist()]
    return np.array(out, dtype=np.float64).reshape(x.shape) + 0.0


def path_latents(
    z_start: np.ndarray, vector: np.ndarray, ts: list[float], lower: np.ndarray,
    upper: np.ndarray,
) -> torch.Tensor:  # fmt: skip
    """(len(ts), D) float32: z_start + t·vector per t, each component rounded to hundredths and
    held in lower..upper (Math.max(lower, Math.min(upper, ·)): lower wins where they cross)."""
    t = np.array(ts, dtype=np.float64)[:, None]  # (T, 1)
    z = js_round((z_start[None, :] + t * vector[None, :]) * 100) / 100  # (T, D)
    z = np.maximum(lower[None, :], np.minimum(upper[None, :], z))
    return torch.from_numpy(to_fixed_2(z)).float()
