"""Training objectives as small interchangeable pieces: each turns one forward pass into a loss.

All minimise a negative ELBO variant, averaged over the batch:
- `BetaELBO`: −E[log p(x|z)] + β·KL (Higgins et al. 2017); β = 1 is the plain negative ELBO.
- `ControlledCapacity`: −E[log p(x|z)] + γ·|KL − C|, C rising linearly to C_max
  (Burgess et al. 2018, "Understanding disentangling in β-VAE", eq. 8).
- `BetaTCVAE`: −E[log p(x|z)] + α·MI + β·TC + γ·dimension-wise KL, with the minibatch-weighted
  sampling estimate of log q(z) (Chen et al. 2018, "Isolating sources of disentanglement").
- `Reconstruction`: the deterministic autoencoder's loss, −log p(x|z) alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from app.models.elbo import gaussian_log_density, kl_per_dim


@dataclass
class LossTerms:
    loss: torch.Tensor  # the scalar to minimise
    recon: torch.Tensor  # mean −log p(x|z), nats per image
    kl: torch.Tensor  # (D,) mean KL per latent, nats (zeros for the AE)


class Objective(Protocol):
    name: str

    def __call__(
        self,
        recon_nll: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor | None,
        z: torch.Tensor,
        step: int,
    ) -> LossTerms: ...

    def settings(self) -> dict[str, float | int | str]: ...


def _kl(mu: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
    if logvar is None:
        return torch.zeros(mu.shape[1], device=mu.device)
    return kl_per_dim(mu, logvar).mean(dim=0)  # (D,)


@dataclass
class Reconstruction:
    name: str = "reconstruction"

    def __call__(self, recon_nll, mu, logvar, z, step) -> LossTerms:  # noqa: ANN001
        recon = recon_nll.mean()
        return LossTerms(loss=recon, recon=recon.detach(), kl=_kl(mu, logvar).detach())

    def settings(self) -> dict[str, float | int | str]:
        return {"objective": self.name}


@dataclass
class BetaELBO:
    beta: float = 1.0
    # KL warm-up (Bowman et al. 2016; Sønderby et al. 2016): the KL weight rises linearly from 0
    # to β over these first steps, so latents are not switched off before the decoder can use
    # them; afterwards the objective is exactly the β-weighted negative ELBO
    warmup_steps: int = 0
    name: str = "beta"

    def weight(self, step: int) -> float:
        if self.warmup_steps <= 0:
            return self.beta
        return self.beta * min(1.0, step / self.warmup_steps)

    def __call__(self, recon_nll, mu, logvar, z, step) -> LossTerms:  # noqa: ANN001
        recon = recon_nll.mean()
        kl = _kl(mu, logvar)
        loss = recon + self.weight(step) * kl.sum()
        return LossTerms(loss=loss, recon=recon.detach(), kl=kl.detach())

    def settings(self) -> dict[str, float | int | str]:
        return {"objective": self.name, "beta": self.beta, "kl_warmup_steps": self.warmup_steps}


@dataclass
class ControlledCapacity:
    gamma: float = 1000.0  # Burgess et al. use γ = 1000 on dSprites
    capacity_max: float = 25.0  # nats; Burgess et al. raise C from 0 to 25
    capacity_steps: int = 100_000  # steps over which C rises linearly
    name: str = "capacity"

    def capacity(self, step: int) -> float:
        return self.capacity_max * min(1.0, step / max(1, self.capacity_steps))

    def __call__(self, recon_nll, mu, logvar, z, step) -> LossTerms:  # noqa: ANN001
        recon = recon_nll.mean()
        kl = _kl(mu, logvar)
        loss = recon + self.gamma * (kl.sum() - self.capacity(step)).abs()
        return LossTerms(loss=loss, recon=recon.detach(), kl=kl.detach())

    def settings(self) -> dict[str, float | int | str]:
        return {
            "objective": self.name,
            "gamma": self.gamma,
            "capacity_max": self.capacity_max,
            "capacity_steps": self.capacity_steps,
        }


@dataclass
class BetaTCVAE:
    beta: float = 6.0  # weight on the total correlation
    alpha: float = 1.0  # index-code mutual information
    gamma: float = 1.0  # dimension-wise KL
    dataset_size: int = 737_280
    name: str = "tc"

    def __call__(self, recon_nll, mu, logvar, z, step) -> LossTerms:  # noqa: ANN001
        if logvar is None:
            raise ValueError("β-TCVAE needs a stochastic encoder")
        recon = recon_nll.mean()
        batch = z.shape[0]
        log_qz_given_x = gaussian_log_density(z, mu, logvar).sum(dim=1)  # (B,)
        log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(dim=1)
        # log q(z_i | x_j) for every pair: (B, 1, D) against (1, B, D) → (B, B, D)
        mat = gaussian_log_density(z[:, None], mu[None], logvar[None])
        # minibatch-weighted sampling: log q(z) ≈ logsumexp_j log q(z|x_j) − log(B·N)
        norm = math.log(batch * self.dataset_size)
        log_qz = torch.logsumexp(mat.sum(dim=2), dim=1) - norm  # (B,)
        log_prod_qzi = (torch.logsumexp(mat, dim=1) - norm).sum(dim=1)  # (B,)
        mi = (log_qz_given_x - log_qz).mean()
        tc = (log_qz - log_prod_qzi).mean()
        dim_kl = (log_prod_qzi - log_pz).mean()
        loss = recon + self.alpha * mi + self.beta * tc + self.gamma * dim_kl
        return LossTerms(loss=loss, recon=recon.detach(), kl=_kl(mu, logvar).detach())

    def settings(self) -> dict[str, float | int | str]:
        return {
            "objective": self.name,
            "beta": self.beta,
            "alpha": self.alpha,
            "gamma": self.gamma,
            "dataset_size": self.dataset_size,
        }
