"""The model interface: what every layer above the models asks of a model, whoever made it.

A model answers three things (after diffusers' autoencoders, whose `encode(x).latent_dist` and
`decode(z).sample` name the distribution and the output instead of a tuple read by position):

    model.description           latent size, image shape, labels, likelihood, provenance
    model.encode(x, labels)     images (B, C, H, W) in [0, 1] → Posterior: μ and log σ² (B, D)
    model.decode(z, labels)     z (B, D) → pixel means (B, C, H, W) in [0, 1]

A model may also own a prior p(z) (`model.prior`, app/models/priors.py: a VampPrior's mixture);
one that does not has the standard normal N(0, I), which is what `prior_of(model)` gives it.

Our own networks (trained here or imported) answer it through `NativeModel`; a user's PyTorch
code answers it directly (`latent-explorer serve --plugin package.module:factory`). Nothing above
this module knows which network, which size or where a model came from.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from app.models.config import KINDS, LIKELIHOODS, ModelConfig
from app.models.elbo import kl_per_dim
from app.models.priors import GaussianMixture, Prior, StandardNormal
from app.models.vae import VAE

MAX_SIDE = 512  # pixels: what the pages and the API are sized for
MAX_LATENTS = 512
# a spatial latent (C, h, w), flattened: Stable Diffusion's VAE at 256×256 has 4·32·32 = 4,096
MAX_SPATIAL_LATENTS = 1 << 16


class InterfaceError(ValueError):
    """A model that does not keep the interface's promises, with what is wrong."""


@dataclass(frozen=True)
class ModelDescription:
    """What the explorer needs to know about a model to show it. `kind`: "ae" (a code, no
    posterior), "vae" (a diagonal Gaussian posterior) or "cvae" (a label conditions both)."""

    latent_dim: int
    channels: int  # 1 (grey) or 3 (RGB)
    height: int
    width: int
    kind: str = "vae"
    likelihood: str = "bernoulli"  # how −log p(x|z) is scored: bernoulli or gaussian
    gaussian_sigma: float = 0.1  # the fixed pixel std of a gaussian likelihood
    label_names: tuple[str, ...] = ()  # a cvae's classes, in label order
    dataset: str = ""  # what it learned from ("dsprites", "celeba", ...)
    factor_names: tuple[str, ...] = ()
    latent_names: tuple[str, ...] = ()  # a name per latent ("skin colour"), "" where unnamed
    beta: float | None = None  # the KL weight it was trained with, where known
    objective: str | None = None  # the training recipe's name, where known
    provenance: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # a spatial latent's (channels, height, width), z being it flattened in that order (an
    # AutoencoderKL's); () for a flat one
    latent_shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InterfaceError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.likelihood not in LIKELIHOODS:
            raise InterfaceError(
                f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}"
            )
        if self.latent_shape and (
            len(self.latent_shape) != 3 or math.prod(self.latent_shape) != self.latent_dim
        ):
            raise InterfaceError(
                f"latent_shape must be (channels, height, width) of {self.latent_dim} values, "
                f"got {self.latent_shape!r}"
            )
        for name, value, top in (
            (
                "latent_dim",
                self.latent_dim,
                MAX_SPATIAL_LATENTS if self.latent_shape else MAX_LATENTS,
            ),
            ("height", self.height, MAX_SIDE),
            ("width", self.width, MAX_SIDE),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
                raise InterfaceError(f"{name} must be an integer in 1..{top}, got {value!r}")
        if self.channels not in (1, 3):
            raise InterfaceError(f"channels must be 1 or 3, got {self.channels!r}")
        if self.height != self.width:
            # the pages, masks and upload fitting are square for now
            raise InterfaceError(f"images must be square, got {self.height}×{self.width}")
        if (self.kind == "cvae") != (len(self.label_names) >= 2):
            raise InterfaceError("a cvae, and only a cvae, names two or more labels")
        if self.latent_names and len(self.latent_names) != self.latent_dim:
            raise InterfaceError(
                f"latent_names must name all {self.latent_dim} latents ('' for none), "
                f"got {len(self.latent_names)}"
            )

    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    @property
    def stochastic(self) -> bool:
        return self.kind != "ae"

    @property
    def image_size(self) -> int:
        """The side of the (square) image in pixels."""
        return self.height

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return (self.channels, self.height, self.width)

    @property
    def spatial(self) -> bool:
        """Whether the latent is an image of channels (shown as such, not as one slider each)."""
        return bool(self.latent_shape)

    def latent_name(self, i: int) -> str:
        return self.latent_names[i] if self.latent_names else ""


@dataclass(frozen=True)
class Posterior:
    """q(z|x) = N(mean, diag exp(logvar)); an AE's code is `mean` with no spread (logvar None)."""

    mean: torch.Tensor  # (B, D)
    logvar: torch.Tensor | None = None  # (B, D)

    @property
    def std(self) -> torch.Tensor:
        if self.logvar is None:
            return torch.zeros_like(self.mean)
        return torch.exp(0.5 * self.logvar)

    def kl(self) -> torch.Tensor:
        """KL(q(z|x) ‖ N(0, I)) per latent (B, D), nats; zeros for an AE's code. Against the
        model's own prior, which may not be N(0, I): app.models.priors.prior_kl."""
        if self.logvar is None:
            return torch.zeros_like(self.mean)
        return kl_per_dim(self.mean, self.logvar)


@runtime_checkable
class LatentModel(Protocol):
    """Anything the explorer can show. `labels` is a (B,) long tensor for a cvae, else None."""

    @property
    def description(self) -> ModelDescription: ...

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior: ...

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...


def describe_config(
    config: ModelConfig,
    latent_names: tuple[str, ...] = (),
    provenance: dict[str, Any] | None = None,
) -> ModelDescription:
    """Our config as the interface's description; `latent_names` a name per latent ("" where
    unnamed), `provenance` where it came from (both kept in the model's card)."""
    return ModelDescription(
        latent_dim=config.latent_dim,
        channels=config.channels,
        height=config.image_size,
        width=config.image_size,
        kind=config.kind,
        likelihood=config.likelihood,
        gaussian_sigma=config.gaussian_sigma,
        label_names=config.label_names,
        dataset=config.dataset,
        factor_names=config.factor_names,
        latent_names=latent_names,
        beta=config.beta,
        objective=config.objective,
        provenance=dict(provenance or {}),
    )


class NativeModel(nn.Module):
    """Our VAE family behind the interface, as served: decoding is batch-invariant (a row's
    pixels do not depend on what else is in the batch, so the same z always gives the same
    bytes) and the pixel means are the sigmoid of the decoder's logits (or its tanh output
    clamped, VAE.pixel_means)."""

    def __init__(self, network: VAE, description: ModelDescription) -> None:
        super().__init__()
        self.network = network
        self._description = description
        self._prior = vamp_prior(network) if network.config.prior == "vamp" else None

    @property
    def description(self) -> ModelDescription:
        return self._description

    @property
    def prior(self) -> Prior:
        """p(z): N(0, I), or a VampPrior's mixture of the encoder's posteriors of the
        pseudo-inputs, computed once, when the model is built for serving."""
        return self._prior or StandardNormal(self._description.latent_dim)

    @property
    def pseudo_inputs(self) -> torch.Tensor | None:
        """A VampPrior's pseudo-inputs as images (K, C, H, W) in [0, 1]; None for N(0, I)."""
        if self._prior is None:
            return None
        return self.network.get_buffer("pseudo_inputs").detach().float().cpu().contiguous()

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        mu, logvar = self.network.encode(x, labels)  # labels reach a cvae only
        return Posterior(mu, logvar)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        decoded = self.network.decode(z, labels, batch_invariant=True)
        # the sigmoid image by image too: its vectorised kernel treats a tensor's last values
        # apart, so which values those are depends on the batch's size (at 28×28, an image alone
        # and the same image in a batch of 9 differed by 6e-8 on an AVX-512 CPU)
        return torch.cat([self.network.pixel_means(row) for row in decoded.split(1)])

    def log_likelihood(
        self, x: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """log p(x|z) in nats for each row of z (n, D) against x (n, C, H, W) → (n,), from the
        decoder's logits in one batched pass: what scoring many samples needs (the importance-
        weighted bound decodes 10⁷ of them), where `decode` goes row by row for exact bytes.
        An optional method of the interface: a model without it is scored from `decode`."""
        return -self.network.reconstruction_nll(self.network.decode(z, labels), x)


@torch.no_grad()
def vamp_prior(network: VAE) -> GaussianMixture:
    """The VampPrior of a network with pseudo-inputs: (1/K) Σ_k q(z | u_k), the encoder's means
    and log-variances of the K images in one batch, in eval mode (batch norm's running
    statistics), as pythae's VAMP._log_p_z computes them."""
    was_training = network.training
    network.eval()
    try:
        mean, logvar = network.encode(network.get_buffer("pseudo_inputs").float())
    finally:
        network.train(was_training)
    assert logvar is not None  # a vamp prior is a vae's (ModelConfig)
    return GaussianMixture(mean, logvar)


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 over the state dict in key order: equal digests mean bit-identical weights."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
