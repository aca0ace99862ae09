"""The pieces of the ELBO, each written once:

    ELBO = E_q(z|x)[log p(x|z)] − KL(q(z|x) ‖ N(0, I))

with q(z|x) = N(μ, diag σ²) from the encoder and z = μ + σ·ε (Kingma & Welling 2014).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = μ + σ·ε with ε ~ N(0, I) passed in, so the randomness stays outside the graph (and
    under the caller's seed): gradients flow to μ and σ through a deterministic function."""
    return mu + torch.exp(0.5 * logvar) * eps


# nats: a latent whose mean KL over data is above this is "in use" (DESIGN.md); below it, its
# posterior is the prior whatever the image, and its slider changes nothing the model learned
ACTIVE_KL = 0.1


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) for each latent, in nats: (B, D) → (B, D).

    Closed form, see Appendix B of Kingma & Welling 2014: −½ (1 + log σ² − μ² − σ²).
    Kept per dimension because that is what shows which latents a model uses.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def reconstruction_nll(
    decoded: torch.Tensor, x: torch.Tensor, likelihood: str, gaussian_sigma: float = 0.1
) -> torch.Tensor:
    """−log p(x|z) per image, in nats: decoder output (B, C, H, W) and target x in [0, 1] → (B,).

    bernoulli: `decoded` are logits, the NLL is the binary cross-entropy summed over pixels.
    gaussian: `decoded` are pre-sigmoid means, fixed σ per pixel, normaliser included so the
    figure is a true negative log-likelihood of the (continuous) pixel values.
    """
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(decoded, x, reduction="none")
        return nll.flatten(1).sum(dim=1)
    return reconstruction_nll_of_means(torch.sigmoid(decoded), x, likelihood, gaussian_sigma)


def reconstruction_nll_of_means(
    means: torch.Tensor, x: torch.Tensor, likelihood: str, gaussian_sigma: float = 0.1
) -> torch.Tensor:
    """−log p(x|z) per image in nats, from the decoder's pixel means (B, C, H, W) → (B,), for a
    model that gives means rather than logits (the model interface).
    bernoulli: the cross-entropy with means held inside [1e-7, 1 − 1e-7] (a float32 sigmoid
    rounds to exactly 1 above a logit of ~17, where the log would be infinite); gaussian: fixed σ
    per pixel, normaliser included."""
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy(means.clamp(1e-7, 1 - 1e-7), x, reduction="none")
    else:
        nll = 0.5 * ((x - means) / gaussian_sigma) ** 2 + math.log(
            gaussian_sigma * math.sqrt(2 * math.pi)
        )
    return nll.flatten(1).sum(dim=1)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, σ²) elementwise (broadcasting), used by the total-correlation estimate."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) * torch.exp(-logvar))
