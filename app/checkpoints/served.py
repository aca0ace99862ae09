"""A model as the explorer serves it: the model interface, its typed card, and the digest that
names its weights in ETags and caches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.checkpoints.card import ModelCard
from app.models.config import ModelConfig
from app.models.interface import LatentModel, ModelDescription


@dataclass
class ServedModel:
    """A served model: the interface, its card (how it was made and what it does; an empty
    card where there is none), a digest naming these exact weights (ETags, caches) and, for a
    checkpoint folder, the folder and the config that rebuilds it."""

    name: str
    model: LatentModel
    card: ModelCard = field(default_factory=lambda: ModelCard())
    digest: str = ""
    path: Path | None = None
    config: ModelConfig | None = None  # our own networks only

    @property
    def description(self) -> ModelDescription:
        return self.model.description
