"""How close an image is to a reference: PSNR, SSIM (Wang et al. 2004) and MS-SSIM (Wang et
al. 2003), for the codec and denoising views. Inputs are (B, C, H, W) in [0, 1]; outputs (B,);
peak value L = 1. Colour images are measured per channel, then averaged over the channels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from app.inference import InferenceError

PSNR_CAP = 100.0  # dB for identical images; any 8-bit difference on 64×64 is below 85 dB


class QualityError(InferenceError):
    """Images these measures cannot compare, with a message that says why."""


SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03  # Wang et al. 2004
# Wang et al. 2003, Table/§3.2: the five scales' exponents, finest first
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """10·log₁₀(1 / MSE) in dB over all pixels and channels; PSNR_CAP for identical images."""
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(dim=1)
    return torch.where(mse > 0, -10 * torch.log10(mse), torch.full_like(mse, PSNR_CAP))


def _window() -> torch.Tensor:
    r = torch.arange(SSIM_WINDOW, dtype=torch.float64) - SSIM_WINDOW // 2
    g = torch.exp(-(r**2) / (2 * SSIM_SIGMA**2))
    return g / g.sum()  # (11,): the 2-D window is its outer product


def _blur(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) → (N, 1, H−10, W−10): the Gaussian window over the valid positions only,
    as Wang's reference code does (`filter2(window, img, 'valid')`)."""
    g = _window()
    x = F.conv2d(x, g.view(1, 1, -1, 1))
    return F.conv2d(x, g.view(1, 1, 1, -1))


def _ssim_terms(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, H, W) pairs → mean SSIM and mean contrast-structure term cs, each (N,)."""
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    mx, my = _blur(x), _blur(y)
    vx, vy = _blur(x * x) - mx**2, _blur(y * y) - my**2
    cxy = _blur(x * y) - mx * my
    cs = (2 * cxy + c2) / (vx + vy + c2)
    lum = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
    return (lum * cs).flatten(1).mean(dim=1), cs.flatten(1).mean(dim=1)


def _per_channel(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.double().reshape(b * c, 1, h, w)


def _check_size(x: torch.Tensor) -> None:
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise QualityError(f"SSIM needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW} px")


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004): Gaussian window 11×11, σ = 1.5, K1 = 0.01,
    K2 = 0.03, L = 1, averaged over the valid window positions; colour images per channel, then
    averaged over the channels."""
    _check_size(x)
    s, _ = _ssim_terms(_per_channel(x), _per_channel(y))
    return s.view(x.shape[0], x.shape[1]).mean(dim=1)


def ms_ssim_scales(size: int) -> int:
    """How many scales fit: the coarsest image must still hold one 11×11 window (64 px → 3:
    64, 32, 16; the next, 8, would not)."""
    return max(1, min(len(MS_SSIM_WEIGHTS), int(math.log2(size / SSIM_WINDOW)) + 1))


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Multi-scale SSIM (Wang et al. 2003): cs at every scale and the full SSIM at the
    coarsest, each raised to its weight, multiplied; 2×2 average pooling between scales. A
    64×64 image allows 3 scales (ms_ssim_scales), so the standard weights of the 3 finest scales
    are used, renormalised to sum to 1: 0.0711, 0.4530, 0.4760. Negative terms (anti-correlated
    structure) count as 0, as TensorFlow's implementation does, so the result is in [0, 1].
    Colour images per channel, then averaged over the channels."""
    _check_size(x)
    n = ms_ssim_scales(min(x.shape[-2:]))
    w = torch.tensor(MS_SSIM_WEIGHTS[:n], dtype=torch.float64)
    w = w / w.sum()
    a, b = _per_channel(x), _per_channel(y)
    out = torch.ones(a.shape[0], dtype=torch.float64)
    for j in range(n):
        s, cs = _ssim_terms(a, b)
        term = s if j == n - 1 else cs
        out = out * term.clamp(min=0) ** w[j]
        if j < n - 1:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return out.view(x.shape[0], x.shape[1]).mean(dim=1)


@dataclass(frozen=True)
class Quality:
    psnr: float
    ssim: float
    ms_ssim: float


def quality(x: torch.Tensor, y: torch.Tensor) -> list[Quality]:
    """Every metric for each pair of a batch."""
    p, s, m = psnr(x, y), ssim(x, y), ms_ssim(x, y)
    return [Quality(*map(float, t)) for t in zip(p, s, m, strict=True)]


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """Round to the 256 levels a PNG stores: what a codec's output really is."""
    return x.clamp(0, 1).mul(255).round().div(255)


def gradient_energy(x: torch.Tensor) -> torch.Tensor:
    """Sharpness: the mean, over pixels and channels, of the squared gradient magnitude
    |∇x|² = (x[i, j+1] − x[i, j])² + (x[i+1, j] − x[i, j])² (forward differences), taken at the
    (H−1)×(W−1) pixels that have both a right and a lower neighbour. (B, C, H, W) in [0, 1] → (B,).
    A flat image scores 0 and a one-pixel black-and-white checkerboard 2, the largest possible;
    blurring lowers it, which is why it tells a blurry decoder from a sharp one."""
    if x.ndim != 4 or min(x.shape[-2:]) < 2:
        raise QualityError(f"gradient energy needs (B, C, H, W) images of at least 2×2 px, got "
                           f"shape {tuple(x.shape)}")  # fmt: skip
    x = x.double()
    corner = x[..., :-1, :-1]
    dx = x[..., :-1, 1:] - corner  # (B, C, H−1, W−1): to the right neighbour
    dy = x[..., 1:, :-1] - corner  # (B, C, H−1, W−1): to the lower neighbour
    return (dx.pow(2) + dy.pow(2)).flatten(1).mean(dim=1)
