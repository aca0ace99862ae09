"""Run folders: the resumable state of a training run (`runs/NAME/` or beside its checkpoint), a
copy of the weights, the optimiser's tensors in safetensors and the trainer's counters in JSON,
swapped in whole as checkpoint folders are. Nothing is pickled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from app.checkpoints.files import (
    CheckpointError,
    read_json,
    recover,
    write_folder_atomically,
    write_json,
)
from app.checkpoints.folder import CONFIG, OPTIMIZER, TRAINER, _unwrap, read_config, read_tensors
from app.models import ModelConfig
from app.models.vae import WEIGHTS


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """torch optimizer state_dict → (tensors for safetensors, everything else for JSON)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, extra in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(extra)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_run(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, trainer: dict[str, Any]
) -> None:
    """The resumable state: weights, optimiser tensors and trainer counters, in one atomic swap."""
    module = _unwrap(model)
    opt_tensors, opt_meta = flatten_optimizer(optimizer.state_dict())

    def write(tmp: Path) -> None:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()},
            str(tmp / WEIGHTS),
        )
        save_file(opt_tensors, str(tmp / OPTIMIZER))
        write_json(tmp / CONFIG, module.config.to_json())
        write_json(tmp / TRAINER, {**trainer, "optimizer": opt_meta})

    write_folder_atomically(Path(path), write)


def load_run(
    path: Path,
) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """→ (config, weights, optimizer state_dict, trainer counters) of a run folder."""
    path = Path(path)
    recover(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no run to resume (the folder does not exist)")
    config = read_config(path)
    trainer = read_json(path / TRAINER)
    weights = read_tensors(path / WEIGHTS)
    optimizer = unflatten_optimizer(read_tensors(path / OPTIMIZER), trainer.pop("optimizer"))
    return config, weights, optimizer, trainer
