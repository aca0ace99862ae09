"""How well a model explains held-out images, as likelihood models are judged: the importance-
weighted bound on log p(x) (Burda, Grosse & Salakhutdinov 2016, eq. 8),

    log p(x) ≥ L_k = E[ log (1/k) Σ_i p(x | z_i) p(z_i) / q(z_i | x) ],   z_i ~ q(z | x),

p(z) the model's prior (N(0, I), or the one it owns: app.models.priors),

which equals the ELBO at k = 1, rises with k, and reaches log p(x) as k → ∞ (and at every k when
q(z|x) is the true posterior). Over the model interface alone: any model with a Gaussian
posterior and a named likelihood can be judged.
"""

from __future__ import annotations

import math

import torch

from app.models.elbo import gaussian_log_density, reconstruction_nll_of_means
from app.models.interface import LatentModel
from app.models.priors import prior_of


def log_likelihood_given_z(
    model: LatentModel, x: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None
) -> torch.Tensor:
    """log p(x|z) for each row of z (n, D) against x (n, C, H, W) → (n,) nats: from the model's
    own logits where it has `log_likelihood` (NativeModel: one batched pass), else from its
    decoded means."""
    scorer = getattr(model, "log_likelihood", None)
    if scorer is not None:
        return scorer(x, z, labels)
    d = model.description
    return -reconstruction_nll_of_means(model.decode(z, labels), x, d.likelihood, d.gaussian_sigma)


@torch.inference_mode()
def importance_weighted_bound(
    model: LatentModel,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator,
    labels: torch.Tensor | None = None,
    chunk: int = 1_000,
) -> torch.Tensor:
    """L_k for each image of x (B, C, H, W) in [0, 1] → (B,) nats, with k samples of q(z|x)
    drawn from `generator`, decoded `chunk` at a time (the log-mean-exp is accumulated across
    chunks, so memory does not grow with k)."""
    d = model.description
    if not d.stochastic:
        raise ValueError("an AE has no posterior to sample: its likelihood has no bound here")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    posterior = model.encode(x, labels)
    assert posterior.logvar is not None
    prior = prior_of(model)
    out = torch.empty(len(x), dtype=torch.float64)
    for b in range(len(x)):
        mean, logvar = posterior.mean[b], posterior.logvar[b]  # (D,) each
        std = torch.exp(0.5 * logvar)
        total = torch.tensor(-math.inf, dtype=torch.float64)
        done = 0
        while done < k:
            n = min(chunk, k - done)
            eps = torch.randn(n, d.latent_dim, generator=generator)
            z = mean + std * eps  # (n, D)
            lab = None if labels is None else labels[b].expand(n)
            log_px_z = log_likelihood_given_z(model, x[b].expand(n, *x.shape[1:]), z, lab)
            log_pz = prior.log_prob(z)  # N(0, I), or the model's own
            log_qz = gaussian_log_density(z, mean, logvar).sum(-1)
            log_w = (log_px_z + log_pz - log_qz).double()  # (n,)
            total = torch.logaddexp(total, torch.logsumexp(log_w, 0))
            done += n
        out[b] = total - math.log(k)
    return out


def bits_per_dim(log_p: torch.Tensor, dims: int) -> torch.Tensor:
    """A log-likelihood in nats as −log p(x) per pixel value in bits, the figure papers compare:
    −log p / (dims · ln 2)."""
    return -log_p / (dims * math.log(2))
