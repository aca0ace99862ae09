"""Checkpoint folders: save atomically, load strictly, never unpickle.

    checkpoints/NAME/
      model.safetensors   weights only
      config.json         ModelConfig: everything that rebuilds the network
      card.json           how it was made and what it does
      README.md           a short model card for a model hub

This is the Hugging Face model layout (`PyTorchModelHubMixin.save_pretrained` writes it), so a
folder can go to or come from a hub unchanged. Resumable training state lives apart, in a run
folder (`runs/NAME/`): a copy of the weights, the optimiser's tensors in safetensors and the
trainer's counters in JSON.

Every folder is written beside its target and swapped in with one atomic rename
(`renameat2(RENAME_EXCHANGE)`), so a crash at any moment leaves the previous folder whole.

A folder may come from a stranger (a downloaded "model"), so loading trusts nothing in it: every
file it opens must be a regular file inside the folder (not a FIFO that would block start-up
forever, not a symlink to /etc/passwd or /dev/zero) and under a size limit checked before reading;
config.json is bounded field by field (ModelConfig) and in total size before a network is built;
the weights must have exactly the names, shapes and dtype (float32) the network has, checked from
the safetensors header before any tensor is read, and be finite.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from app.checkpoints.card import ModelCard
from app.checkpoints.files import (
    CheckpointError,
    check_file,
    read_json,
    recover,
    write_folder_atomically,
    write_json,
)
from app.checkpoints.markdown import model_card_markdown
from app.checkpoints.served import ServedModel
from app.models import VAE, ConfigError, ModelConfig
from app.models.interface import NativeModel, describe_config, weights_digest
from app.models.vae import WEIGHTS

log = logging.getLogger(__name__)

CONFIG = "config.json"
CARD = "card.json"
OPTIMIZER = "optimizer.safetensors"
TRAINER = "trainer.json"

MAX_FOLDER_JSON_BYTES = 1 << 20  # config.json and card.json: ~400 B and at most ~11 kB as shipped
# 134,217,728 (512 MiB of float32); the shipped models have ~0.5 M, pythae's CelebA benchmark
# networks ~35 M
MAX_PARAMETERS = 1 << 27
MAX_HEADER_BYTES = 1 << 20  # a safetensors header beyond the tensors' own bytes (~2 kB here)


@dataclass
class Checkpoint:
    path: Path
    model: VAE
    config: ModelConfig
    card: ModelCard
    digest: str = ""  # sha256 of the weights: names this exact model in ETags and logs

    @property
    def name(self) -> str:
        return self.path.name

    def served(self) -> ServedModel:
        """This folder's model behind the model interface, as pages, API, metrics and studies
        use it; the card's latent names become the description's."""
        names = self.card.latent_names_by_index()
        latent_names = (
            tuple(names.get(i, "") for i in range(self.config.latent_dim)) if names else ()
        )
        source = self.card.source
        description = describe_config(
            self.config, latent_names, source.to_json() if source is not None else None
        )
        return ServedModel(
            name=self.name,
            model=NativeModel(self.model, description),
            card=self.card,
            digest=self.digest,
            path=self.path,
            config=self.config,
        )


# --- checkpoint folders ---------------------------------------------------------------------


def _unwrap(model: torch.nn.Module) -> VAE:
    """The VAE itself, also when DistributedDataParallel wraps it."""
    module = getattr(model, "module", model)
    if not isinstance(module, VAE):
        raise TypeError(f"expected a VAE, got {type(module).__name__}")
    return module


# card fields other tools add to a checkpoint folder (`latent-explorer evaluate`, `label`): a new
# save of the folder keeps them. They record the weights digest they were computed on, so the UI
# shows them as stale, instead of dropping them, until they are computed again.
# The record of a rename and of repairs made to the card by hand is history a later segment
# of training does not change, so it is kept too.
KEPT_CARD_FIELDS = ("metrics", "test_split", "renamed_from", "repaired", "latent_names")


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    card: ModelCard,
    replaces: bool = False,
) -> None:
    """Write model.safetensors + config.json + card.json + README.md atomically. Fields in
    KEPT_CARD_FIELDS that the folder's previous card has and `card` lacks are carried over,
    unless this save `replaces` another model's folder (training's --overwrite, an import):
    that model's scores and history are not this one's. A previous card that cannot be read
    keeps nothing."""
    module = _unwrap(model)
    if not replaces:
        try:
            previous = read_card_file(Path(path) / CARD)
        except CheckpointError:
            previous = ModelCard()
        kept = card.model_fields_set | set(card.model_extra or {})
        carried = {
            k: getattr(previous, k)
            for k in KEPT_CARD_FIELDS
            if k in previous.model_fields_set and k not in kept
        }
        if carried:
            card = card.updated(**carried)

    def write(tmp: Path) -> None:
        text = model_card_markdown(module.config, card)
        (tmp / "README.md").write_text(text, encoding="utf-8")  # before the hub mixin's own
        module.save_pretrained(tmp, config=module.config.to_json())
        write_json(tmp / CARD, card.to_json())

    write_folder_atomically(Path(path), write)


def read_card_file(file: Path) -> ModelCard:
    """A card.json, checked: CheckpointError naming the field that is wrong."""
    return ModelCard.from_json(read_json(file, MAX_FOLDER_JSON_BYTES), file.parent)


def read_card(folder: Path) -> ModelCard:
    """folder/card.json, checked (an empty card where the folder has none)."""
    card_file = Path(folder) / CARD
    return read_card_file(card_file) if os.path.lexists(card_file) else ModelCard()


def read_config(path: Path) -> ModelConfig:
    """config.json, refused field by field and by the size of the network it describes, which
    is counted on the meta device (no memory) before anything is built."""
    try:
        config = ModelConfig.from_json(read_json(Path(path) / CONFIG, MAX_FOLDER_JSON_BYTES))
    except ConfigError as e:
        raise CheckpointError(f"{path}: config.json is invalid: {e}") from e
    with torch.device("meta"):
        # the state dict, so that buffers (a VampPrior's pseudo-inputs) count too
        n = sum(t.numel() for t in VAE(config).state_dict().values())
    if n > MAX_PARAMETERS:
        raise CheckpointError(
            f"{path}: config.json describes a network of {n:,} parameters ({n * 4 >> 20:,} MiB "
            f"of float32); the limit is {MAX_PARAMETERS:,}"
        )
    return config


# safetensors' dtype codes, as torch names them in messages
_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip


def read_tensors(
    file: Path, expected: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """Every tensor in a safetensors file, with truncation and corruption named as such. With
    `expected` (a state dict), the file is first held to its size and its header to the names,
    shapes and dtypes there, so no tensor of a file that does not fit is ever read."""
    file = Path(file)
    size = check_file(file)
    if expected is not None:
        needed = sum(v.numel() * v.element_size() for v in expected.values())
        # up to 8 bytes a value, so that float64 weights get the message about their dtype
        if size > 2 * needed + MAX_HEADER_BYTES:
            raise CheckpointError(
                f"{file}: {file.name} is {size:,} bytes; config.json's network needs "
                f"{needed:,} bytes of weights"
            )
    try:
        with safe_open(str(file), framework="pt") as f:
            if expected is not None:
                header = {k: f.get_slice(k) for k in f.keys()}  # noqa: SIM118
                _check_weights(
                    file,
                    expected,
                    {k: (tuple(s.get_shape()), s.get_dtype()) for k, s in header.items()},
                )
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{file}: not a readable safetensors file ({e})") from e


def _dtype_name(dtype: torch.dtype | str) -> str:
    dtype = _DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
    return str(dtype).removeprefix("torch.")


def _check_weights(
    file: Path, expected: dict[str, torch.Tensor], found: dict[str, tuple[tuple[int, ...], Any]]
) -> None:
    """Raise CheckpointError naming every tensor missing, extra, misshapen or of another dtype.
    Another dtype is refused, not converted: float64 would be rounded and int8 is quantised
    data whose scales we do not know, so either way the model would not be the one saved."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [
        f"{k} is {found[k][0]} in {file.name} but config.json needs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and found[k][0] != tuple(v.shape)
    ]
    dtypes = [
        f"{k} is {_dtype_name(found[k][1])}"
        for k, v in expected.items()
        if k in found and _dtype_name(found[k][1]) != _dtype_name(v.dtype)
    ]
    problems = []
    if wrong:
        more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
        problems.append("; ".join(wrong[:3]) + more)
    if missing:
        problems.append(f"{file.name} lacks {', '.join(missing[:3])}")
    if unexpected:
        problems.append(
            f"{file.name} has tensors config.json does not describe: {', '.join(unexpected[:3])}"
        )
    if dtypes:
        more = f" (and {len(dtypes) - 3} more)" if len(dtypes) > 3 else ""
        want = _dtype_name(next(iter(expected.values())).dtype)
        problems.append(
            f"{', '.join(dtypes[:3])}{more} in {file.name}; the network's weights are {want} "
            f"(save them as {want})"
        )
    if problems:
        raise CheckpointError(
            f"{file.parent}: weights do not match config.json: " + "; ".join(problems)
        )


def load_weights(
    model: torch.nn.Module, file: Path, tensors: dict[str, torch.Tensor] | None = None
) -> None:
    """Strict load: every tensor present, with the shape config.json implies and the network's
    dtype, and every value finite; else say which."""
    expected = model.state_dict()
    if tensors is None:
        tensors = read_tensors(file, expected)
    else:
        _check_weights(file, expected, {k: (tuple(t.shape), t.dtype) for k, t in tensors.items()})
    # a network with NaN or infinite weights decodes NaN: useless, and a 500 on every request
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not t.isfinite().all()]
    if bad:
        raise CheckpointError(
            f"{file}: {file.name} has NaN or infinite values in {', '.join(bad[:3])}"
            + (f" (and {len(bad) - 3} more)" if len(bad) > 3 else "")
        )
    model.load_state_dict(tensors, strict=True)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild a model from its folder. Raises CheckpointError naming what is wrong."""
    path = Path(path)
    recover(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint folder")
    config = read_config(path)
    model = VAE(config)
    load_weights(model, path / WEIGHTS)
    card = read_card(path)
    model.to(device).eval()
    return Checkpoint(
        path=path, model=model, config=config, card=card, digest=weights_digest(model)
    )
