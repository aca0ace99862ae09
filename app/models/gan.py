"""The discriminator of the VAE-GAN (Larsen et al. 2016, "Autoencoding beyond pixels using a
learned similarity metric"): it tells dataset images from decoded ones, and one of its inner
layers, Dis_l, is the feature space in which the VAE-GAN measures reconstruction error.

For 64×64 images: four 4×4 stride-2 convolutions, like our encoder's, widening 32 → 64 → 128 → 256
channels (DCGAN's discriminator, Radford et al. 2016) with LeakyReLU, then one linear logit. No
batch-norm: each image's logit and features depend on that image alone, so training is a pure
function of its inputs (what exact resume needs) and nothing has running statistics to save.

With `spectral_norm`, every layer's weight is divided by its largest singular value (Miyato et
al. 2018, "Spectral Normalization for Generative Adversarial Networks"), estimated by one power
iteration per training forward pass. That bounds how fast the discriminator's logit can change
with its input, which keeps it from winning outright. The iteration's vectors u and v are
buffers (`parametrizations.weight.0._u`, `._v` in the state dict, beside
`parametrizations.weight.original`), saved with the weights, so a resumed run continues exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from app.models.config import ConfigError
from app.models.elbo import kl_per_dim, reconstruction_nll, reparameterize
from app.models.vae import VAE


@dataclass(frozen=True)
class DiscriminatorConfig:
    channels: int = 1  # the images' channels: 1 for dSprites, 3 for colour
    widths: tuple[int, ...] = (32, 64, 128, 256)  # DCGAN's doubling; 64 → 32 → 16 → 8 → 4 px
    # Dis_l: the output of this convolution (1-based), before its activation. Larsen et al.'s
    # code takes the pre-batch-norm output of the discriminator's last conv at 8×8 (recon_depth=9
    # in celeba_aegan.py); here that resolution is the third conv's: 128 × 8 × 8 features
    feature_layer: int = 3
    negative_slope: float = 0.2  # LeakyReLU, as in DCGAN
    # each conv's and the logit's weight divided by its spectral norm (Miyato et al. 2018); off
    # by default, as in the configs saved before it existed
    spectral_norm: bool = False

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"discriminator channels must be 1 or 3, got {self.channels!r}")
        if len(self.widths) != 4 or not all(isinstance(w, int) and w > 0 for w in self.widths):
            raise ConfigError(
                f"discriminator widths must be 4 positive integers (64 px → 4 px), got "
                f"{self.widths!r}"
            )
        if not 1 <= self.feature_layer <= len(self.widths):
            raise ConfigError(
                f"feature_layer must be in 1..{len(self.widths)}, got {self.feature_layer!r}"
            )

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_json(cls, data: Any) -> DiscriminatorConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"discriminator config must be a JSON object, got {data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"discriminator config has unknown fields: {', '.join(unknown)}")
        kwargs = dict(data)
        if "widths" in kwargs:
            kwargs["widths"] = tuple(kwargs["widths"])
        return cls(**kwargs)


class Discriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        sizes = (config.channels, *config.widths)
        convs: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, 4, 2, 1) for c_in, c_out in pairwise(sizes)
        ]
        logit: nn.Module = nn.Linear(config.widths[-1] * 4 * 4, 1)
        if config.spectral_norm:
            # a conv's weight (out, in, 4, 4) is normalised as the matrix (out, in·4·4), as Miyato
            # et al. do; its u and v start random, from torch's generator, then 15 iterations
            convs = [spectral_norm(conv) for conv in convs]
            logit = spectral_norm(logit)
        self.convs = nn.ModuleList(convs)
        self.logit = logit

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, 64, 64) in [0, 1] → (logit (B,), Dis_l features (B, F)); D(x) = σ(logit) is
        the probability that x is a dataset image."""
        h = x
        features = h
        for i, conv in enumerate(self.convs, start=1):
            h = conv(h)  # (B, widths[i-1], 64 / 2^i, 64 / 2^i)
            if i == self.config.feature_layer:
                features = h
            h = F.leaky_relu(h, self.config.negative_slope)
        logit = self.logit(h.flatten(1)).squeeze(1)  # (B, 256·4·4) → (B,)
        return logit, features.flatten(1)  # features (B, 128·8·8) for the default layer


@dataclass
class VaeGanTerms:
    """One batch's loss terms, each a mean over the batch of per-image sums."""

    kl: torch.Tensor  # (D,) mean KL per latent; L_prior = kl.sum()
    feature_nll: torch.Tensor  # L_llike: −log N(Dis_l(x); Dis_l(x̃), I), constant dropped
    pixel_nll: torch.Tensor  # −log p(x|z) in pixel space, the plain VAE's reconstruction term
    discriminator: torch.Tensor  # −L_GAN: what the discriminator minimises
    generator: torch.Tensor  # −log D(x̃) − log D(x_p): the decoder's side, non-saturating
    real_cost: torch.Tensor  # −log D(x): how wrong the discriminator is on dataset images
    fake_cost: torch.Tensor  # −log(1 − D(·)), mean over x̃ and x_p: and on decoded ones


def vaegan_terms(
    vae: VAE, dis: Discriminator, x: torch.Tensor, eps: torch.Tensor, z_prior: torch.Tensor
) -> VaeGanTerms:
    """Larsen et al. 2016, §2 and Algorithm 1, on one batch x (B, C, 64, 64) in [0, 1], with the
    reparameterisation noise ε (B, D) and prior draws z_p (B, D) passed in (the caller's seed):

        L_prior = KL(q(z|x) ‖ N(0, I))
        L_llike = ½ ‖Dis_l(x) − Dis_l(x̃)‖²             x̃ = Dec(z), z = μ + σ·ε
        L_GAN   = log D(x) + log(1 − D(x̃)) + log(1 − D(Dec(z_p)))

    The generator's term is the non-saturating −log D(·) of Goodfellow et al. 2014 (§3) rather
    than log(1 − D(·)), whose gradient vanishes while the discriminator wins easily."""
    mu, logvar = vae.encode(x)
    if logvar is None:
        raise ValueError("a VAE-GAN needs a stochastic encoder (kind 'vae'), not an autoencoder")
    z = reparameterize(mu, logvar, eps)
    decoded = vae.decode(z)  # (B, C, 64, 64) logits / pre-sigmoid means
    cfg = vae.config
    pixel_nll = reconstruction_nll(decoded, x, cfg.likelihood, cfg.gaussian_sigma).mean()
    x_tilde = torch.sigmoid(decoded)
    x_prior = torch.sigmoid(vae.decode(z_prior))  # (B, C, 64, 64)
    b = x.shape[0]
    logits, features = dis(torch.cat([x, x_tilde, x_prior]))  # (3B,), (3B, F)
    real, tilde, prior = logits.split(b)
    f_real, f_tilde, _ = features.split(b)
    # Dis_l(x) is the target: the Gaussian's mean is Dis_l(x̃), unit variance (Larsen eq. 7)
    feature_nll = 0.5 * (f_tilde - f_real.detach()).pow(2).sum(dim=1).mean()
    # log D = −softplus(−logit) and log(1 − D) = −softplus(logit), stable for any logit
    real_cost = F.softplus(-real).mean()
    fake_costs = F.softplus(tilde).mean(), F.softplus(prior).mean()
    return VaeGanTerms(
        kl=kl_per_dim(mu, logvar).mean(dim=0),
        feature_nll=feature_nll,
        pixel_nll=pixel_nll,
        discriminator=real_cost + fake_costs[0] + fake_costs[1],
        generator=F.softplus(-tilde).mean() + F.softplus(-prior).mean(),
        real_cost=real_cost.detach(),
        fake_cost=(fake_costs[0] + fake_costs[1]).detach() / 2,
    )
