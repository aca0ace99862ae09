"""Directions in latent space: the API that answers which way in z carries a ground-truth factor
(dSprites' scale, position, orientation) or moves one class to another, and the /compare
fragment that shows one direction in two models side by side.

The numbers come from app.studies.directions on the sample of encoder means that the latent map
draws (app.studies.latent_map.map_sample); nothing here computes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.data.fashion_mnist import LABEL_NAMES as FASHION_MNIST_CLASSES
from app.data.test_split import has_test_split
from app.inference import ground_truth_of
from app.models.interface import ServedModel
from app.settings import Settings


@dataclass(frozen=True)
class DirectionChoices:
    """What a direction can be asked of a model: `factors`, the ground-truth factors a straight
    line can read (every one but the categorical factor, shape: its classes have no order), and
    `classes`, the class names a from → to direction can join. Both empty for a model without
    data of known factors or classes (an imported CelebA model)."""

    factors: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)


def direction_choices(model: ServedModel, settings: Settings) -> DirectionChoices:
    """The factors and classes `model` has, from its dataset alone (nothing is read or encoded:
    a test split that is not installed still lists its classes, and the direction then says how
    to install it)."""
    truth = ground_truth_of(model)
    if truth is not None:
        factors = [n for k, n in enumerate(truth.factor_names) if k != truth.label_factor]
        return DirectionChoices(factors, list(truth.label_names))
    cfg = model.description
    # Fashion-MNIST, the one test split here, is grey at 28×28 or padded to 32×32
    if has_test_split(cfg.dataset) and cfg.channels == 1 and cfg.image_size in (28, 32):
        return DirectionChoices([], list(FASHION_MNIST_CLASSES))
    return DirectionChoices()
