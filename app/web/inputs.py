"""What a request may name of a model (a latent vector, a class, a dataset image) and the
answer when it names what the model has not: a 422 when no served model has it either (the
schema calls the request invalid), a 404 when another does (the schema calls it valid; this
model lacks it). Without `served` (the pages), every such refusal is a 422."""

from __future__ import annotations

from decimal import Decimal

import torch

from app import inference
from app.data.ground_truth import GroundTruth
from app.inference import InferenceError, ground_truth_of
from app.models.interface import ServedModel
from app.settings import Settings
from app.web.deps import Served, latent_limit
from app.web.errors import NotInModelError


def parse_latents(
    text: str, ckpt: ServedModel, settings: Settings, name: str = "z", served: Served | None = None
) -> torch.Tensor:
    """'0.1,-2,3' → (D,) tensor, or an error naming what is wrong (see check_latents)."""
    parts = [p.strip() for p in text.split(",")] if text.strip() else []
    values = []
    for i, p in enumerate(parts):
        try:
            values.append(float(p))
        except ValueError:
            raise InferenceError(f"{name}[{i}] is {p!r}, not a number") from None
    z = torch.tensor(values, dtype=torch.float32)
    check_latents(z[None], ckpt, settings, name, served)
    return z


def check_latents(
    z: torch.Tensor, ckpt: ServedModel, settings: Settings, name: str = "z",
    served: Served | None = None,
) -> None:  # fmt: skip
    """z (B, n): refuse non-finite values, vectors of the wrong size, and values far outside
    where the model's codes live: the N(0, I) prior for a VAE, anywhere short of absurd for an
    AE (deps.latent_limit). An InferenceError (422) when no served model would take it, a
    NotInModelError (404) when another would (`served`: what they take between them)."""
    d, n = ckpt.description.latent_dim, z.shape[-1]
    fewest, most = served.latent_dims if served else (d, d)
    size = f"{name} must have {d} values for model {ckpt.name}, got {n}"
    if not fewest <= n <= most:
        raise InferenceError(size)
    check_latent_range(z, ckpt, settings, name, served)
    if n != d:
        raise NotInModelError(size)


def check_latent_range(
    z: torch.Tensor, ckpt: ServedModel, settings: Settings, name: str = "z",
    served: Served | None = None,
) -> None:  # fmt: skip
    """Latent values, finite and within the model's range (see check_latents)."""
    if not torch.isfinite(z).all():
        raise InferenceError(f"{name} must be finite numbers (no NaN or infinity)")
    limit = latent_limit(ckpt, settings)
    worst = z.abs().max().item() if z.numel() else 0.0
    span = f"{name} values must lie within ±{limit:g}, got {worst:g}"
    if worst > (served.latent_limit if served else limit):
        raise InferenceError(span)
    if worst > limit:
        raise NotInModelError(f"{span}: model {ckpt.name}'s latents lie within ±{limit:g}")


def check_label(model: ServedModel, label: int | None, served: Served | None = None) -> None:
    """A class the model has (none for a model that is not a CVAE): an InferenceError (422) for
    a label no served model has, a NotInModelError (404) for one another served CVAE has."""
    if label is None:
        return
    try:
        inference.check_label(model, label)
    except InferenceError as e:
        if served is not None and 0 <= label < served.n_labels:
            raise NotInModelError(str(e)) from None
        raise


def drawn_elsewhere(served: Served | None, index: int | None) -> bool:
    """Whether the schema calls image `index` (any image, for None) valid: a served model's
    dataset has it, or no served dataset bounds the index."""
    if served is None:
        return False
    return index is None or not served.dataset_images or 0 <= index < served.dataset_images


def dataset_of(
    model: ServedModel, served: Served | None = None, index: int | None = None
) -> GroundTruth:
    """The model's training data as a drawable dataset, or an error saying it has none (a model
    trained on an image folder): a 404 where the schema calls the request valid, else a 422."""
    truth = ground_truth_of(model)
    if truth is None:
        error = NotInModelError if drawn_elsewhere(served, index) else InferenceError
        raise error(
            f"model {model.name} was trained on {model.description.dataset}, whose images cannot "
            "be "
            "drawn by index: it has no dataset images to start from"
        )
    return truth


def dataset_tensor(
    truth: GroundTruth, index: int, what: str = "index", served: Served | None = None
) -> torch.Tensor:
    """Dataset image `index` as the (C, H, W) float tensor a model sees; a bad index is an
    error naming the range: a 404 when another served dataset has the image, else a 422."""
    if not 0 <= index < truth.n_images:
        error = NotInModelError if drawn_elsewhere(served, index) else InferenceError
        raise error(f"{what}: {truth.name} index must be in 0..{truth.n_images - 1}, got {index}")
    return torch.from_numpy(truth.image(index))


def hundredths(value: float, name: str) -> int:
    """`value` as a whole number of hundredths, or an InferenceError. Decimal, as JSON Schema's
    multipleOf reads a number: 0.07 is 7 hundredths though 0.07 * 100 is not 7 in floats."""
    h = Decimal(repr(value)) * 100
    if h != h.to_integral_value():
        raise InferenceError(f"{name} must be a multiple of 0.01, got {value:g}")
    return int(h)
