"""The checkpoint folder and everything kept in it: save and load (`folder`), atomic writes and
the checks on every file read (`files`), the typed model card (`card`), its one Markdown writer
(`markdown`), changes to a card in place (`card_file`), the figures a card records
(`evaluation`) and a model as it is served (`served`).

    checkpoints/NAME/
      model.safetensors   weights only
      config.json         ModelConfig: everything that rebuilds the network
      card.json           ModelCard: how it was made and what it does
      README.md           the card in a few lines, for a model hub
"""

from app.checkpoints.card import ModelCard
from app.checkpoints.files import (
    MAX_JSON_BYTES,
    CheckpointError,
    check_file,
    fsync_dir,
    read_bytes,
    read_json,
    recover,
    size_limit,
    write_folder_atomically,
    write_json,
)
from app.checkpoints.folder import (
    CARD,
    CONFIG,
    MAX_FOLDER_JSON_BYTES,
    OPTIMIZER,
    TRAINER,
    Checkpoint,
    load_checkpoint,
    load_weights,
    read_card,
    read_card_file,
    read_config,
    read_tensors,
    save_checkpoint,
)
from app.checkpoints.runs import flatten_optimizer, load_run, save_run, unflatten_optimizer
from app.checkpoints.served import ServedModel
from app.models.interface import weights_digest
from app.models.vae import WEIGHTS

__all__ = [
    "CARD",
    "CONFIG",
    "MAX_FOLDER_JSON_BYTES",
    "MAX_JSON_BYTES",
    "OPTIMIZER",
    "TRAINER",
    "WEIGHTS",
    "Checkpoint",
    "ModelCard",
    "ServedModel",
    "CheckpointError",
    "check_file",
    "flatten_optimizer",
    "fsync_dir",
    "load_checkpoint",
    "load_run",
    "load_weights",
    "read_card",
    "read_card_file",
    "read_config",
    "read_bytes",
    "read_json",
    "read_tensors",
    "recover",
    "save_checkpoint",
    "save_run",
    "size_limit",
    "unflatten_optimizer",
    "weights_digest",
    "write_folder_atomically",
    "write_json",
]
