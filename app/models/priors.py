"""The prior p(z) a model's latents are drawn from, and the KL of a posterior against it.

Most models here have the standard normal N(0, I); a model may own another (the model
interface's optional `prior`). The one other kind is an equal-weight mixture of K diagonal
Gaussians, which is what a VampPrior is (Tomczak & Welling 2018, eq. 9):

    p(z) = (1/K) Σ_k q(z | u_k)

the encoder's posteriors of K learned pseudo-inputs u_k; its component means and log-variances
are the encoder's outputs on them, computed when the model is loaded.

KL(q(z|x) ‖ p(z)) against N(0, I) is a sum over latents in closed form (app/models/elbo.py).
Against a mixture it has no closed form and no per-latent split:

    KL = E_q[log q(z|x)] − E_q[log p(z)] = −H(q) − E_q[log p(z)]

the entropy in closed form, the cross term estimated by Monte Carlo with one fixed set of
KL_SAMPLES standard normal draws (seeded KL_SEED, in antithetic pairs, each latent's draws
rescaled to mean 0 and variance 1 exactly, so the estimate is exact for a one-component mixture
and the same for an image whatever batch it is in). Per latent, what is shown instead is the KL
of q's marginal against the prior's marginal on that latent, KL(q(z_d|x) ‖ p(z_d)), estimated
with the same draws: a measure of how far each latent moves off the prior, which does not sum
to the total.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from app.models.elbo import gaussian_log_density, kl_per_dim

KL_SAMPLES = 512  # draws of q(z|x) per image for a mixture prior's KL (256 antithetic pairs)
KL_SEED = 20261206  # the fixed draws' seed: not a training, sampling or evaluation stream
# values of (images × draws × components × latents) computed at once in a mixture's KL
KL_CHUNK = 1 << 22
# what a mixture prior's KL figures are, wherever a page or the API shows them
MIXTURE_KL_NOTE = (
    "A mixture prior has no KL per latent: each latent's figure is the KL of q(z_d|x) against "
    "the prior's marginal on that latent, a Monte Carlo estimate, and the figures do not sum to "
    "the total KL(q(z|x) ‖ p(z)), which the ELBO uses (estimated with the same "
    f"{KL_SAMPLES} fixed draws, seed {KL_SEED}, its entropy term in closed form)"
)
MAX_COMPONENTS = 1000  # a mixture's components (pythae's VAMP default is 50)
QUANTILE_STEPS = 64  # bisection steps of a mixture marginal's quantile: 2⁻⁶⁴ of its span


class PriorError(ValueError):
    """A prior that cannot be used (wrong shapes, non-finite values), with what is wrong."""


@dataclass(frozen=True, eq=False)
class StandardNormal:
    """N(0, I) over `latent_dim` latents: the prior of every model that names no other."""

    latent_dim: int
    kind: str = field(default="normal", init=False)

    @property
    def described(self) -> str:
        return "the standard normal N(0, I)"

    @property
    def symbol(self) -> str:
        """What `z ~` reads in a sentence."""
        return "N(0, I)"

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n draws (n, D) float32: torch.randn from `generator` (the draws every seed has given
        before a model could own a prior)."""
        return torch.randn(n, self.latent_dim, generator=generator)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for each row of z (n, D) → (n,), nats."""
        return self.marginal_log_prob(z).sum(-1)

    def marginal_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z_d) of each value of z (n, D) on its own latent → (n, D)."""
        zero = torch.zeros((), dtype=z.dtype, device=z.device)
        return gaussian_log_density(z, zero, zero)

    def marginal_quantiles(self, q: Sequence[float]) -> torch.Tensor:
        """The q-quantiles (each in (0, 1)) of every latent's marginal → (len(q), D) float64."""
        p = torch.tensor(list(q), dtype=torch.float64)
        values = math.sqrt(2) * torch.erfinv(2 * p - 1)
        return values[:, None].expand(len(p), self.latent_dim).clone()


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """(1/K) Σ_k N(means[k], diag exp(logvars[k])): means and logvars (K, D). A VampPrior
    where the components are the encoder's posteriors of learned pseudo-inputs."""

    means: torch.Tensor  # (K, D)
    logvars: torch.Tensor  # (K, D)
    kind: str = field(default="mixture", init=False)

    def __post_init__(self) -> None:
        m, v = self.means, self.logvars
        if not isinstance(m, torch.Tensor) or not isinstance(v, torch.Tensor):
            raise PriorError("a mixture prior's means and logvars must be tensors")
        if m.ndim != 2 or m.shape != v.shape or not 1 <= m.shape[0] <= MAX_COMPONENTS:
            raise PriorError(
                f"a mixture prior's means and logvars must both be (K, D) with K in "
                f"1..{MAX_COMPONENTS}, got {tuple(m.shape)} and {tuple(v.shape)}"
            )
        if not (torch.isfinite(m).all() and torch.isfinite(v).all()):
            raise PriorError("a mixture prior's means and logvars must be finite")
        # held on the CPU in float32, whatever device the encoder that made them is on
        object.__setattr__(self, "means", m.detach().float().cpu())
        object.__setattr__(self, "logvars", v.detach().float().cpu())

    @property
    def latent_dim(self) -> int:
        return int(self.means.shape[1])

    @property
    def components(self) -> int:
        return int(self.means.shape[0])

    @property
    def described(self) -> str:
        return f"a mixture of {self.components} Gaussians (a VampPrior)"

    @property
    def symbol(self) -> str:
        """What `z ~` reads in a sentence."""
        return f"its prior, a mixture of {self.components} Gaussians"

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n draws (n, D) float32: a component for each (uniformly), then a draw of it."""
        k = torch.randint(self.components, (n,), generator=generator)
        eps = torch.randn(n, self.latent_dim, generator=generator)
        return self.means[k] + torch.exp(0.5 * self.logvars[k]) * eps

    def _component_log_density(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z_d; μ_kd, σ²_kd) for z (n, D) → (n, K, D)."""
        mu = self.means.to(z.device, z.dtype)
        logvar = self.logvars.to(z.device, z.dtype)
        return gaussian_log_density(z[:, None, :], mu[None], logvar[None])

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) for each row of z (n, D) → (n,), nats: log-mean-exp over components."""
        per = self._component_log_density(z).sum(-1)  # (n, K)
        return torch.logsumexp(per, dim=1) - math.log(self.components)

    def marginal_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z_d) of each value of z (n, D) on its own latent (a 1-D mixture) → (n, D)."""
        per = self._component_log_density(z)  # (n, K, D)
        return torch.logsumexp(per, dim=1) - math.log(self.components)

    def marginal_quantiles(self, q: Sequence[float]) -> torch.Tensor:
        """The q-quantiles of every latent's marginal (a 1-D mixture, whose CDF is the mean of
        its components' normal CDFs) by bisection → (len(q), D) float64."""
        mu, sd = self.means.double(), torch.exp(0.5 * self.logvars.double())  # (K, D)
        p = torch.tensor(list(q), dtype=torch.float64)[:, None]  # (Q, 1)
        lo = (mu - 10 * sd).min(0).values.expand(len(p), -1).clone()  # (Q, D)
        hi = (mu + 10 * sd).max(0).values.expand(len(p), -1).clone()
        for _ in range(QUANTILE_STEPS):
            mid = (lo + hi) / 2
            cdf = 0.5 * (1 + torch.erf((mid[:, None, :] - mu) / (sd * math.sqrt(2)))).mean(1)
            below = cdf < p
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        return (lo + hi) / 2


Prior = StandardNormal | GaussianMixture


def prior_of(model: Any) -> Prior:
    """The prior a model owns (its `prior`), else the standard normal over its latents."""
    own = getattr(model, "prior", None)
    if own is None:
        return StandardNormal(model.description.latent_dim)
    if not isinstance(own, StandardNormal | GaussianMixture):
        raise PriorError(
            "a model's prior must be app.models.priors.StandardNormal or GaussianMixture, got "
            f"{type(own).__name__}"
        )
    return own


# --- KL(q(z|x) ‖ p(z)) ---------------------------------------------------------------------


@dataclass(frozen=True)
class KlEstimate:
    """KL of each image's posterior against the prior, nats: `total` (B,) and `per_latent`
    (B, D). `exact`: closed form against N(0, I), where per_latent sums to total; else a Monte
    Carlo estimate, per_latent being each latent's marginal KL (it does not sum to total)."""

    total: torch.Tensor
    per_latent: torch.Tensor
    exact: bool


def _fixed_draws(latent_dim: int) -> torch.Tensor:
    """KL_SAMPLES standard normal draws (S, D): antithetic pairs, each latent's draws rescaled
    to mean 0 (the pairs give it) and mean square 1."""
    half = torch.randn(
        KL_SAMPLES // 2, latent_dim, generator=torch.Generator().manual_seed(KL_SEED),
        dtype=torch.float64,
    )  # fmt: skip
    eps = torch.cat([half, -half])  # (S, D)
    return eps / eps.pow(2).mean(0).sqrt()


def prior_kl(mean: torch.Tensor, logvar: torch.Tensor | None, prior: Prior) -> KlEstimate:
    """KL(q(z|x) ‖ prior) for q = N(mean, diag exp(logvar)), (B, D) each; zeros for an AE's
    code (logvar None). Closed form for N(0, I); see the module's docstring for a mixture."""
    if logvar is None:
        zeros = torch.zeros_like(mean)
        return KlEstimate(zeros.sum(-1), zeros, True)
    if isinstance(prior, StandardNormal):
        per = kl_per_dim(mean, logvar)
        return KlEstimate(per.sum(-1), per, True)
    b, d = mean.shape
    eps = _fixed_draws(d).to(mean.device)  # (S, D)
    mu, lv = mean.double(), logvar.double()
    # −H(q_d) = −½ (log 2π + 1 + log σ²_d)
    neg_entropy = -0.5 * (math.log(2 * math.pi) + 1 + lv)  # (B, D)
    cross_total = torch.empty(b, dtype=torch.float64, device=mean.device)
    cross_per = torch.empty(b, d, dtype=torch.float64, device=mean.device)
    rows = max(1, KL_CHUNK // (len(eps) * getattr(prior, "components", 1) * d))
    for start in range(0, b, rows):
        m, s = mu[start : start + rows], torch.exp(0.5 * lv[start : start + rows])
        z = (m[:, None] + s[:, None] * eps[None]).reshape(-1, d)  # (b·S, D), image-major
        n = len(m)
        cross_total[start : start + n] = prior.log_prob(z).view(n, -1).mean(1)
        cross_per[start : start + n] = prior.marginal_log_prob(z).view(n, -1, d).mean(1)
    per_latent = neg_entropy - cross_per
    total = neg_entropy.sum(-1) - cross_total
    return KlEstimate(total.to(mean.dtype), per_latent.to(mean.dtype), False)
