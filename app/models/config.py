"""ModelConfig: the model's identity. `config.json` stores exactly this, and it is the only thing
that rebuilds a network."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

KINDS = ("ae", "vae", "cvae")
# conv: Burgess et al. 2018's convolutional stack (sizes in IMAGE_SIZES); mlp: two dense hidden
# layers each way on the flattened image (Kingma & Welling 2014; Burda et al. 2016's kind), any
# side in MLP_SIDES: ~12× fewer multiply-adds per decode than the conv stack at 32×32, which is
# what lets an importance-weighted bound with k = 1,000 cover a test set on a CPU
# pytorch-vae: AntixK/PyTorch-VAE's VanillaVAE networks (3×3 stride-2 convolutions with batch
# norm, widths `hidden_dims`, to 2×2; a tanh output), imported from a Lightning checkpoint and
# served; not trained here
# pythae-conv: pythae's convolutional benchmark networks for MNIST (28×28 grey), CIFAR (32×32)
# and CelebA (64×64 colour), imported from its model.save() folders; not trained here
# (pythae-resnet: its ResNet benchmark networks, for the same three)
ARCHITECTURES = ("conv", "mlp", "pytorch-vae", "pythae-conv", "pythae-resnet")
PYTHAE_CONV_SIDES = {28: 1, 32: 3, 64: 3}  # image side → channels, as pythae's networks fix them
MLP_SIDES = (4, 128)
LIKELIHOODS = ("bernoulli", "gaussian")
# normal: N(0, I); vamp: a VampPrior (Tomczak & Welling 2018), the equal-weight mixture of the
# encoder's posteriors of `prior_components` learned pseudo-inputs, kept in the weights as images
# (`pseudo_inputs`, K × C × H × W) so that the mixture is the encoder's own on them
PRIORS = ("normal", "vamp")
MAX_PRIOR_COMPONENTS = 500  # pythae's VAMP default is 50
# the conv stack halves the image to 4×4, one stride-2 convolution per halving: 64 takes four
# (Burgess et al. 2018), 32 takes three (disentangling-vae's MNIST models); the others build alike
IMAGE_SIZES = (16, 32, 64, 128)
FORMAT_VERSION = 1
# bounds on what a config.json may ask for, so that a stranger's folder cannot make the loader
# allocate gigabytes before its weights are even looked at (app/checkpoints.py also bounds the
# network's total size); the shipped models use 10 latents, 256 hidden units and 32 channels
MAX_LATENT_DIM = 512
MAX_HIDDEN_DIM = 4096
MAX_HIDDEN_LAYERS = 8
MAX_CONV_CHANNELS = 1024
MAX_HIDDEN_DIMS = 8  # pytorch-vae's stride-2 convolutions: 8 reach 512×512
MAX_NAMES = 1000  # label_names (a CVAE's one-hot width) and factor_names
MAX_NAME_CHARS = 100  # each label or factor name, the dataset and the objective


INT_TUPLES = frozenset({"hidden_dims"})  # the tuple fields of integers (the others hold names)


class ConfigError(ValueError):
    """A config that cannot describe a model, with the field that is wrong."""


def _shown(value: Any) -> str:
    """A value as a message quotes it, cut short: a hostile config's strings can be megabytes."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if type(value) is not int or not lo <= value <= hi:  # a bool is not a size
        raise ConfigError(f"{name} must be an integer in {lo}..{hi:,}, got {_shown(value)}")


def _check_names(name: str, names: Any) -> None:
    if len(names) > MAX_NAMES:
        raise ConfigError(f"{name} has {len(names):,} names; the limit is {MAX_NAMES:,}")
    if any(not isinstance(n, str) or len(n) > MAX_NAME_CHARS for n in names):
        raise ConfigError(f"each of {name} must be a string of at most {MAX_NAME_CHARS} characters")


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
    # the MLP's dense layers of hidden_dim before its head, each way (pythae's default networks,
    # imported: 1 of 512); the conv architecture always has two
    hidden_layers: int = 2
    # pytorch-vae only: each convolution's width, input side first (PyTorch-VAE's default is
    # 32, 64, 128, 256, 512); the image side is 2^(len + 1), as its 2×2 bottleneck makes it
    hidden_dims: tuple[int, ...] = ()
    label_names: tuple[str, ...] = ()  # the CVAE's classes, in one-hot order
    dataset: str = "dsprites"
    factor_names: tuple[str, ...] = ()
    architecture: str = "conv"  # one of ARCHITECTURES
    prior: str = "normal"  # one of PRIORS
    prior_components: int = 0  # a vamp prior's pseudo-inputs (0 for the normal prior)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {_shown(self.kind)}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(
                f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {_shown(self.likelihood)}"
            )
        _check_int("latent_dim", self.latent_dim, 1, MAX_LATENT_DIM)
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(
                f"architecture must be one of {', '.join(ARCHITECTURES)}, "
                f"got {_shown(self.architecture)}"
            )
        if self.architecture == "mlp":
            _check_int("image_size", self.image_size, *MLP_SIDES)
        elif self.architecture == "pytorch-vae":
            self._check_pytorch_vae()
        elif self.architecture in ("pythae-conv", "pythae-resnet"):
            side = self.image_size if type(self.image_size) is int else None
            if PYTHAE_CONV_SIDES.get(side or 0) != self.channels or self.kind != "vae":
                raise ConfigError(
                    f"a {self.architecture} network is a vae of 1×28×28 (MNIST), 3×32×32 "
                    f"(CIFAR) or 3×64×64 (CelebA), got a {self.kind} of {_shown(self.channels)}×"
                    f"{_shown(self.image_size)}×{_shown(self.image_size)}"
                )
        elif type(self.image_size) is not int or self.image_size not in IMAGE_SIZES:
            raise ConfigError(
                f"image_size must be one of {', '.join(map(str, IMAGE_SIZES))} (the conv stack "
                f"halves it to 4×4), got {_shown(self.image_size)}"
            )
        if type(self.channels) is not int or self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {_shown(self.channels)}")
        _check_int("hidden_dim", self.hidden_dim, 1, MAX_HIDDEN_DIM)
        _check_int("hidden_layers", self.hidden_layers, 1, MAX_HIDDEN_LAYERS)
        if self.architecture != "mlp" and self.hidden_layers != 2:
            raise ConfigError("hidden_layers is for the mlp architecture; the conv one has two")
        _check_int("conv_channels", self.conv_channels, 1, MAX_CONV_CHANNELS)
        if self.architecture != "pytorch-vae" and self.hidden_dims:
            raise ConfigError("hidden_dims is for the pytorch-vae architecture")
        _check_names("label_names", self.label_names)
        _check_names("factor_names", self.factor_names)
        for name in ("dataset", "objective"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > MAX_NAME_CHARS:
                raise ConfigError(
                    f"{name} must be a string of at most {MAX_NAME_CHARS} characters, "
                    f"got {_shown(value)}"
                )
        if self.kind == "cvae" and len(self.label_names) < 2:
            raise ConfigError("a cvae needs at least two label_names to condition on")
        if self.kind != "cvae" and self.label_names:
            raise ConfigError(f"label_names are only for a cvae, this model is a {self.kind}")
        # `not x >= 0` also refuses NaN, which every comparison answers False
        if not (isinstance(self.beta, int | float) and math.isfinite(self.beta) and self.beta >= 0):
            raise ConfigError(f"beta must be a finite number ≥ 0, got {_shown(self.beta)}")
        if not (
            isinstance(self.gaussian_sigma, int | float)
            and math.isfinite(self.gaussian_sigma)
            and self.gaussian_sigma > 0
        ):
            raise ConfigError(f"gaussian_sigma must be > 0, got {_shown(self.gaussian_sigma)}")
        self._check_prior()
        if self.format_version != FORMAT_VERSION:
            raise ConfigError(
                f"config format_version {_shown(self.format_version)} is not supported "
                f"(this build reads {FORMAT_VERSION})"
            )

    def _check_prior(self) -> None:
        if self.prior not in PRIORS:
            raise ConfigError(f"prior must be one of {', '.join(PRIORS)}, got {_shown(self.prior)}")
        if self.prior == "normal":
            if self.prior_components != 0:
                raise ConfigError("prior_components is for the vamp prior; the normal has none")
            return
        _check_int("prior_components", self.prior_components, 1, MAX_PRIOR_COMPONENTS)
        if self.kind != "vae":
            # an AE has no posterior to mix, and a cvae's would depend on a label
            raise ConfigError(f"a vamp prior is for a vae, this model is a {self.kind}")

    def _check_pytorch_vae(self) -> None:
        dims = self.hidden_dims
        if not 1 <= len(dims) <= MAX_HIDDEN_DIMS:
            raise ConfigError(f"hidden_dims must list 1..{MAX_HIDDEN_DIMS} widths, got {len(dims)}")
        for width in dims:
            _check_int("each of hidden_dims", width, 1, MAX_CONV_CHANNELS)
        side = 2 ** (len(dims) + 1)
        if self.image_size != side:
            raise ConfigError(
                f"image_size must be {side}: {len(dims)} stride-2 convolutions reach 2×2 from "
                f"{side}, got {_shown(self.image_size)}"
            )
        if self.channels != 3:
            raise ConfigError("channels must be 3: PyTorch-VAE's decoder always draws 3")
        if self.kind != "vae" or self.likelihood != "gaussian":
            raise ConfigError(
                "a pytorch-vae network is a vae with a gaussian likelihood (its tanh output is "
                "a pixel mean, scored by squared error)"
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
        if self.hidden_layers == 2:  # as every config written before the field existed
            del d["hidden_layers"]
        if self.prior == "normal":  # as every config written before the fields existed
            del d["prior"], d["prior_components"]
        if self.hidden_dims:
            d["hidden_dims"] = list(self.hidden_dims)
        else:
            del d["hidden_dims"]
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
            if name in INT_TUPLES:
                if not isinstance(value, list) or not all(
                    type(v) is int
                    for v in value  # a bool is not a width
                ):
                    raise ConfigError(f"config field {name} must be a list of integers")
                value = tuple(value)
            elif isinstance(default, tuple):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ConfigError(f"config field {name} must be a list of strings")
                value = tuple(value)
            elif isinstance(default, bool) or not isinstance(default, int | float | str):
                pass
            elif (
                isinstance(default, float)
                and isinstance(value, int | float)
                and not isinstance(value, bool)
            ):
                value = float(value)
            elif not isinstance(value, type(default)) or isinstance(value, bool):
                raise ConfigError(
                    f"config field {name} must be {type(default).__name__}, got {_shown(value)}"
                )
            kwargs[name] = value
        return cls(**kwargs)
