"""disentangling-vae's `train_losses.log`: the KL per latent of a model whose data is not here.

Their trainer's LossesLogger (disvae/training.py) writes one CSV row per loss per epoch, the
loss's mean over that epoch's batches, under the header "Epoch,Loss,Value":

    Epoch,Loss,Value
    0,recon_loss,6767.06209564209
    0,kl_loss,21.407463565468788
    0,kl_loss_0,1.5888329988811165
    …

`kl_loss_<i>` is latent i's mean KL(q(z_i|x) ‖ N(0, 1)) over the epoch's training images
(their _kl_normal_loss, which every loss of theirs stores), and their latent i is ours (the
importer reorders the encoder's interleaved rows, not the latents). The last epoch's values order
the sliders and choose the latents a code keeps, where no images of the data set can be drawn
here to measure them on (CelebA, chairs, MNIST).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from app.importers import ModelImportError
from app.importers.common import read_source_file
from app.quoting import listed

TRAIN_LOG = "train_losses.log"
HEADER = "Epoch,Loss,Value"
MAX_TRAIN_LOG_BYTES = 16 * 2**20  # theirs: ~100 kB for 10 latents × 200 epochs
KL_ROW = re.compile(r"kl_loss_(\d+)")


def training_kl(path: Path, latent_dim: int) -> dict[str, Any] | None:
    """The card's `eval` from the log at `path`: the last epoch's mean KL per latent (nats,
    rounded as our own cards round it), their sum, and where they came from; None where there
    is no log. A log that does not fit the model (a latent it
    lacks, a last epoch cut short, a value that is not a KL) is refused naming the line."""
    if not os.path.lexists(path):
        return None
    try:
        lines = read_source_file(path, MAX_TRAIN_LOG_BYTES).decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ModelImportError(f"{path}: not text ({e})") from None
    if not lines or lines[0].strip() != HEADER:
        first = lines[0][:60] if lines else ""
        raise ModelImportError(
            f"{path}: not disentangling-vae's {HEADER} log (its first line is {first!r})"
        )
    by_epoch: dict[int, dict[int, float]] = {}
    for n, line in enumerate(lines[1:], start=2):
        row = line.split(",")
        if not line.strip():
            continue
        if len(row) != 3:
            raise ModelImportError(f"{path}: line {n} is not {HEADER}: {line[:60]!r}")
        found = KL_ROW.fullmatch(row[1].strip())
        if found is None:
            continue  # another loss: the reconstruction, the total KL, a TC term
        i = int(found[1])
        if i >= latent_dim:
            raise ModelImportError(
                f"{path}: line {n} has kl_loss_{i}, but the model has {latent_dim} latents "
                "(specs.json)"
            )
        epoch, value = _number(row[0], int), _number(row[2], float)
        if epoch is None or epoch < 0:
            raise ModelImportError(f"{path}: line {n}: epoch {row[0]!r} is not an epoch number")
        if value is None or not math.isfinite(value) or value < 0:
            raise ModelImportError(
                f"{path}: line {n}: kl_loss_{i} is {row[2].strip()!r}, not a KL (a finite "
                "number of nats, ≥ 0)"
            )
        by_epoch.setdefault(epoch, {})[i] = value  # a row repeated: the later one
    if not by_epoch:
        raise ModelImportError(
            f"{path}: no kl_loss_0 … kl_loss_{latent_dim - 1} rows (each epoch's KL per latent)"
        )
    epoch = max(by_epoch)
    missing = [f"kl_loss_{i}" for i in range(latent_dim) if i not in by_epoch[epoch]]
    if missing:
        raise ModelImportError(
            f"{path}: epoch {epoch} lacks {listed(missing)} (the last epoch: the KL per latent "
            "is taken from it)"
        )
    kl = [round(by_epoch[epoch][i], 4) for i in range(latent_dim)]
    return {
        "kl_per_dim": kl,
        "kl_total": round(sum(by_epoch[epoch].values()), 4),
        "images": f"their training images, epoch {epoch} (the last)",
        "source": f"last epoch's training KL per latent, from {TRAIN_LOG}, epoch {epoch}",
        "file": TRAIN_LOG,
        "epoch": epoch,
    }


def _number(text: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(text)
    except ValueError:
        return None
