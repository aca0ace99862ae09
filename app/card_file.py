"""Changing one checkpoint folder's card.json in place, atomically, for the tools that add to a
card after training (`latent-explorer evaluate` writes metrics, `latent-explorer label` names
latents): the weights, config.json and README.md are left alone."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.checkpoints import CARD, CheckpointError, fsync_dir, read_json


def read_card(folder: Path) -> dict[str, Any]:
    """folder/card.json as a dict ({} where the folder has none)."""
    card_file = Path(folder) / CARD
    card = read_json(card_file) if card_file.exists() else {}
    if not isinstance(card, dict):
        raise CheckpointError(f"{card_file}: card.json must be a JSON object")
    return card


def update_card(folder: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Read folder/card.json, pass it through `change` and write what that returns in its
    place: a temp file beside it, fsync, rename, so a crash at any moment leaves the old card or
    the new one whole, never part of either, and no temp file behind. → the card as written."""
    folder = Path(folder)
    card = change(read_card(folder))
    text = json.dumps(card, indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{CARD}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # checkpoints are shared data, as app.checkpoints writes them
        os.replace(tmp, folder / CARD)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(folder)
    return card
