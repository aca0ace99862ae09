"""The held-out figures a card records (its `eval`): mean −log p(x|z) with z = μ (the model's
deterministic reconstruction), KL per latent, their sum, the negative ELBO, how many latents are
in use, and where the codes lie. One function for every model a folder holds, whether training
saves it or an import converts it; each passes the images it has."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from app.checkpoints.card import CodePercentiles, Evaluation
from app.models import VAE
from app.models.elbo import ACTIVE_KL, kl_per_dim
from app.models.vae import decoded_nll

Batch = tuple[torch.Tensor, torch.Tensor | None]  # images (B, C, H, W) in [0, 1], a cvae's labels


@torch.no_grad()
def held_out_figures(
    model: VAE, batches: Iterable[Batch], images: str | None = None, seed: int | None = None
) -> Evaluation:
    """The card's `eval` over `batches` (the model in eval mode; labels reach a cvae only).
    `images` says what the images were, `seed` the seed that drew them, where the card should
    say so."""
    cfg = model.config
    recon = torch.zeros((), dtype=torch.float64)
    kl = torch.zeros(cfg.latent_dim, dtype=torch.float64)
    mus, n = [], 0
    for x, labels in batches:
        mu, logvar = model.encode(x, labels if cfg.kind == "cvae" else None)  # (B, D) each
        decoded = model.decode(mu, labels if cfg.kind == "cvae" else None)
        recon += decoded_nll(cfg, decoded, x).double().sum()
        if logvar is not None:
            kl += kl_per_dim(mu, logvar).double().sum(dim=0)
        mus.append(mu.float().cpu())
        n += len(x)
    if n == 0:
        raise ValueError("no images to evaluate on")
    recon, kl = recon / n, kl / n
    # where the codes lie over data: an AE has no prior, so its sliders span these instead of ±3
    lo, hi = torch.quantile(torch.cat(mus), torch.tensor([0.01, 0.99]), dim=0)
    figures = Evaluation(
        eval_images=n,
        recon_nll=round(float(recon), 4),
        code_percentiles=CodePercentiles(
            percentiles=[1, 99],
            lo=[round(v, 3) for v in lo.tolist()],
            hi=[round(v, 3) for v in hi.tolist()],
        ),
    )
    if seed is not None:
        figures.seed = seed
    if images is not None:
        figures.images = images
    if cfg.stochastic:
        figures.kl_per_dim = [round(float(v), 4) for v in kl]
        figures.kl_total = round(float(kl.sum()), 4)
        figures.neg_elbo = round(float(recon + kl.sum()), 4)
        figures.active_latents = int((kl > ACTIVE_KL).sum())
    return figures
