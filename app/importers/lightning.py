"""A PyTorch Lightning checkpoint of an AntixK/PyTorch-VAE model as one of our checkpoint folders
(`latent-explorer import lightning CKPT --config YAML`).

PyTorch-VAE trains with `run.py --config configs/NAME.yaml`: the YAML's `model_params` build the
network (`name`, `in_channels`, `latent_dim`, optionally `hidden_dims`), `exp_params.kld_weight`
weighs its KL, and Lightning's `ModelCheckpoint` writes `last.ckpt`, a `torch.save` of a dict whose
`state_dict` holds the `VAEXperiment` module's tensors, the network's under `model.`. Here the
file goes through PyTorch's weights-only loader (a checkpoint that pickles anything but tensors,
numbers and strings is refused, nothing in it run), the network is rebuilt from the YAML as our
`pytorch-vae` architecture (app/models/vae.py) and every tensor is checked by name and shape.

The networks are those of VanillaVAE, which BetaVAE, DIPVAE, InfoVAE, FactorVAE, LogCoshVAE and
MSSIMVAE build alike (read from PyTorch-VAE's source; FactorVAE's discriminator is left out, as
serving does not use it). Its loss, mean squared error per pixel + kld_weight · b · KL (b is 1, or
BetaVAE's beta), is the −ELBO of a Gaussian likelihood with σ² = N · kld_weight / 2 over N pixel
values and β = b, which is what the card records and the explorer scores with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import yaml

from app.checkpoints import Checkpoint
from app.importers import ModelImportError
from app.importers.common import (
    load_torch_file,
    output_folder,
    read_source_file,
    write_imported,
)
from app.models import VAE, ConfigError, ModelConfig
from app.quoting import listed

REPOSITORY = "AntixK/PyTorch-VAE"
URL = "https://github.com/AntixK/PyTorch-VAE"
MAX_CHECKPOINT_BYTES = 1 << 30  # the default VanillaVAE's last.ckpt, with Adam's state: ~45 MB
MAX_YAML_BYTES = 1 << 20
DEFAULT_HIDDEN_DIMS = (32, 64, 128, 256, 512)  # VanillaVAE's, where the YAML names none
DEFAULT_SIDE = 64  # VAEDataset's patch_size in every shipped config
PREFIX = "model."  # VAEXperiment keeps the network as self.model

# PyTorch-VAE's model names whose networks are VanillaVAE's → (our objective, their parts that
# serving leaves out)
NETWORKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "VanillaVAE": ("beta", ()),
    "BetaVAE": ("beta", ()),  # "capacity" with loss_type B: see objective_of
    "DIPVAE": ("dip", ()),
    "InfoVAE": ("info", ()),
    "FactorVAE": ("factor", ("discriminator.",)),
    "LogCoshVAE": ("logcosh", ()),
    "MSSIMVAE": ("mssim", ()),
}
# their module names → ours (app.models.vae.PyTorchVAEEncoder/Decoder)
RENAMED = (
    ("encoder.", "encoder.convs."),
    ("fc_mu.", "encoder.fc_mu."),
    ("fc_var.", "encoder.fc_var."),
    ("decoder_input.", "decoder.decoder_input."),
    ("decoder.", "decoder.deconvs."),
    ("final_layer.", "decoder.final_layer."),
)
# the model_params kept on the card, where the YAML gives them
KEPT = ("beta", "gamma", "loss_type", "max_capacity", "Capacity_max_iter", "alpha", "kernel_type",
        "reg_weight", "lambda_diag", "lambda_offdiag")  # fmt: skip


@dataclass(frozen=True)
class PyTorchVAEConfig:
    """What the YAML says about the network and its loss, checked."""

    name: str
    latent_dim: int
    hidden_dims: tuple[int, ...]
    side: int
    kld_weight: float
    model_params: dict[str, Any]  # the hyperparameters in KEPT that it gives

    @property
    def pixels(self) -> int:
        return 3 * self.side * self.side

    @property
    def kl_multiplier(self) -> float:
        """b in their loss, MSE + kld_weight · b · KL: BetaVAE's beta (gamma with loss_type
        B, whose KL term is |KL − C|), else 1."""
        if self.name != "BetaVAE":
            return 1.0
        key = "gamma" if self.model_params.get("loss_type", "B") == "B" else "beta"
        default = 1000.0 if key == "gamma" else 4.0  # BetaVAE's own defaults
        value = self.model_params.get(key, default)
        return float(value)


def read_yaml_config(path: Path) -> PyTorchVAEConfig:
    """A PyTorch-VAE config YAML (configs/NAME.yaml), parsed by yaml.safe_load (plain data,
    never objects) and checked field by field."""
    if not path.is_file():
        raise ModelImportError(f"{path}: no such file (the YAML the model was trained with)")
    try:
        data = yaml.safe_load(read_source_file(path, MAX_YAML_BYTES))
    except yaml.YAMLError as e:
        first = " ".join(str(e).split())
        raise ModelImportError(f"{path}: not YAML ({first[:120]})") from None
    return parse_yaml_config(data, str(path))


def _section(data: dict[str, Any], key: str, where: str, required: bool) -> dict[str, Any]:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise ModelImportError(f"{where}: {key} must be a mapping, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_yaml_config(data: Any, where: str) -> PyTorchVAEConfig:
    if not isinstance(data, dict):
        raise ModelImportError(f"{where}: not a mapping of sections (model_params, ...)")
    params = _section(data, "model_params", where, required=True)
    name = params.get("name")
    if name not in NETWORKS:
        raise ModelImportError(
            f"{where}: model_params.name {_shown(name)} is not a PyTorch-VAE model imported "
            f"here ({', '.join(NETWORKS)}: those built on VanillaVAE's networks)"
        )
    channels = params.get("in_channels")
    if channels != 3 or type(channels) is not int:
        raise ModelImportError(
            f"{where}: model_params.in_channels must be 3 (PyTorch-VAE's decoder always draws "
            f"3 channels), got {_shown(channels)}"
        )
    latent = params.get("latent_dim")
    if type(latent) is not int or latent < 1:
        raise ModelImportError(
            f"{where}: model_params.latent_dim must be a positive integer, got {_shown(latent)}"
        )
    dims = params.get("hidden_dims", list(DEFAULT_HIDDEN_DIMS))
    if not isinstance(dims, list) or not dims or not all(type(d) is int for d in dims):
        raise ModelImportError(
            f"{where}: model_params.hidden_dims must be a list of integers, got {_shown(dims)}"
        )
    side = _section(data, "data_params", where, required=False).get("patch_size", DEFAULT_SIDE)
    if type(side) is not int:
        raise ModelImportError(
            f"{where}: data_params.patch_size must be an integer, got {_shown(side)}"
        )
    weight = _section(data, "exp_params", where, required=True).get("kld_weight")
    if (
        not isinstance(weight, int | float)
        or isinstance(weight, bool)
        or not math.isfinite(weight)
        or weight <= 0
    ):
        raise ModelImportError(
            f"{where}: exp_params.kld_weight must be a number > 0 (the KL's weight against the "
            f"squared error), got {_shown(weight)}"
        )
    kept = {k: params[k] for k in KEPT if isinstance(params.get(k), int | float | str)}
    return PyTorchVAEConfig(name, latent, tuple(dims), side, float(weight), kept)


def our_config(theirs: PyTorchVAEConfig, dataset: str, where: str) -> ModelConfig:
    """Our config of their network: the `pytorch-vae` architecture, a Gaussian likelihood of
    σ² = N · kld_weight / 2 and β = their KL multiplier (see the module's docstring)."""
    objective = NETWORKS[theirs.name][0]
    if theirs.name == "BetaVAE" and theirs.model_params.get("loss_type", "B") == "B":
        objective = "capacity"
    try:
        return ModelConfig(
            kind="vae",
            latent_dim=theirs.latent_dim,
            beta=theirs.kl_multiplier,
            objective=objective,
            channels=3,
            image_size=theirs.side,
            likelihood="gaussian",
            gaussian_sigma=math.sqrt(theirs.pixels * theirs.kld_weight / 2),
            architecture="pytorch-vae",
            hidden_dims=theirs.hidden_dims,
            dataset=dataset,
        )
    except ConfigError as e:
        raise ModelImportError(f"{where}: {e}") from None


def convert_state_dict(
    theirs: dict[str, torch.Tensor], model_name: str, config: ModelConfig, where: str
) -> dict[str, torch.Tensor]:
    """The checkpoint's `state_dict` under our names: `model.` removed, their modules renamed,
    every tensor's name, shape and values checked against the network config builds."""
    left_out = NETWORKS[model_name][1]
    outside = sorted(k for k in theirs if not k.startswith(PREFIX))
    ours: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in theirs.items():
        if not key.startswith(PREFIX):
            continue
        inner = key[len(PREFIX) :]
        if inner.startswith(left_out):
            continue
        new = next((to + inner[len(fr) :] for fr, to in RENAMED if inner.startswith(fr)), None)
        if new is None:
            unknown.append(key)
        else:
            ours[new] = value
    expected = VAE(config).state_dict()
    missing = [PREFIX + _theirs(k) for k in expected if k not in ours]
    extra = outside + unknown + [PREFIX + _theirs(k) for k in ours if k not in expected]
    if missing or extra:
        parts = ([f"missing {listed(missing)}"] if missing else []) + (
            [f"not of {model_name}'s networks: {listed(extra)}"] if extra else []
        )
        raise ModelImportError(f"{where}: {'; '.join(parts)}")
    for key, value in ours.items():
        want = expected[key]
        if tuple(value.shape) != tuple(want.shape):
            raise ModelImportError(
                f"{where}: {PREFIX + _theirs(key)} has shape {tuple(value.shape)}, but the "
                f"config's sizes make it {tuple(want.shape)}"
            )
        if value.is_floating_point() != want.is_floating_point():
            raise ModelImportError(
                f"{where}: {PREFIX + _theirs(key)} is {str(value.dtype).removeprefix('torch.')}"
            )
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ModelImportError(f"{where}: {PREFIX + _theirs(key)} holds NaN or infinite values")
    return {k: v.to(expected[k].dtype) for k, v in ours.items()}


def _theirs(ours: str) -> str:
    """Our tensor name as PyTorch-VAE's network names it (for the messages)."""
    return next(fr + ours[len(to) :] for fr, to in reversed(RENAMED) if ours.startswith(to))


def import_lightning(
    ckpt: Path,
    config_yaml: Path,
    out: Path | None = None,
    *,
    name: str | None = None,
    dataset: str = "celeba",
    checkpoints_dir: Path = Path("checkpoints"),
    command: str | None = None,
) -> Checkpoint:
    """Convert a Lightning checkpoint `ckpt` of a PyTorch-VAE model, trained with `config_yaml`,
    into our checkpoint folder `out` (default `checkpoints_dir/NAME`, NAME `name` or
    pytorch-vae-<model>-<the checkpoint's stem>) and load it back. A folder that exists at
    `out` is refused; on any error nothing is written."""
    ckpt, config_yaml = Path(ckpt), Path(config_yaml)
    if not ckpt.is_file():
        raise ModelImportError(f"{ckpt}: no such file (expected a Lightning .ckpt)")
    theirs = read_yaml_config(config_yaml)
    name, out = output_folder(
        name, out, checkpoints_dir, lambda: f"pytorch-vae-{theirs.name.lower()}-{ckpt.stem}"
    )
    saved, digest = load_torch_file(
        ckpt, MAX_CHECKPOINT_BYTES, "a Lightning checkpoint, whose state_dict holds the tensors"
    )
    if not isinstance(saved, dict) or not isinstance(saved.get("state_dict"), dict):
        raise ModelImportError(f"{ckpt}: no 'state_dict' in it (not a Lightning checkpoint)")
    state = saved["state_dict"]
    odd = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise ModelImportError(f"{ckpt}: state_dict entries that are not tensors: {listed(odd)}")
    config = our_config(theirs, dataset, str(config_yaml))
    model = VAE(config)
    model.load_state_dict(convert_state_dict(state, theirs.name, config, str(ckpt)), strict=True)
    model.eval()
    trained = {k: saved[k] for k in ("epoch", "global_step") if type(saved.get(k)) is int}
    version = saved.get("pytorch-lightning_version")
    card: dict[str, Any] = {
        "name": name,
        "recipe": f"PyTorch-VAE {theirs.name} ({len(theirs.hidden_dims)} convolutions each way, "
        f"{theirs.latent_dim} latents); trained with Lightning, imported",
        "objective": {
            "objective": config.objective,
            "pytorch_vae_model": theirs.name,
            "kld_weight": theirs.kld_weight,
            "served_likelihood": f"gaussian, sigma² = {theirs.pixels} pixel values × "
            f"kld_weight / 2, beta = {theirs.kl_multiplier:g}: the ELBO their loss weights",
            **theirs.model_params,
        },
        "dataset": dataset,
        "source": {
            "repository": REPOSITORY,
            "url": URL,
            "checkpoint": ckpt.name,
            "config": config_yaml.name,
            "imported": datetime.now(UTC).date().isoformat(),
            "checkpoint_sha256": digest,
            **({"lightning_version": version} if isinstance(version, str) else {}),
            **trained,
        },
    }
    if command:
        card["command"] = command
    return write_imported(out, model, card)
