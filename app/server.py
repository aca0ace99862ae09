"""`latent-explorer serve`: uvicorn on the app factory."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import uvicorn
from uvicorn.config import LOGGING_CONFIG


def serve(host: str, port: int, checkpoints: Path | None, workers: int) -> int:
    if checkpoints is not None:
        # the factory reads Settings from the environment in every worker process
        os.environ["LATENT_EXPLORER_CHECKPOINTS_DIR"] = str(checkpoints.resolve())
    # our own log lines (models loaded, checkpoints skipped) go where uvicorn's go, in every worker
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["app"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config,
    )
    return 0
