"""The models a server offers: every checkpoint folder under one directory, loaded once at
start-up and read-only afterwards (so several workers can serve the same folder)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from app.checkpoints import Checkpoint, CheckpointError, load_checkpoint
from app.inference import prepare_for_serving

log = logging.getLogger(__name__)


def load_registry(root: Path) -> Mapping[str, Checkpoint]:
    """name → loaded checkpoint for each sub-folder of `root` holding a config.json. A folder
    that cannot be loaded is skipped with a log line that says why; the rest still serve."""
    models: dict[str, Checkpoint] = {}
    if not root.is_dir():
        log.warning("checkpoints folder %s does not exist: serving no models", root)
        return MappingProxyType(models)
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            ckpt = load_checkpoint(folder)
        except CheckpointError as e:
            log.error("skipping checkpoint %s: %s", folder.name, e)
            continue
        models[folder.name] = prepare_for_serving(ckpt)
    log.info("loaded %d model(s) from %s: %s", len(models), root, ", ".join(models) or "none")
    return MappingProxyType(models)
