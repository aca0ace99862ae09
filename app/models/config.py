"""ModelConfig: the model's identity. `config.json` stores exactly this, and it is the only thing
that rebuilds a network."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

KINDS = ("ae", "vae", "cvae")
LIKELIHOODS = ("bernoulli", "gaussian")
# the conv stack halves the image to 4×4, one stride-2 convolution per halving: 64 takes four
# (Burgess et al. 2018), 32 takes three (disentangling-vae's MNIST models); the others build alike
IMAGE_SIZES = (16, 32, 64, 128)
FORMAT_VERSION = 1


class ConfigError(ValueError):
    """A config that cannot describe a model, with the field that is wrong."""


@dataclass(frozen=True)
class ModelConfig:
    kind: str = (
        "vae"  # ae: deterministic autoencoder; vae: β-weighted ELBO; cvae: label-conditioned
    )
    latent_dim: int = 10  # Higgins et al. 2017 and Burgess et al. 2018 use 10 on dSprites
    beta: float = 1.0  # weight on KL(q(z|x) ‖ N(0, I)); 1 is the plain VAE (unused by the AE)
    objective: str = "beta"  # the training recipe's name (see app/models/objectives.py)
    channels: int = 1  # 1 for dSprites, 3 for colour
    image_size: int = 64  # square side in pixels, one of IMAGE_SIZES
    likelihood: str = "bernoulli"  # bernoulli for binary pixels, gaussian for grey levels/colour
    gaussian_sigma: float = 0.1  # fixed pixel std of the Gaussian likelihood (values in [0, 1])
    conv_channels: int = 32  # Burgess et al. 2018: four 4×4 stride-2 convs with 32 channels
    hidden_dim: int = 256  # Burgess et al. 2018: two dense layers of 256
    label_names: tuple[str, ...] = ()  # the CVAE's classes, in one-hot order
    dataset: str = "dsprites"
    factor_names: tuple[str, ...] = ()
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(
                f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}"
            )
        if not (isinstance(self.latent_dim, int) and 1 <= self.latent_dim <= 512):
            raise ConfigError(f"latent_dim must be an integer in 1..512, got {self.latent_dim!r}")
        if self.image_size not in IMAGE_SIZES:
            raise ConfigError(
                f"image_size must be one of {', '.join(map(str, IMAGE_SIZES))} (the conv stack "
                f"halves it to 4×4), got {self.image_size!r}"
            )
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels!r}")
        if self.kind == "cvae" and len(self.label_names) < 2:
            raise ConfigError("a cvae needs at least two label_names to condition on")
        if self.kind != "cvae" and self.label_names:
            raise ConfigError(f"label_names are only for a cvae, this model is a {self.kind}")
        if self.beta < 0:
            raise ConfigError(f"beta must be ≥ 0, got {self.beta}")
        if not self.gaussian_sigma > 0:
            raise ConfigError(f"gaussian_sigma must be > 0, got {self.gaussian_sigma}")
        if self.format_version != FORMAT_VERSION:
            raise ConfigError(
                f"config format_version {self.format_version} is not supported "
                f"(this build reads {FORMAT_VERSION})"
            )

    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    @property
    def n_convs(self) -> int:
        """Stride-2 convolutions from image_size down to 4×4: 4 at 64, 3 at 32."""
        return self.image_size.bit_length() - 3

    @property
    def stochastic(self) -> bool:
        return self.kind != "ae"

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["label_names"] = list(self.label_names)
        d["factor_names"] = list(self.factor_names)
        return d

    @classmethod
    def from_json(cls, data: Any) -> ModelConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"config must be a JSON object, got {type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"config has unknown fields: {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            default = known[name].default
            if isinstance(default, tuple):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ConfigError(f"config field {name} must be a list of strings")
                value = tuple(value)
            elif isinstance(default, bool) or not isinstance(default, int | float | str):
                pass
            elif isinstance(default, float) and isinstance(value, int | float):
                value = float(value)
            elif not isinstance(value, type(default)) or isinstance(value, bool):
                raise ConfigError(
                    f"config field {name} must be {type(default).__name__}, got {value!r}"
                )
            kwargs[name] = value
        return cls(**kwargs)
