"""The VAE vs GAN view: the same z from the prior decoded by two models side by side — by default a
plain VAE and a VAE-GAN (Larsen et al. 2016) of the same dataset and latent size — and one dataset
image reconstructed by both, each picture with its gradient energy
(app.studies.quality.gradient_energy), the dataset image's own as the reference. The lecture's
point: a pixel likelihood makes a VAE average what it is unsure of, so its pictures come out
blurry; the VAE-GAN's decoder is also trained to fool a discriminator, which blur does not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

import torch
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from app import imaging, inference
from app.checkpoints.served import ServedModel
from app.inference import (
    DatasetImages,
    DrawnImages,
    InferenceError,
    UnreadableImage,
    ground_truth_of,
)
from app.quoting import quoted
from app.settings import Settings
from app.studies.quality import gradient_energy, to_8bit
from app.web.datasets import own_images, picker
from app.web.deps import (
    DataDep,
    DataPick,
    ModelDep,
    RegistryDep,
    Served,
    ServedDep,
    SettingsDep,
    TemplatesDep,
)
from app.web.errors import NotFoundError, NotInModelError
from app.web.inputs import (
    check_label,
    dataset_images,
    dataset_of,
    dataset_tensor,
    own_class,
    parse_latents,
)
from app.web.params import Label, LatentText
from app.web.responses import data_url
from app.web.summaries import model_summary

router = APIRouter(tags=["sharpness"])
pages = APIRouter(tags=["pages"], include_in_schema=False)

MEASURE = (
    "gradient energy: the mean over pixels and channels of |∇x|² = (x[i, j+1] − x[i, j])² + "
    "(x[i+1, j] − x[i, j])², intensities in [0, 1], on the 64×64 image as shown (8-bit); "
    "0 for a flat image, higher is sharper"
)
SeedQuery = Annotated[int, Query(ge=0, le=2**31 - 1, description="seed of z ~ N(0, I)")]


def is_vaegan(ckpt: ServedModel) -> bool:
    """Trained as a VAE-GAN: its config's objective, or its card's recipe, says so."""
    return ckpt.description.objective == "vaegan" or "VAE-GAN" in (ckpt.card.recipe or "")


def default_pair(registry: Mapping[str, ServedModel]) -> tuple[str, str]:
    """(plain VAE, VAE-GAN): a VAE-GAN, and beside it the VAE it was initialised from when that
    exact model (by weights digest) is served, so the same z means the same scene to both;
    else a VAE of the same dataset and latent size that is not a GAN (β=1 first, then any such
    VAE, a denoiser last); failing one, another model that takes its z and its images. Without a
    VAE-GAN, the first plain VAE in that order that another model takes the z and images of,
    and that model; failing one, the first model that has such a partner; failing that, the
    plain VAE (else the first model) alone: the page opens on a pair it can show."""
    names = list(registry)

    def partner(a: str) -> str | None:
        return next((n for n in names if n != a and _comparable(registry[n], registry[a])), None)

    def plain(ref: ServedModel | None) -> list[str]:
        def fits(c: ServedModel) -> bool:
            if c.description.kind != "vae" or is_vaegan(c):
                return False
            return ref is None or (c.description.dataset, c.description.latent_dim) == (
                ref.description.dataset, ref.description.latent_dim
            )  # fmt: skip

        found = [n for n, c in registry.items() if fits(c)]
        # β=1 and not a denoiser first; sorted() keeps the registry's order among equals
        rank = {n: (registry[n].card.denoising is not None, registry[n].description.beta != 1)
                for n in found}  # fmt: skip
        return sorted(found, key=lambda n: rank[n])

    gan = next((n for n, c in registry.items() if is_vaegan(c)), None)
    if gan is not None:
        init = registry[gan].card.initialised_from
        parent_digest = init.digest if init is not None else None
        parent = [n for n, c in registry.items() if parent_digest and c.digest == parent_digest]
        if parent:
            return parent[0], gan
        return (plain(registry[gan]) or [partner(gan) or gan])[0], gan
    vaes = plain(None)
    pairs = ((a, b) for a in [*vaes, *names] if (b := partner(a)) is not None)
    alone = (vaes or names)[0]
    return next(pairs, (alone, alone))


def _comparable(a: ServedModel, b: ServedModel) -> bool:
    """One z drives both, and one image goes into both."""
    da, db = a.description, b.description
    same_z = da.latent_dim == db.latent_dim
    return same_z and (da.channels, da.image_size) == (db.channels, db.image_size)


NO_VAEGAN = (
    "No VAE-GAN is served: compare any two models with the same latent size, or train one with "
    "latent-explorer train --kind vaegan."
)


def _picture(image: torch.Tensor) -> tuple[bytes, float]:
    """(C, H, W) in [0, 1] → its PNG and the gradient energy of exactly what the PNG holds."""
    shown = to_8bit(image.double())  # exactly the PNG's levels k/255
    return imaging.png_bytes(shown), float(gradient_energy(shown[None])[0])


def _own_label(ckpt: ServedModel, label: int | None) -> int | None:
    return label if ckpt.description.kind == "cvae" else None


def _decode(ckpt: ServedModel, z: torch.Tensor, label: int | None) -> tuple[bytes, float]:
    return _picture(inference.decode_latents(ckpt, z[None], _own_label(ckpt, label))[0])


def _reconstruct(ckpt: ServedModel, x: torch.Tensor, label: int | None) -> tuple[bytes, float]:
    """x (C, H, W) → its reconstruction from z = μ, as everywhere in the explorer."""
    enc = inference.encode_images(ckpt, x[None], _own_label(ckpt, label))
    return _picture(enc.reconstruction[0])


@router.get("/api/models/{name}/sharpness")
def sharpness(
    model: ModelDep, settings: SettingsDep, served: ServedDep, z: LatentText,
    label: Label = None,
) -> dict[str, Any]:  # fmt: skip
    """Decode `z`: the model's 64×64 picture as a PNG data URL and its gradient energy, the
    mean over pixels and channels of the squared forward-difference gradient
    (x[i, j+1] − x[i, j])² + (x[i+1, j] − x[i, j])², with intensities in [0, 1], computed on the
    8-bit image the PNG holds. `/sharpness/{index}` measures a reconstruction instead."""
    zt = parse_latents(z, model, settings, served=served)
    check_label(model, label, served)
    png, energy = _decode(model, zt, label)
    return {"z": zt.tolist(), "image_png": data_url(png), "gradient_energy": energy}


@router.get("/api/models/{name}/sharpness/{index}")
def reconstruction_sharpness(
    model: ModelDep, settings: SettingsDep, served: ServedDep, data: DataDep,
    index: Annotated[
        int,  # past the model's dataset the image does not exist: a 404, as for any path
        Path(description="a dataset image to reconstruct",
             json_schema_extra={"minimum": 0, "x-dataset-index": True}),
    ],
    label: Label = None,
) -> dict[str, Any]:  # fmt: skip
    """Reconstruct dataset image `index` from z = μ: the model's picture and its gradient
    energy (as for `/sharpness?z=`), and the dataset image with its own, the reference. With
    `data=NAME`, image `index` of that data set, fitted to the model."""
    try:
        images = _images(model, settings, data, served, index)
        x = dataset_tensor(images, index, served=served)
    except UnreadableImage:
        raise
    except InferenceError as e:
        raise NotInModelError(str(e)) from None
    check_label(model, label, served)
    if label is None:
        label = own_class(model, images, index)
    input_png, input_energy = _picture(x)
    png, energy = _reconstruct(model, x, label)
    return {
        "index": index,
        "input_png": data_url(input_png),
        "input_gradient_energy": input_energy,
        "image_png": data_url(png),
        "gradient_energy": energy,
    }


# --- the page -------------------------------------------------------------------------------


def _pair(registry: Mapping[str, ServedModel], a: str | None, b: str | None) -> list[ServedModel]:
    da, db = default_pair(registry)
    out = []
    for name in (a or da, b or db):
        if name not in registry:
            raise NotFoundError(f"unknown model {quoted(name)}; available: {', '.join(registry)}")
        out.append(registry[name])
    return out


def _panel(ckpt: ServedModel, png: bytes, energy: float) -> dict[str, Any]:
    return {
        "name": ckpt.name,
        "recipe": ckpt.card.recipe or ckpt.description.kind,
        "gan": is_vaegan(ckpt),
        "png": data_url(png),
        "energy": energy,
    }


def _images(
    model: ServedModel, settings: Settings, data: DataPick, served: Served | None = None,
    index: int | None = None,
) -> DatasetImages:  # fmt: skip
    """The images a reconstruction is measured on: drawn from the model's ground truth (the
    VAE-GAN's 64×64 sprites), or the data set `data` names."""
    if data.name:
        return dataset_images(model, settings, served, index, data)
    return DrawnImages(dataset_of(model, served, index))


def _compare(
    pair: list[ServedModel], seed: int, index: int | None, images: DatasetImages | None
) -> dict[str, Any]:
    """Both models on z from the first one's prior (N(0, I) but for a model that owns another)
    drawn from `seed`, and on image `index` of `images` (None: no image)."""
    a, b = pair
    if a.description.latent_dim != b.description.latent_dim:
        raise InferenceError(
            f"{a.name} has {a.description.latent_dim} latents and {b.name} "
            f"{b.description.latent_dim}: "
            "one z cannot drive both; pick two models with the same latent size"
        )
    z = inference.sample_model_prior(a, 1, seed)[0]
    result: dict[str, Any] = {
        "z": ", ".join(f"{v:.2f}" for v in z.tolist()),
        "samples": [_panel(m, *_decode(m, z, 0)) for m in pair],
        "reconstruction": None,
    }
    if index is None:
        return result
    if (a.description.channels, a.description.image_size) != (
        b.description.channels,
        b.description.image_size,
    ):
        raise InferenceError(
            f"{a.name} and {b.name} take different images; pick two models of one dataset"
        )
    if images is None:
        dataset_of(a)  # the error that says it has none
        raise InferenceError(f"{a.name} has no dataset images")
    x = dataset_tensor(images, index)
    # the class of a CVAE among them: the image's own
    label = next((own_class(m, images, index) for m in pair if m.description.kind == "cvae"), None)
    input_png, input_energy = _picture(x)
    answers = []
    for m in pair:
        panel = _panel(m, *_reconstruct(m, x, label))
        panel["share"] = panel["energy"] / input_energy if input_energy > 0 else None
        answers.append(panel)
    result["reconstruction"] = {
        "input": {"png": data_url(input_png), "energy": input_energy},
        "answers": answers,
    }
    return result


@pages.get("/sharpness", response_class=HTMLResponse)
def sharpness_page(
    request: Request, registry: RegistryDep, templates: TemplatesDep, settings: SettingsDep,
    data: DataDep, a: str | None = None, b: str | None = None, seed: SeedQuery = 0,
    index: Annotated[int | None, Query(ge=0)] = None,
) -> HTMLResponse:  # fmt: skip
    """Two models on one z and one dataset image; the URL holds the state. An htmx request
    (HX-Request header) gets the view's fragment, anything else the whole page."""
    if not registry:
        return templates.TemplateResponse(request, "empty.html", {}, status_code=503)
    context: dict[str, Any] = {
        "models": [model_summary(c) for c in registry.values()],
        "seed": seed, "next_seed": (seed + 1) % 2**31, "measure": MEASURE,
        "error": None, "result": None, "a": a, "b": b, "index": index,
        "dataset_images": None, "dataset_name": None,
        "note": None if any(is_vaegan(c) for c in registry.values()) else NO_VAEGAN,
    }  # fmt: skip
    status = 200
    try:
        pair = _pair(registry, a, b)
        context["a"], context["b"] = pair[0].name, pair[1].name
        state = {"a": pair[0].name, "b": pair[1].name, "seed": seed, "index": index}
        context["picker"] = picker(data, "/sharpness", state, own_images(pair[0]))
        truth = ground_truth_of(pair[0])
        images = _images(pair[0], settings, data) if data.name or truth is not None else None
        if images is not None:
            context["dataset_images"], context["dataset_name"] = images.n_images, images.name
            if index is None:
                index = 1_234 % images.n_images  # a fixed default: the same page each time
        context["index"] = index
        context["result"] = _compare(pair, seed, index, images)
    except (InferenceError, NotFoundError) as e:
        context["error"] = str(e)
        status = 404 if isinstance(e, NotFoundError) else 422
    following = {"a": context["a"], "b": context["b"], "seed": context["next_seed"], "index": index,
                 **data.query}  # fmt: skip
    query = {k: v for k, v in following.items() if v is not None}
    context["next_url"] = f"/sharpness?{urlencode(query)}"
    context["data"] = data.name
    template = "partials/sharpness.html" if request.headers.get("HX-Request") else "sharpness.html"
    return templates.TemplateResponse(request, template, context, status_code=status)
