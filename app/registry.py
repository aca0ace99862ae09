"""The models a server offers: every checkpoint folder under one directory, loaded once at
start-up and read-only afterwards (so several workers can serve the same folder)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from app.checkpoints import CheckpointError, load_checkpoint
from app.inference import prepare_for_serving
from app.models.interface import ServedModel
from app.plugins import PluginError, load_plugin

log = logging.getLogger(__name__)


def load_registry(root: Path, plugins: Sequence[str] = ()) -> Mapping[str, ServedModel]:
    """name → model for each sub-folder of `root` and each plugin (`package.module:factory`).
    A folder that cannot be loaded is skipped with a log line that says why, and the rest still
    serve; a plugin, which the person starting the server named, raises PluginError instead."""
    models: dict[str, ServedModel] = _load_folders(root)
    for spec in plugins:
        served = load_plugin(spec)
        if served.name in models:
            raise PluginError(
                f"--plugin {spec}: a model named {served.name!r} is already served (from "
                f"{models[served.name].path or 'another plugin'})"
            )
        models[served.name] = prepare_for_serving(served)
        log.info("serving %s from plugin %s", served.name, spec)
    return MappingProxyType(models)


def _load_folders(root: Path) -> dict[str, ServedModel]:
    models: dict[str, ServedModel] = {}
    if not root.is_dir():
        log.warning("checkpoints folder %s does not exist: serving no models from it", root)
        return models
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            ckpt = load_checkpoint(folder)
        except CheckpointError as e:
            log.error("skipping checkpoint %s: %s", folder.name, e)
            continue
        models[folder.name] = prepare_for_serving(ckpt.served())
    log.info("loaded %d model(s) from %s: %s", len(models), root, ", ".join(models) or "none")
    return models
