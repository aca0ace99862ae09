"""A diffusers `AutoencoderKL` folder (`save_pretrained`'s `config.json` and
`diffusion_pytorch_model.safetensors`) served from the checkpoints folder beside our own, with a
`card.json` of ours where one is there (what it learned from, how it was trained).

Loading is as strict as for our folders: config.json checked field by field and the network's
size counted before anything is built (app.models.autoencoder_kl), the safetensors header held to
the names and shapes the config implies before a tensor is read. float16 and bfloat16 weights (as
diffusers' `fp16` variants are saved) widen to float32 exactly; other dtypes are refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from app.checkpoints.files import CheckpointError, check_file, read_json
from app.checkpoints.folder import CONFIG, MAX_FOLDER_JSON_BYTES, MAX_HEADER_BYTES, read_card
from app.checkpoints.served import ServedModel
from app.models.autoencoder_kl import (
    CLASS_NAME,
    AutoencoderKLConfig,
    AutoencoderKLConfigError,
    build_network,
    served_model,
)
from app.quoting import listed

WEIGHTS = "diffusion_pytorch_model.safetensors"
WIDENED = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def is_diffusers_folder(folder: Path) -> bool:
    """Whether `folder` is laid out as diffusers saves a model (its weights file is there)."""
    return (Path(folder) / WEIGHTS).exists()


def read_autoencoder_kl_config(folder: Path) -> tuple[AutoencoderKLConfig, dict[str, Any]]:
    """(the checked config, diffusers' own `_` fields: its version, where it came from)."""
    data = read_json(Path(folder) / CONFIG, MAX_FOLDER_JSON_BYTES)
    try:
        config = AutoencoderKLConfig.from_json(data)
    except AutoencoderKLConfigError as e:
        raise CheckpointError(f"{folder}: config.json is invalid for an {CLASS_NAME}: {e}") from e
    extra = {k.lstrip("_"): v for k, v in data.items() if k.startswith("_") and k != "_class_name"}
    return config, {k: v for k, v in extra.items() if isinstance(v, str) and len(v) <= 200}


def load_autoencoder_kl(folder: Path, side: int | None = None) -> ServedModel:
    """The AutoencoderKL in `folder` as a served model; `side`: the image side it is shown at
    (default its config's sample_size; any multiple of its pixels per latent works, the
    network being convolutional)."""
    folder = Path(folder)
    config, provenance = read_autoencoder_kl_config(folder)
    side = config.sample_size if side is None else side
    if side % config.downsampling or not config.downsampling <= side <= 512:
        raise CheckpointError(
            f"{folder}: a side of {side} is not a multiple of {config.downsampling} in "
            f"{config.downsampling}..512"
        )
    try:
        network = build_network(config, device="meta")
    except ImportError:
        raise CheckpointError(
            f"{folder}: an {CLASS_NAME} folder needs diffusers, which is not installed "
            "(pip install 'latent-explorer[diffusers]')"
        ) from None
    except AutoencoderKLConfigError as e:
        raise CheckpointError(f"{folder}: config.json: {e}") from e
    tensors, digest = _read_weights(folder / WEIGHTS, network.state_dict())
    network.load_state_dict(tensors, strict=True, assign=True)
    network.eval()
    card = read_card(folder)
    model = served_model(
        network,
        config,
        side,
        card.dataset or "",
        {"format": f"diffusers {CLASS_NAME}", **provenance},
    )
    return ServedModel(name=folder.name, model=model, card=card, digest=digest, path=folder)


def _read_weights(
    file: Path, expected: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], str]:
    """The weights file's tensors as float32, every name and shape held to `expected` first,
    and the file's sha256."""
    size = check_file(file)
    needed = sum(v.numel() * 4 for v in expected.values())
    if size > needed + MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{file}: {file.name} is {size:,} bytes; config.json's network needs {needed:,}"
        )
    try:
        with safe_open(str(file), framework="pt") as f:
            found = {k: f.get_slice(k) for k in f.keys()}  # noqa: SIM118
            missing = [k for k in expected if k not in found]
            extra = [k for k in found if k not in expected]
            wrong = [
                f"{k} is {tuple(found[k].get_shape())} but config.json needs {tuple(v.shape)}"
                for k, v in expected.items()
                if k in found and tuple(found[k].get_shape()) != tuple(v.shape)
            ]
            dtypes = [f"{k} is {s.get_dtype()}" for k, s in found.items()
                      if s.get_dtype() not in WIDENED]  # fmt: skip
            problems = (
                ([f"missing {listed(missing, 3)}"] if missing else [])
                + ([f"not in config.json's network: {listed(extra, 3)}"] if extra else [])
                + wrong[:3]
                + ([f"{listed(dtypes, 3)} (float32, float16 or bfloat16 only)"] if dtypes else [])
            )
            if problems:
                raise CheckpointError(f"{file}: {'; '.join(problems)}")
            tensors = {k: f.get_tensor(k).float() for k in expected}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{file}: not a readable safetensors file ({e})") from e
    for key, value in tensors.items():
        if not torch.isfinite(value).all():
            raise CheckpointError(f"{file}: {key} holds NaN or infinite values")
    h = hashlib.sha256()
    with file.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            h.update(block)
    return tensors, h.hexdigest()
