"""diffusers' `AutoencoderKL` (the VAE inside Stable Diffusion and most image generators) behind
the model interface, its latent kept spatial.

Its posterior is a diagonal Gaussian over a small image of latents, C channels at 1/2^(n−1) the
side for n blocks (Stable Diffusion's: 4 channels at 1/8). The explorer's z is that image
flattened in (C, h, w) order and scaled as diffusers' pipelines scale it before the diffusion
model sees it, so that N(0, I) is roughly where the data's latents lie:

    z = (latent − shift_factor − latents_mean) · scaling_factor / latents_std

(shift_factor, latents_mean and latents_std where the config gives them, per channel for the
last two), and decoding undoes it. Images go in as the interface's [0, 1] and reach the network as
its [−1, 1]; its output comes back as (x + 1)/2, clamped.

The config is checked here against limits before anything is built, and the network's size
counted on the meta device (no memory), so a stranger's config.json cannot make the loader
allocate gigabytes; diffusers is imported only when such a model is built (an extra:
`pip install 'latent-explorer[diffusers]'`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from app.models.interface import ModelDescription, Posterior

CLASS_NAME = "AutoencoderKL"
DOWN_BLOCK = "DownEncoderBlock2D"
UP_BLOCK = "UpDecoderBlock2D"
ACTIVATIONS = ("silu", "swish", "mish", "gelu", "relu")
MAX_BLOCKS = 6
MAX_WIDTH = 1024
MAX_LAYERS_PER_BLOCK = 4
MAX_LATENT_CHANNELS = 64
MAX_GROUPS = 128
MAX_SIDE = 512  # the interface's
# Stable Diffusion's VAE has 83.7 M parameters; four times that is still refused before building
MAX_PARAMETERS = 1 << 28


# Stable Diffusion v1's VAE config.json as published (the v1-5 pipeline's vae/ and
# stabilityai/sd-vae-ft-mse): its shape, for building one with random weights where none can be
# downloaded (tests, bench/autoencoder_kl_speed.py)
SD_VAE_CONFIG: dict[str, Any] = {
    "_class_name": "AutoencoderKL", "_diffusers_version": "0.4.2", "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4,
    "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3, "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4, "scaling_factor": 0.18215,
}  # fmt: skip


class AutoencoderKLConfigError(ValueError):
    """A config.json that cannot describe an AutoencoderKL served here, with the field."""


@dataclass(frozen=True)
class AutoencoderKLConfig:
    """An AutoencoderKL's config.json, checked; `to_diffusers()` the arguments that build it."""

    in_channels: int = 3
    out_channels: int = 3
    block_out_channels: tuple[int, ...] = (64,)
    layers_per_block: int = 1
    act_fn: str = "silu"
    latent_channels: int = 4
    norm_num_groups: int = 32
    sample_size: int = 32
    scaling_factor: float = 0.18215
    shift_factor: float | None = None
    latents_mean: tuple[float, ...] | None = None
    latents_std: tuple[float, ...] | None = None
    force_upcast: bool = True
    use_quant_conv: bool = True
    use_post_quant_conv: bool = True
    mid_block_add_attention: bool = True

    @property
    def downsampling(self) -> int:
        """How many pixels a latent spans each way: 2^(blocks − 1)."""
        return 2 ** (len(self.block_out_channels) - 1)

    def latent_shape(self, side: int) -> tuple[int, int, int]:
        return (self.latent_channels, side // self.downsampling, side // self.downsampling)

    def to_diffusers(self) -> dict[str, Any]:
        n = len(self.block_out_channels)
        args: dict[str, Any] = {k: getattr(self, k) for k in self.__dataclass_fields__}
        args["down_block_types"] = (DOWN_BLOCK,) * n
        args["up_block_types"] = (UP_BLOCK,) * n
        return args

    @classmethod
    def from_json(cls, data: Any) -> AutoencoderKLConfig:
        """diffusers' config.json (its `_`-prefixed keys are provenance, kept elsewhere)."""
        if not isinstance(data, dict):
            raise AutoencoderKLConfigError("not a JSON object")
        if data.get("_class_name") != CLASS_NAME:
            raise AutoencoderKLConfigError(
                f"_class_name is {_shown(data.get('_class_name'))}, not {CLASS_NAME!r}"
            )
        fields = set(cls.__dataclass_fields__) | {"down_block_types", "up_block_types"}
        unknown = sorted(k for k in data if not k.startswith("_") and k not in fields)
        if unknown:
            raise AutoencoderKLConfigError(f"unknown fields: {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for name in ("in_channels", "out_channels", "layers_per_block", "latent_channels",
                     "norm_num_groups", "sample_size"):  # fmt: skip
            if name in data:
                kwargs[name] = _int(name, data[name])
        for name in ("force_upcast", "use_quant_conv", "use_post_quant_conv",
                     "mid_block_add_attention"):  # fmt: skip
            if name in data:
                if not isinstance(data[name], bool):
                    raise AutoencoderKLConfigError(f"{name} must be true or false")
                kwargs[name] = data[name]
        if "act_fn" in data:
            kwargs["act_fn"] = data["act_fn"]
        if "block_out_channels" in data:
            kwargs["block_out_channels"] = _ints("block_out_channels", data["block_out_channels"])
        if "scaling_factor" in data:
            kwargs["scaling_factor"] = _number("scaling_factor", data["scaling_factor"])
        if data.get("shift_factor") is not None:
            kwargs["shift_factor"] = _number("shift_factor", data["shift_factor"])
        for name in ("latents_mean", "latents_std"):
            if data.get(name) is not None:
                kwargs[name] = _numbers(name, data[name])
        config = cls(**kwargs)
        n = len(config.block_out_channels)
        for name, kind in (("down_block_types", DOWN_BLOCK), ("up_block_types", UP_BLOCK)):
            types = data.get(name, [kind] * n)
            if not isinstance(types, list) or types != [kind] * len(types) or len(types) != n:
                raise AutoencoderKLConfigError(
                    f"{name} must be {n} × {kind!r} (one per block_out_channels), "
                    f"got {_shown(types)}"
                )
        return config

    def __post_init__(self) -> None:
        if self.in_channels not in (1, 3) or self.out_channels != self.in_channels:
            raise AutoencoderKLConfigError(
                f"in_channels and out_channels must both be 1 or both be 3, got "
                f"{self.in_channels} and {self.out_channels}"
            )
        blocks = self.block_out_channels
        if not 1 <= len(blocks) <= MAX_BLOCKS:
            raise AutoencoderKLConfigError(
                f"block_out_channels must list 1..{MAX_BLOCKS} widths, got {len(blocks)}"
            )
        _check("layers_per_block", self.layers_per_block, 1, MAX_LAYERS_PER_BLOCK)
        _check("latent_channels", self.latent_channels, 1, MAX_LATENT_CHANNELS)
        _check("norm_num_groups", self.norm_num_groups, 1, MAX_GROUPS)
        for width in blocks:
            _check("each of block_out_channels", width, 1, MAX_WIDTH)
            if width % self.norm_num_groups:
                raise AutoencoderKLConfigError(
                    f"block_out_channels {width} is not a multiple of norm_num_groups "
                    f"{self.norm_num_groups} (group norm splits the channels evenly)"
                )
        _check("sample_size", self.sample_size, self.downsampling, MAX_SIDE)
        if self.sample_size % self.downsampling:
            raise AutoencoderKLConfigError(
                f"sample_size {self.sample_size} is not a multiple of {self.downsampling}, the "
                f"pixels per latent of {len(blocks)} blocks"
            )
        if self.act_fn not in ACTIVATIONS:
            raise AutoencoderKLConfigError(
                f"act_fn must be one of {', '.join(ACTIVATIONS)}, got {_shown(self.act_fn)}"
            )
        if not self.scaling_factor > 0:
            raise AutoencoderKLConfigError("scaling_factor must be > 0")
        for name in ("latents_mean", "latents_std"):
            values = getattr(self, name)
            if values is not None and len(values) != self.latent_channels:
                raise AutoencoderKLConfigError(
                    f"{name} must give one value per latent channel ({self.latent_channels}), "
                    f"got {len(values)}"
                )
        if self.latents_std is not None and not all(s > 0 for s in self.latents_std):
            raise AutoencoderKLConfigError("latents_std must be > 0")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(name: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise AutoencoderKLConfigError(f"{name} must be in {lo}..{hi:,}, got {value:,}")


def _int(name: str, value: Any) -> int:
    if type(value) is not int:
        raise AutoencoderKLConfigError(f"{name} must be an integer, got {_shown(value)}")
    return value


def _ints(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_BLOCKS * 4:
        raise AutoencoderKLConfigError(f"{name} must be a list of integers, got {_shown(value)}")
    return tuple(_int(f"each of {name}", v) for v in value)


def _number(name: str, value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise AutoencoderKLConfigError(f"{name} must be a finite number, got {_shown(value)}")
    return float(value)


def _numbers(name: str, value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) > MAX_LATENT_CHANNELS:
        raise AutoencoderKLConfigError(f"{name} must be a list of numbers, got {_shown(value)}")
    return tuple(_number(f"each of {name}", v) for v in value)


def build_network(config: AutoencoderKLConfig, device: str | torch.device = "cpu") -> Any:
    """diffusers' AutoencoderKL of `config`, refused before it is built where it would exceed
    MAX_PARAMETERS (counted on the meta device)."""
    from diffusers import AutoencoderKL  # noqa: PLC0415 - an extra, imported where used

    with torch.device("meta"):
        shell: Any = AutoencoderKL(**config.to_diffusers())
        n = sum(p.numel() for p in shell.parameters())
    if n > MAX_PARAMETERS:
        raise AutoencoderKLConfigError(
            f"the config describes a network of {n:,} parameters; the limit is {MAX_PARAMETERS:,}"
        )
    with torch.device(device):
        return AutoencoderKL(**config.to_diffusers())


class AutoencoderKLModel(nn.Module):
    """An AutoencoderKL as the explorer serves it (see the module's docstring): z (B, C·h·w)
    flattened and scaled; decoding image by image, so a z's pixels never depend on the batch."""

    offset: torch.Tensor
    gain: torch.Tensor

    def __init__(
        self, network: Any, config: AutoencoderKLConfig, description: ModelDescription
    ) -> None:
        super().__init__()
        self.network: Any = network
        self.config = config
        self._description = description
        c = config.latent_channels
        mean = config.latents_mean or (0.0,) * c
        std = config.latents_std or (1.0,) * c
        shift = config.shift_factor or 0.0
        # z = (latent − offset) · gain, per channel
        self.register_buffer("offset", torch.tensor(mean).view(1, c, 1, 1) + shift, False)
        self.register_buffer(
            "gain", config.scaling_factor / torch.tensor(std).view(1, c, 1, 1), False
        )

    @property
    def description(self) -> ModelDescription:
        return self._description

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        c, h, w = self._description.latent_shape
        return (c, h, w)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        moments = self.network._encode(x * 2 - 1)  # noqa: SLF001 - the moments before sampling
        mean, logvar = moments.chunk(2, dim=1)
        logvar = logvar.clamp(-30.0, 20.0)  # as diffusers' DiagonalGaussianDistribution
        z = (mean - self.offset) * self.gain
        logvar = logvar + 2 * torch.log(self.gain)
        return Posterior(z.flatten(1), logvar.flatten(1))

    def latents(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, C·h·w) → the network's unscaled latents (B, C, h, w)."""
        return z.view(-1, *self.latent_shape) / self.gain + self.offset

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        images = [self.network.decode(row).sample for row in self.latents(z).split(1)]
        return (torch.cat(images) / 2 + 0.5).clamp(0.0, 1.0)


def served_model(
    network: Any,
    config: AutoencoderKLConfig,
    side: int | None = None,
    dataset: str = "",
    provenance: dict[str, Any] | None = None,
) -> AutoencoderKLModel:
    """An AutoencoderKL network of `config` behind the interface, its images `side` pixels
    square (default the config's sample_size)."""
    side = config.sample_size if side is None else side
    c, h, w = config.latent_shape(side)
    description = ModelDescription(
        latent_dim=c * h * w,
        channels=config.in_channels,
        height=side,
        width=side,
        kind="vae",
        likelihood="gaussian",
        dataset=dataset,
        objective=CLASS_NAME,
        provenance=dict(provenance or {}),
        latent_shape=(c, h, w),
    )
    return AutoencoderKLModel(network, config, description)


def is_autoencoder_kl(obj: Any) -> bool:
    """Whether `obj` is a diffusers AutoencoderKL object (a notebook's, say)."""
    return type(obj).__name__ == CLASS_NAME and type(obj).__module__.startswith("diffusers.")


def from_object(obj: Any, dataset: str = "") -> AutoencoderKLModel:
    """A diffusers AutoencoderKL held in memory, checked as its config.json would be."""
    fields = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dict(obj.config).items()
        if not k.startswith("_")
    }
    config = AutoencoderKLConfig.from_json({"_class_name": CLASS_NAME, **fields})
    return served_model(obj, config, dataset=dataset, provenance={"format": "diffusers object"})
