"""The pictures a likelihood model is judged by: held-out images beside their reconstructions,
samples from the prior, and a CVAE's class grid (one z, every label). PNGs under /api, and the
model page's gallery (/ui/{name}/gallery, which the card page loads into itself).

Each picture is a grid of `imaging.grid` cells (2 px white padding), enlarged by `scale`; what
its rows and columns are is said on the page and in the API docs, never drawn into the pixels.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import numpy as np
import torch
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app import imaging, inference
from app.checkpoints.served import ServedModel
from app.inference import DatasetImages, InferenceError, SetImages, TestImages
from app.settings import Settings
from app.web.deps import DataDep, DataPick, ModelDep, ServedDep, SettingsDep, TemplatesDep
from app.web.errors import DATA_UNAVAILABLE, NOT_MODIFIED, NotInModelError
from app.web.inputs import check_label, images_of, own_class, parse_latents
from app.web.params import Label, Scale
from app.web.responses import PNG, cached_image

router = APIRouter(tags=["gallery"])

MAX_RECONSTRUCTIONS = 32  # images in one reconstruction grid
MAX_CLASS_GRID_ROWS = 16  # z (rows) in one class grid
DEFAULT_SEED = 0  # the prior samples and the class grid's z, unless a seed is asked for
DEFAULT_SAMPLES = 16
SAMPLE_COLUMNS = 8
DEFAULT_CLASS_GRID_ROWS = 4
PSEUDO_COLUMNS = 10  # a VampPrior's pseudo-inputs per row
# px: the page enlarges each picture by the largest whole scale that fits both
PAGE_WIDTH, PAGE_CELL = 640, 128

# comma-separated image indices, 1 to MAX_RECONSTRUCTIONS of them (up to 7 digits: dSprites
# has 737,280 images); [0-9], not \d, which would take other scripts' digits too
INDICES_PATTERN = rf"^[0-9]{{1,7}}(,[0-9]{{1,7}}){{0,{MAX_RECONSTRUCTIONS - 1}}}$"

Seed = Annotated[
    int,
    Query(
        ge=0,
        lt=2**63,
        description="the z are /api/models/{name}/sample's for this seed (and the same n)",
    ),
]


# --- the images a model is shown reconstructing ----------------------------------------------


def held_out_images(
    model: ServedModel, settings: Settings, data: DataPick | None = None
) -> DatasetImages:
    """The images `model` is shown reconstructing: its dataset's test split, or images drawn
    from its ground truth (inputs.images_of: a 503 where the test split is not installed), or
    the data set `data` names; a NotInModelError where it has none."""
    images = images_of(model, settings, data)
    if images is None:
        raise NotInModelError(
            f"model {model.name} was trained on {model.description.dataset}, which has no test "
            "images here and no images drawn by index: there is nothing to reconstruct"
        )
    return images


FIRST_IMAGES = 8  # a data set's images shown where it has no column of the model's classes


def class_examples(images: DatasetImages) -> list[int]:
    """One image of each class, in class order: the first test image of each; for a dataset
    drawn from factors, each class of the labelled factor with every other at its middle; for a
    data set, the first image of each of the model's classes, or its first images."""
    if isinstance(images, SetImages):
        if not images.label_names:
            return list(range(min(FIRST_IMAGES, images.n_images)))
    if isinstance(images, TestImages | SetImages):
        firsts = [images.of_class(c) for c in range(len(images.label_names))]
        return [int(members[0]) for members in firsts if len(members)]
    sizes, k = images.truth.factor_sizes, images.truth.label_factor
    middle = [n // 2 for n in sizes]
    return [
        int(np.ravel_multi_index([*middle[:k], c, *middle[k + 1 :]], sizes))
        for c in range(sizes[k])
    ]


def examples_are(images: DatasetImages) -> str:
    """How class_examples chose, in words."""
    if isinstance(images, SetImages):
        if images.label_names:
            return f"the first {images.noun} of each class"
        return f"the first {images.noun}s"
    if isinstance(images, TestImages):
        return "the first test image of each class"
    factor = images.truth.factor_names[images.truth.label_factor]
    return f"each {factor} with every other factor at the middle of its range"


def parse_indices(text: str | None, images: DatasetImages) -> list[int]:
    """'3,0,17' → [3, 0, 17], each an image of `images`; None → class_examples. An index past
    the end is a NotInModelError naming it (the schema allows any digits: another model's
    dataset may have that image)."""
    if text is None:
        return class_examples(images)
    if not re.fullmatch(INDICES_PATTERN, text, flags=re.ASCII):
        raise InferenceError(
            f"indices must be 1 to {MAX_RECONSTRUCTIONS} image numbers separated by commas, "
            f"got {text[:40]!r}"
        )
    indices = [int(part) for part in text.split(",")]
    for i in indices:
        if i >= images.n_images:
            raise NotInModelError(
                f"index {i} is not a {images.noun}: indices must be in 0..{images.n_images - 1}"
            )
    return indices


@torch.inference_mode()
def reconstruct(
    model: ServedModel, images: DatasetImages, indices: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images `indices` (N, C, H, W) and each decoded from its posterior mean μ; a CVAE
    encodes and decodes each with the image's own class."""
    x = torch.from_numpy(np.stack([images.image(i) for i in indices]))
    recon = torch.empty_like(x)
    if model.description.kind == "cvae":
        labels = torch.tensor([own_class(model, images, i) for i in indices])
        for label in labels.unique().tolist():
            chosen = labels == label
            recon[chosen] = inference.encode_images(model, x[chosen], int(label)).reconstruction
    else:
        recon = inference.encode_images(model, x).reconstruction
    return x, recon


# --- prior samples and the class grid ---------------------------------------------------------


def prior_samples(model: ServedModel, n: int, seed: int, label: int | None) -> torch.Tensor:
    """n z from the model's prior drawn from `seed` (inference.sample_model_prior, as /sample
    draws them), decoded to pixel means: (n, C, H, W)."""
    z = inference.sample_model_prior(model, n, seed)
    return inference.decode_latents(model, z, label)


def check_has_labels(model: ServedModel) -> None:
    cfg = model.description
    if cfg.kind != "cvae":
        raise NotInModelError(
            f"model {model.name} is a {cfg.kind}: it has no labels, so no class grid "
            "(only a conditional VAE decodes one z under each label)"
        )


def class_grid(model: ServedModel, z: torch.Tensor) -> torch.Tensor:
    """z (R, D) → (R·L, C, H, W): row r decodes z[r] under each of the model's L labels, in
    label order."""
    check_has_labels(model)
    columns = [
        inference.decode_latents(model, z, label) for label in range(model.description.n_labels)
    ]
    return torch.stack(columns, dim=1).flatten(0, 1)  # (R, L, C, H, W) → (R·L, C, H, W)


def _grid_png(images: torch.Tensor, rows: int, cols: int, scale: int) -> bytes:
    """Row-major cells; a last row left short is filled with the padding's white."""
    blank = torch.ones((rows * cols - len(images), *images.shape[1:]))
    return imaging.png_bytes(imaging.grid(torch.cat([images, blank]), rows, cols), scale)


def _at_most(value: int, limit: int, what: str) -> None:
    if value > limit:
        raise InferenceError(f"{what} is {value}, the limit is {limit}")


# --- the API -----------------------------------------------------------------------------------


@router.get(
    "/api/models/{name}/reconstructions.png",
    response_class=Response,
    responses={200: PNG, **NOT_MODIFIED, **DATA_UNAVAILABLE},
)
def reconstructions_png(
    request: Request, model: ModelDep, settings: SettingsDep, data: DataDep,
    indices: Annotated[
        str | None,
        Query(
            pattern=INDICES_PATTERN,
            description="comma-separated image numbers (Fashion-MNIST: of the test split, "
            "< 10,000; dSprites: < 737,280); default: one image of each class. 404 for an "
            "image the model's dataset does not have",
        ),
    ] = None,
    scale: Scale = 1,
) -> Response:  # fmt: skip
    """Held-out images over their reconstructions: row 1 the images (a Fashion-MNIST model's
    test split, grey as published; a dSprites or colour-shapes model's dataset images), row 2
    each decoded from its posterior mean μ (a CVAE with the image's own class). Default: the
    first test image of each class (dSprites: each shape with every other factor at the middle
    of its range). 404 for a model with no such images (CelebA, MNIST, an image folder); 503
    where its test split is not installed, saying how to install it. With `data=NAME`, images
    of that data set fitted to the model (default: the first of each of a CVAE's classes, else
    the first 8)."""
    _at_most(scale, settings.max_image_scale, "scale")
    images = held_out_images(model, settings, data)
    chosen = parse_indices(indices, images)
    key = ("reconstructions", images.noun, images.n_images, *chosen, scale)

    def render() -> bytes:
        x, recon = reconstruct(model, images, chosen)
        return _grid_png(torch.cat([x, recon]), 2, len(chosen), scale)

    return cached_image(request, model, key, render)


@router.get(
    "/api/models/{name}/samples.png", response_class=Response, responses={200: PNG, **NOT_MODIFIED}
)
def samples_png(
    request: Request, model: ModelDep, settings: SettingsDep, served: ServedDep,
    n: Annotated[
        int,
        Query(ge=1, description="how many samples", json_schema_extra={"x-maximum": "max_batch"}),
    ] = DEFAULT_SAMPLES,
    seed: Seed = DEFAULT_SEED,
    label: Label = None,
    cols: Annotated[int, Query(ge=1, le=64, description="samples per row")] = SAMPLE_COLUMNS,
    scale: Scale = 1,
) -> Response:  # fmt: skip
    """Samples from the prior: the n latent vectors `/api/models/{name}/sample?n=&seed=` returns
    (z from the model's prior, N(0, I) unless it owns another; reproducible from the seed), each
    decoded to its pixel means, `cols` to a row
    in order (a short last row is left white). A CVAE decodes them all under `label` (default
    0); its class grid shows each z under every label."""
    _at_most(n, settings.max_batch, "n")
    _at_most(scale, settings.max_image_scale, "scale")
    check_label(model, label, served)
    cols = min(cols, n)
    key = ("samples", n, seed, label, cols, scale)
    return cached_image(
        request,
        model,
        key,
        lambda: _grid_png(prior_samples(model, n, seed, label), math.ceil(n / cols), cols, scale),
    )


@router.get(
    "/api/models/{name}/class-grid.png",
    response_class=Response,
    responses={200: PNG, **NOT_MODIFIED},
)
def class_grid_png(
    request: Request, model: ModelDep, settings: SettingsDep, served: ServedDep,
    rows: Annotated[
        int, Query(ge=1, le=MAX_CLASS_GRID_ROWS, description="how many z, one per row")
    ] = DEFAULT_CLASS_GRID_ROWS,
    seed: Seed = DEFAULT_SEED,
    z: Annotated[
        str | None,
        Query(
            description="one latent vector, comma-separated: the grid's only row (rows and "
            "seed are then not used)",
            json_schema_extra={"x-latent-vector": True},
        ),
    ] = None,
    scale: Scale = 1,
) -> Response:  # fmt: skip
    """A conditional VAE's class grid: one row per z, one column per label in label order
    (Fashion-MNIST: the ten garments), each cell that z decoded under that label, so a row
    shows what the label alone changes and a column what z holds. The z are those of
    `/api/models/{name}/sample?n={rows}&seed={seed}`, or the one given as `z`. 404 for a model
    that is not a CVAE: it has no labels."""
    check_has_labels(model)
    _at_most(scale, settings.max_image_scale, "scale")
    if z is not None:
        zs = parse_latents(z, model, settings, served=served)[None]
    else:
        zs = inference.sample_model_prior(model, rows, seed)
    key = ("class-grid", zs, scale)
    n_labels = model.description.n_labels
    return cached_image(
        request,
        model,
        key,
        lambda: _grid_png(class_grid(model, zs), len(zs), n_labels, scale),
    )


@router.get(
    "/api/models/{name}/pseudo-inputs.png",
    response_class=Response,
    responses={200: PNG, **NOT_MODIFIED},
)
def pseudo_inputs_png(
    request: Request, model: ModelDep, settings: SettingsDep,
    cols: Annotated[int, Query(ge=1, le=64, description="images per row")] = PSEUDO_COLUMNS,
    scale: Scale = 1,
) -> Response:  # fmt: skip
    """A VampPrior's K pseudo-inputs, the images whose posteriors the prior mixes, as the model
    keeps them (pythae's hardtanh(W e_k + b)), `cols` to a row in component order (a short last
    row is left white). 404 for a model whose prior is N(0, I): it has none."""
    images = model.pseudo_inputs
    if images is None:
        raise NotInModelError(
            f"model {model.name}'s prior is {model.prior.described}: it has no pseudo-inputs"
        )
    _at_most(scale, settings.max_image_scale, "scale")
    cols = min(cols, len(images))
    key = ("pseudo-inputs", cols, scale)
    rows = math.ceil(len(images) / cols)
    return cached_image(request, model, key, lambda: _grid_png(images, rows, cols, scale))


# --- the model page's gallery ------------------------------------------------------------------


@dataclass(frozen=True)
class Picture:
    """One picture of the gallery: its URL and what its rows and columns are."""

    url: str
    rows: list[str]  # top to bottom
    columns: list[str]  # left to right (empty: not labelled)


@dataclass(frozen=True)
class Gallery:
    name: str
    kind: str
    reconstructions: Picture | None
    noun: str  # what one image reconstructed is: "Fashion-MNIST test image"
    indices: list[int]
    examples_are: str  # how the indices were chosen
    no_reconstructions: str | None  # why there are none
    samples: Picture
    n_samples: int
    class_grid: Picture | None
    class_rows: int
    seed: int
    sample_label: str | None  # a CVAE's samples are decoded under this label


def page_scale(model: ServedModel, cols: int, settings: Settings) -> int:
    """The largest whole enlargement that keeps a grid of `cols` cells within PAGE_WIDTH and
    each cell within PAGE_CELL."""
    side = model.description.width
    fits = min(PAGE_WIDTH // (cols * (side + 2) + 2), PAGE_CELL // side)
    return max(1, min(settings.max_image_scale, fits))


def gallery(model: ServedModel, settings: Settings) -> Gallery:
    """What the model page shows: each picture that applies to `model`, at defaults."""
    cfg = model.description
    base = f"/api/models/{quote(model.name, safe='')}"
    reconstructions, noun, indices, chosen_as, why = None, "", [], "", None
    try:
        images = held_out_images(model, settings)
    except InferenceError as e:  # none, or not installed: the page says which
        why = str(e)
    else:
        noun, indices, chosen_as = images.noun, class_examples(images), examples_are(images)
        names = images.label_names
        reconstructions = Picture(
            url=f"{base}/reconstructions.png?scale={page_scale(model, len(indices), settings)}",
            rows=[noun, "reconstruction"],
            columns=[f"{names[images.label(i)]} ({i:,})" for i in indices],
        )
    n, scale = DEFAULT_SAMPLES, page_scale(model, SAMPLE_COLUMNS, settings)
    samples = Picture(f"{base}/samples.png?n={n}&seed={DEFAULT_SEED}&scale={scale}", [], [])
    grid = None
    if cfg.kind == "cvae":
        scale = page_scale(model, cfg.n_labels, settings)
        grid = Picture(
            url=f"{base}/class-grid.png?rows={DEFAULT_CLASS_GRID_ROWS}&seed={DEFAULT_SEED}"
            f"&scale={scale}",
            rows=[f"z {r + 1}" for r in range(DEFAULT_CLASS_GRID_ROWS)],
            columns=list(cfg.label_names),
        )
    return Gallery(
        name=model.name,
        kind=cfg.kind,
        reconstructions=reconstructions,
        noun=noun,
        indices=indices,
        examples_are=chosen_as,
        no_reconstructions=why,
        samples=samples,
        n_samples=n,
        class_grid=grid,
        class_rows=DEFAULT_CLASS_GRID_ROWS,
        seed=DEFAULT_SEED,
        sample_label=cfg.label_names[0] if cfg.kind == "cvae" else None,
    )


@router.get("/ui/{name}/gallery", response_class=HTMLResponse, include_in_schema=False)
def gallery_partial(
    request: Request, model: ModelDep, settings: SettingsDep, templates: TemplatesDep
) -> HTMLResponse:
    """htmx: the model page's reconstructions, prior samples and (a CVAE's) class grid."""
    context: dict[str, Any] = {"g": gallery(model, settings)}
    return templates.TemplateResponse(request, "partials/_gallery.html", context)
