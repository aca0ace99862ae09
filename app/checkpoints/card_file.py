"""Changing one checkpoint folder's card.json in place, for the tools that add to a card after
training (`latent-explorer evaluate` writes metrics, `latent-explorer label` names latents): the
weights, config.json and README.md are left alone.

Each change reads the card, changes it and writes it under an exclusive lock on the folder
(flock on the folder itself: no lock file to leave behind, and the kernel drops the lock of a
process that dies), so two tools run at the same moment both land: without it, a `label` that
read the card before an `evaluate` wrote it would write the old card back over the metrics.
The write is a temp file beside the card, fsync, rename: a crash at any moment leaves the old
card or the new one whole, never part of either, and no temp file behind."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.checkpoints.card import ModelCard
from app.checkpoints.files import CheckpointError, fsync_dir, json_text
from app.checkpoints.folder import CARD, read_card


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's exclusive lock: one change to its card at a time, across processes."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise CheckpointError(f"{folder}: cannot be opened ({e.strerror})") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def update_card(folder: Path, change: Callable[[ModelCard], ModelCard]) -> ModelCard:
    """Read folder/card.json, pass it through `change` and write what that returns in its
    place, all under the folder's lock. → the card as written."""
    folder = Path(folder)
    with folder_lock(folder):
        card = change(read_card(folder))
        text = json_text(card.to_json())
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
