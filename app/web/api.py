"""The JSON API under /api (documented at /docs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.checkpoints import Checkpoint
from app.web.deps import RegistryDep

router = APIRouter(prefix="/api", tags=["api"])


def model_summary(name: str, ckpt: Checkpoint) -> dict[str, Any]:
    cfg = ckpt.config
    return {
        "name": name,
        "kind": cfg.kind,
        "beta": cfg.beta,
        "objective": cfg.objective,
        "latent_dim": cfg.latent_dim,
        "labels": list(cfg.label_names),
        "image_size": cfg.image_size,
        "channels": cfg.channels,
        "dataset": cfg.dataset,
        "card": ckpt.card,
    }


@router.get("/models")
def list_models(registry: RegistryDep) -> list[dict[str, Any]]:
    """Every loaded model with its config summary and its card."""
    return [model_summary(name, ckpt) for name, ckpt in registry.items()]
