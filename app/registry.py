"""The models a server offers: every checkpoint folder under one directory (ours, or a diffusers
AutoencoderKL's), loaded once at start-up and read-only afterwards (so several workers can serve
the same folder)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from app.checkpoints import CheckpointError, load_checkpoint
from app.checkpoints.diffusers_folder import is_diffusers_folder, load_autoencoder_kl
from app.checkpoints.served import ServedModel
from app.inference import prepare_for_serving
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


# a folder's name is the model's URL path segment (/api/models/NAME, /models/NAME): only names
# that need no escaping are served, with the characters plugins' and imports' names may have
SERVABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# a model saved by PyTorch alone: not a checkpoint folder, and what to do with one instead
TORCH_FILES = (".pt", ".pth", ".ckpt", ".bin")
TORCH_FILE_HINT = (
    "a PyTorch file is not a checkpoint folder (model.safetensors, config.json, card.json); "
    "serve the model with `latent-explorer serve --plugin package.module:factory` "
    "(docs/plugins.md), or convert it once with `latent-explorer import` (disentangling-vae, "
    "pythae, lightning)"
)


def _load_folders(root: Path) -> dict[str, ServedModel]:
    models: dict[str, ServedModel] = {}
    if not root.is_dir():
        log.warning("checkpoints folder %s does not exist: serving no models from it", root)
        return models
    for loose in sorted(p for p in root.iterdir() if p.suffix in TORCH_FILES and p.is_file()):
        log.error("ignoring %s: %s", loose.name, TORCH_FILE_HINT)
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = folder.name
        if name.startswith("."):
            if ".tmp-" in name:
                log.warning("ignoring %r: a save in progress or one a crash cut short", name)
            else:
                log.info("ignoring hidden folder %r", name)
            continue
        if not SERVABLE_NAME.fullmatch(name):
            log.error(
                "skipping checkpoint %r: a model's name must be letters, digits, '.', '_' or '-' "
                "(at most 100, the first a letter or digit), as it is part of the model's URLs",
                name,
            )
            continue
        try:
            served = (
                load_autoencoder_kl(folder)
                if is_diffusers_folder(folder)
                else load_checkpoint(folder).served()
            )
            models[name] = prepare_for_serving(served)
        except CheckpointError as e:
            torch_files = sorted(p.name for p in folder.iterdir() if p.suffix in TORCH_FILES)
            if torch_files and not (folder / "config.json").exists():
                log.error("skipping checkpoint %s: it holds %s but no config.json: %s", name,
                          ", ".join(torch_files[:3]), TORCH_FILE_HINT)  # fmt: skip
            else:
                log.error("skipping checkpoint %s: %s", name, _one_line(str(e)))
        except Exception as e:  # noqa: BLE001 - one folder's surprise must not stop the others
            log.error("skipping checkpoint %s: %s: %s", name, type(e).__name__, _one_line(str(e)))
            log.debug("loading checkpoint %s failed", name, exc_info=True)
    log.info("loaded %d model(s) from %s: %s", len(models), root, ", ".join(models) or "none")
    return models


def _one_line(message: str, limit: int = 1000) -> str:
    """A problem as one log line of bounded length: a hostile folder chooses some of the text."""
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
