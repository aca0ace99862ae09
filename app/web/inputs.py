"""What a request may name of a model (a latent vector, a class, a dataset image) and the
answer when it names what the model has not: a 422 when no served model has it either (the
schema calls the request invalid), a 404 when another does (the schema calls it valid; this
model lacks it). Without `served` (the pages), every such refusal is a 422."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

import numpy as np
import torch

from app import inference
from app.checkpoints.served import ServedModel
from app.inference import (
    DatasetError,
    DatasetImages,
    GroundTruth,
    InferenceError,
    NoClassColumn,
    SetImages,
    TestImages,
    UnknownDataSet,
    dataset_images_of,
    dataset_problem,
    ground_truth_of,
    held_out_class_names,
)
from app.quoting import quoted
from app.settings import Settings
from app.web.deps import DataPick, Served, latent_limit
from app.web.errors import DataUnavailableError, NotFoundError, NotInModelError


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


def images_of(
    model: ServedModel, settings: Settings, data: DataPick | None = None
) -> DatasetImages | None:
    """The dataset images the model is viewed on, by index (inference.dataset_images_of): its
    own without a pick (or without `data.name`), else the set named, fitted to it; None where
    it has none. A DataUnavailableError (503) saying how to install them where they are not
    installed; a NotFoundError for a set the server does not serve."""
    sets, name = (data.sets, data.name) if data is not None else (None, None)
    try:
        return dataset_images_of(model, settings.fashion_mnist_dir, sets, name)
    except UnknownDataSet as e:
        raise NotFoundError(str(e)) from None
    except DatasetError as e:
        problem = dataset_problem(e)  # without the trainer's install hint
        if name is None and held_out_class_names(model):
            raise DataUnavailableError(
                f"model {model.name}'s dataset images, {model.description.dataset}'s test "
                f"split, are not installed ({problem}): install Debian's package (sudo apt-get "
                "install dataset-fashion-mnist) or set LATENT_EXPLORER_FASHION_MNIST_DIR to a "
                "folder holding t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (.gz or not)"
            ) from None
        which = f"data set {name}" if name else f"model {model.name}'s data set"
        raise DataUnavailableError(f"{which} cannot be read here: {e}") from None


def dataset_images(
    model: ServedModel, settings: Settings, served: Served | None = None,
    index: int | None = None, data: DataPick | None = None,
) -> DatasetImages:  # fmt: skip
    """images_of, or an error saying the model has no dataset images (a model trained on an
    image folder): a 404 where the schema calls the request valid, else a 422."""
    images = images_of(model, settings, data)
    if images is None:
        error = NotInModelError if drawn_elsewhere(served, index) else InferenceError
        raise error(
            f"model {model.name} was trained on {model.description.dataset}, whose images cannot "
            "be drawn by index: it has no dataset images to start from (view it on a data set "
            "with data=NAME)"
        )
    return images


def own_class(model: ServedModel, images: DatasetImages, index: int) -> int | None:
    """The class a CVAE encodes dataset image `index` with: the image's own (None for any
    other model). A NotInModelError (404) where a data set has no column of the model's
    classes: the request is valid, and answered with the class given as `label`."""
    if model.description.kind != "cvae":
        return None
    try:
        return images.label(index)
    except NoClassColumn as e:
        raise NotInModelError(str(e)) from None


class Indexed(Protocol):
    """Images by index: a GroundTruth or DatasetImages."""

    @property
    def name(self) -> str: ...

    @property
    def n_images(self) -> int: ...

    def image(self, index: int) -> np.ndarray: ...


def dataset_tensor(
    images: Indexed, index: int, what: str = "index", served: Served | None = None
) -> torch.Tensor:
    """Dataset image `index` as the (C, H, W) float tensor a model sees; a bad index is an
    error naming the range: a 404 when another served dataset has the image, else a 422."""
    if not 0 <= index < images.n_images:
        error = NotInModelError if drawn_elsewhere(served, index) else InferenceError
        name = images.noun if isinstance(images, TestImages) else images.name
        raise error(f"{what}: {name} index must be in 0..{images.n_images - 1}, got {index}")
    return torch.from_numpy(images.image(index))


def picked_class(images: DatasetImages, text: str | int | None, what: str = "class") -> int | None:
    """A class picker's value: None for any class ("" or absent), else a class of the test
    split, checked; an InferenceError for a dataset that is not picked by class."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(images, TestImages):
        raise InferenceError(f"{what}: {images.name} images are picked by index, not by class")
    try:
        label = int(text)
    except ValueError:
        raise InferenceError(f"{what} must be a whole number, got {text!r}") from None
    names = images.label_names
    if not 0 <= label < len(names):
        listed = ", ".join(f"{i} {n}" for i, n in enumerate(names))
        raise InferenceError(f"{what} must be in 0..{len(names) - 1} ({listed}), got {label}")
    return label


def nth_of_class(images: TestImages, label: int, nth: int, what: str = "image") -> int:
    """The index of the `nth` (from 0) test image of class `label`."""
    members = images.of_class(label)
    if not 0 <= nth < len(members):
        raise InferenceError(
            f"{what}: {images.name}'s test split holds {len(members):,} images of class "
            f"{images.label_names[label]}: the number within the class must be in "
            f"0..{len(members) - 1}, got {nth}"
        )
    return int(members[nth])


def random_index(
    images: DatasetImages, rng: np.random.Generator, of_class: str | None = None,
    where: str | None = None,
) -> int:  # fmt: skip
    """A random dataset image, of class `of_class` where one is named (picked_class), or, on a
    data set, one whose column has a value (`where`: "column=value")."""
    if where:
        column, sep, value = where.partition("=")
        if not sep or not isinstance(images, SetImages):
            raise InferenceError(
                f"where must be column=value on a data set's images, got {quoted(where)}"
            )
        found = images.matching(column, value)
        if not len(found):
            raise InferenceError(f"no image of data set {images.name} has {column} = {value}")
        return int(rng.choice(found))
    label = picked_class(images, of_class)
    if label is None or not isinstance(images, TestImages):
        return int(rng.integers(images.n_images))
    members = images.of_class(label)
    if not len(members):
        raise InferenceError(f"{images.name}'s test split holds no {images.label_names[label]}")
    return int(rng.choice(members))


def hundredths(value: float, name: str) -> int:
    """`value` as a whole number of hundredths, or an InferenceError. Decimal, as JSON Schema's
    multipleOf reads a number: 0.07 is 7 hundredths though 0.07 * 100 is not 7 in floats."""
    h = Decimal(repr(value)) * 100
    if h != h.to_integral_value():
        raise InferenceError(f"{name} must be a multiple of 0.01, got {value:g}")
    return int(h)
