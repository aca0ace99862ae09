"""`latent-explorer serve`: uvicorn on the app factory."""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn


def serve(host: str, port: int, checkpoints: Path | None, workers: int) -> int:
    if checkpoints is not None:
        # the factory reads Settings from the environment in every worker process
        os.environ["LATENT_EXPLORER_CHECKPOINTS_DIR"] = str(checkpoints.resolve())
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers)
    return 0
