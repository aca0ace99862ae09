"""A model as the explorer serves it: the model interface, its typed card, and the digest that
names its weights in ETags and caches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from app.checkpoints.card import ModelCard
from app.models.config import ModelConfig
from app.models.interface import LatentModel, ModelDescription
from app.models.priors import Prior, prior_of


@dataclass(frozen=True)
class DataKl:
    """Mean KL per latent measured by this server on a data set's images (its kept encoding),
    for a model whose card has none (a plugin, an import without its training log)."""

    values: tuple[float, ...]
    data_set: str
    images: int


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
    data_kl: DataKl | None = None  # set once, by the server, where the card has no KL

    @property
    def kl(self) -> list[float]:
        """Mean KL per latent over data, nats: the card's (measured where the model was made),
        else the one measured here on its data set; [] where there is neither (an AE)."""
        if self.card.kl:
            return list(self.card.kl)
        return list(self.data_kl.values) if self.data_kl is not None else []

    @property
    def kl_measured_on(self) -> str | None:
        """Where `kl` comes from, when it is not the card's: "celeba-100 (100 images)"."""
        if self.card.kl or self.data_kl is None:
            return None
        return f"data set {self.data_kl.data_set} ({self.data_kl.images:,} images)"

    @property
    def description(self) -> ModelDescription:
        return self.model.description

    @property
    def prior(self) -> Prior:
        """p(z): the model's own (a VampPrior's mixture), else N(0, I)."""
        return prior_of(self.model)

    @property
    def pseudo_inputs(self) -> torch.Tensor | None:
        """A VampPrior's pseudo-inputs as images (K, C, H, W) in [0, 1]; None for a model
        without them."""
        images = getattr(self.model, "pseudo_inputs", None)
        return images if isinstance(images, torch.Tensor) else None
