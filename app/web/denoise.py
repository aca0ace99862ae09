"""The denoise view: pick or upload an image, corrupt it (Gaussian noise, salt-and-pepper, random
blocks, or a mask painted on it), and see what two models make of it, with PSNR/SSIM before and
after. By default a denoising autoencoder beside the plain VAE: the lecture's point that a model
trained on corrupted inputs learns to undo them, where a plain one reproduces the damage."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

import torch
from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse

from app import imaging
from app.checkpoints.served import ServedModel
from app.imaging import ImageInputError
from app.inference import InferenceError
from app.photo_fit import form_of
from app.quoting import quoted
from app.settings import Settings
from app.studies.denoise import (
    MAX_LEVEL,
    NOISE_CHOICES,
    Denoising,
    corrupt_image,
    denoise,
    parse_mask,
)
from app.studies.quality import Quality, ms_ssim_scales
from app.web.datasets import data_query, own_images, picker
from app.web.deps import (
    DataDep,
    DataPick,
    ModelDep,
    NoEmptyFields,
    RegistryDep,
    Served,
    ServedDep,
    SettingsDep,
    TemplatesDep,
)
from app.web.errors import DATA_UNAVAILABLE, NotFoundError, NotInModelError, UploadTooLargeError
from app.web.inputs import dataset_images, dataset_tensor, own_class
from app.web.params import DatasetIndex
from app.web.responses import data_url
from app.web.summaries import model_summary
from app.web.uploads import FitField, ImageFile, upload_bytes, upload_image

router = APIRouter(tags=["denoise"])
pages = APIRouter(tags=["pages"], include_in_schema=False)

# the `x-...` keys are markers that app/web/openapi.py turns into the served models' bounds
NOISE = {
    "description": "gaussian | salt_pepper | mask | drawn",
    "json_schema_extra": {"enum": list(NOISE_CHOICES)},
}
LEVEL = {"description": "σ, fraction of pixels, or fraction masked (for drawn: unused)"}
SEED = {"ge": 0, "le": 2**31 - 1, "description": "the noise's random seed"}
MASK = {
    "description": "for noise=drawn: a bit per pixel of the model's image (64×64, 28×28), "
    "row-major, MSB first, as hex",
    "json_schema_extra": {"x-mask": True},
}
NoiseQuery = Annotated[str, Query(**NOISE)]
LevelQuery = Annotated[float, Query(**LEVEL)]
SeedQuery = Annotated[int, Query(**SEED)]
MaskQuery = Annotated[str | None, Query(**MASK)]
DEFAULT_NOISE = "gaussian"
DEFAULT_LEVEL = {"gaussian": 0.3, "salt_pepper": 0.15, "mask": 0.25, "drawn": 0.0}


def noise_cases() -> list[dict[str, Any]]:
    """How noise, level and mask go together, for the schema (`x-one-of`, app/web/openapi.py):
    each noise's level within its range (MAX_LEVEL), a mask for the drawn one."""
    cases = []
    for noise in NOISE_CHOICES:
        case: dict[str, Any] = {"properties": {"noise": {"const": noise}}}
        if noise != DEFAULT_NOISE:
            case["required"] = ["noise", "mask"] if noise == "drawn" else ["noise"]
        if noise in MAX_LEVEL:
            case["properties"]["level"] = {"minimum": 0, "maximum": MAX_LEVEL[noise]}
        cases.append(case)
    return cases


NOISE_CASES = {"x-one-of": noise_cases()}


def is_denoiser(ckpt: ServedModel) -> bool:
    """Trained on corrupted inputs with the clean image as its target: its card says so."""
    return ckpt.card.denoising is not None


NO_DENOISER = (
    "No denoising model is served: compare any two models that take the same images, or train "
    "one with latent-explorer train --denoise."
)


def default_pair(registry: Mapping[str, ServedModel]) -> tuple[str, str]:
    """A denoising model and beside it the plain VAE (β=1, else any VAE); failing a denoiser,
    the AE; failing those, the first model. Only a model that takes the same images as the first
    is put beside it (a plain VAE, else any other, else the first model itself), so the page
    opens on a pair it can show whatever is served."""
    names = list(registry)
    dae = next((n for n, c in registry.items() if is_denoiser(c)), None)
    vaes = [n for n, c in registry.items() if c.description.kind == "vae"
            and c.description.objective != "vaegan" and not is_denoiser(c)]  # fmt: skip
    ae = next((n for n, c in registry.items() if c.description.kind == "ae"), None)
    a = dae or ae or names[0]
    shape = _image_shape(registry[a])
    same = [n for n in names if n != a and _image_shape(registry[n]) == shape]
    plain = [n for n in vaes if n in same]
    b = next((n for n in plain if registry[n].description.beta == 1), (plain or same or [a])[0])
    return a, b


def _image_shape(model: ServedModel) -> tuple[int, int]:
    """(channels, side) of the images the model takes: two models answer one image only alike."""
    return model.description.channels, model.description.image_size


def _clean_image(
    model: ServedModel, index: int | None, upload: bytes | None, settings: Settings,
    served: Served | None = None, fit: bool = False, data: DataPick | None = None,
) -> tuple[torch.Tensor, int | None, dict[str, Any]]:  # fmt: skip
    """The clean image (1, C, H, W), its class, and what was done to an upload (`fitted`, and
    `notes` from app.imaging.load_upload; nothing for a dataset image), from the upload, with
    `fit` fitted to the form of the model's data (app.photo_fit), or from the dataset (the
    data set `data` names, where it names one)."""
    if upload is not None:
        x, about = upload_image(model, upload, settings, fit)
        return x[None], None, about
    if index is None:
        raise InferenceError("give a dataset index or upload an image")
    images = dataset_images(model, settings, served, index, data)
    x = dataset_tensor(images, index, served=served)
    return x[None], own_class(model, images, index), {}


def mask_bits(mask: str, model: ServedModel, served: Served | None = None) -> Any:
    """A painted mask for the model's images, checked exactly as the schema states it: a 404
    for a mask of another served model's image size, else a 422 for anything but hex digits
    of one."""
    size = model.description.image_size
    lengths = {s * s // 4 for s in served.image_sizes} if served else {size * size // 4}
    if len(mask) not in lengths | {size * size // 4}:
        raise InferenceError(
            f"mask must be {size * size // 4} hex digits ({size}×{size} bits), got {len(mask)}"
        )
    if not re.fullmatch(r"[0-9a-fA-F]*", mask):
        raise InferenceError("mask must be hex digits (0-9, a-f)")
    if len(mask) != size * size // 4:
        raise NotInModelError(
            f"mask must be {size * size // 4} hex digits ({size}×{size} bits) for model "
            f"{model.name}, got {len(mask)}"
        )
    return parse_mask(mask, size)


def _run(
    models: list[ServedModel], index: int | None, upload: bytes | None, noise: str, level: float,
    seed: int, mask: str | None, settings: Settings, served: Served | None = None,
    fit: bool = False, data: DataPick | None = None,
) -> tuple[Denoising, dict[str, Any]]:  # fmt: skip
    """The models on the corrupted image, and what was done to an upload (_clean_image)."""
    first = models[0]
    shapes = {(m.description.channels, m.description.image_size) for m in models}
    if len(shapes) > 1:
        raise InferenceError(
            f"{' and '.join(m.name for m in models)} take different images; pick models of one "
            "dataset"
        )
    if noise not in NOISE_CHOICES:
        raise InferenceError(f"unknown noise {noise!r}: choose from {', '.join(NOISE_CHOICES)}")
    if not math.isfinite(level):
        raise InferenceError(f"level must be a finite number, got {level}")
    bits = mask_bits(mask, first, served) if mask is not None else None
    clean, label, about = _clean_image(first, index, upload, settings, served, fit, data)
    corrupted = corrupt_image(clean, noise, level, seed, bits)
    return denoise(models, clean, corrupted, label), about


def _quality_json(q: Quality) -> dict[str, float]:
    return {"psnr": round(q.psnr, 3), "ssim": round(q.ssim, 4), "ms_ssim": round(q.ms_ssim, 4)}


def _result_json(result: Denoising) -> dict[str, Any]:
    answer = result.answers[0]
    return {
        "clean_png": data_url(imaging.png_bytes(result.clean[0])),
        "corrupted_png": data_url(imaging.png_bytes(result.corrupted[0])),
        "output_png": data_url(imaging.png_bytes(answer.output[0])),
        "before": _quality_json(result.before),
        "after": _quality_json(answer.after),
    }


@router.get("/api/models/{name}/denoise", openapi_extra=NOISE_CASES, responses=DATA_UNAVAILABLE)
def denoise_dataset_image(
    model: ModelDep, settings: SettingsDep, served: ServedDep, index: DatasetIndex,
    data: DataDep, noise: NoiseQuery = DEFAULT_NOISE, level: LevelQuery = 0.3, seed: SeedQuery = 0,
    mask: MaskQuery = None,
) -> dict[str, Any]:  # fmt: skip
    """Corrupt dataset image `index` (dSprites, or the test split of a model's dataset that has
    one: Fashion-MNIST) and give it to the model: the clean, corrupted and output
    images (PNG data URLs) and PSNR (dB), SSIM and MS-SSIM of the corrupted input ("before") and
    of the output ("after") against the clean image. Each noise's level has its own range
    (gaussian σ ≤ 0.5, salt_pepper ≤ 0.3, mask ≤ 0.4); noise=drawn takes the painted `mask`.
    With `data=NAME`, image `index` of that data set, fitted to the model."""
    result, _ = _run([model], index, None, noise, level, seed, mask, settings, served, data=data)
    return _result_json(result)


async def _read_upload(file: UploadFile | None, settings: Settings) -> bytes | None:
    if file is None or not file.filename:
        return None
    return await upload_bytes(file, settings)


@router.post("/api/models/{name}/denoise", openapi_extra=NOISE_CASES, dependencies=[NoEmptyFields])
async def denoise_upload(
    model: ModelDep, settings: SettingsDep, served: ServedDep, file: ImageFile,
    noise: Annotated[str, Form(**NOISE)] = DEFAULT_NOISE,
    level: Annotated[float, Form(**LEVEL)] = 0.3,
    seed: Annotated[int, Form(**SEED)] = 0, mask: Annotated[str | None, Form(**MASK)] = None,
    fit: FitField = True,
) -> dict[str, Any]:  # fmt: skip
    """The same for an uploaded image (multipart field `file`). A Fashion-MNIST or MNIST photo
    is first fitted to the data's form, as for encode (`fit`, `fitted`, `notes.fit`)."""
    data = await _read_upload(file, settings)
    if data is None:
        raise InferenceError("the file is empty")
    result, about = _run([model], None, data, noise, level, seed, mask, settings, served, fit)
    return {**_result_json(result), **about}


# --- the page -------------------------------------------------------------------------------


def _pair(registry: Mapping[str, ServedModel], a: str | None, b: str | None) -> list[ServedModel]:
    da, db = default_pair(registry)
    out = []
    for name in (a or da, b or db):
        if name not in registry:
            raise NotFoundError(f"unknown model {quoted(name)}; available: {', '.join(registry)}")
        out.append(registry[name])
    return out


def _view(result: Denoising, models: list[ServedModel]) -> dict[str, Any]:
    recipes = {m.name: m.card.recipe or m.description.kind for m in models}
    return {
        "clean": data_url(imaging.png_bytes(result.clean[0])),
        "corrupted": data_url(imaging.png_bytes(result.corrupted[0])),
        "ms_ssim_scales": ms_ssim_scales(result.clean.shape[-1]),  # 3 at 64×64, 2 at 28×28
        "before": result.before,
        "answers": [
            {
                "name": a.model,
                "recipe": recipes[a.model],
                "after": a.after,
                "png": data_url(imaging.png_bytes(a.output[0])),
                "helps": a.after.psnr > result.before.psnr,
            }  # fmt: skip
            for a in result.answers
        ],
    }


def _fit_switch(model: ServedModel, on: bool) -> bool | None:
    """The form's fit switch: ticked or not for a model whose data has a form (Fashion-MNIST,
    MNIST), None (not shown) for any other."""
    return on if form_of(model.description.dataset) is not None else None


@pages.get("/denoise", response_class=HTMLResponse)
def denoise_page(
    request: Request, registry: RegistryDep, templates: TemplatesDep, settings: SettingsDep,
    data: DataDep, a: str | None = None, b: str | None = None, index: int | None = None,
    noise: str = "gaussian", level: float | None = None, seed: int = 0,
) -> HTMLResponse:  # fmt: skip
    """Both models on one corrupted image (of the data set `data`, where one is named); the
    URL holds the state."""
    if not registry:
        return templates.TemplateResponse(request, "empty.html", {}, status_code=503)
    context: dict[str, Any] = {
        "models": [model_summary(c) for c in registry.values()],
        "noise": noise, "seed": seed, "noises": NOISE_CHOICES, "error": None, "result": None,
        "max_levels": {**MAX_LEVEL, "drawn": 0.0}, "fit_switch": None,
        "note": None if any(is_denoiser(c) for c in registry.values()) else NO_DENOISER,
    }  # fmt: skip
    level = DEFAULT_LEVEL.get(noise, 0.3) if level is None else level
    context["level"] = level
    context["data_query"] = data_query(data)
    status = 200
    try:
        pair = _pair(registry, a, b)
        context["a"], context["b"] = pair[0].name, pair[1].name
        context["fit_switch"] = _fit_switch(pair[0], True)
        first = model_summary(pair[0], settings, data)
        state = {"a": pair[0].name, "b": pair[1].name, "index": index, "noise": noise,
                 "level": level, "seed": seed}  # fmt: skip
        context["picker"] = picker(data, "/denoise", state, own_images(pair[0]))
        context["dataset_images"] = first["dataset_images"]
        context["dataset_name"] = first["dataset_name"]
        context["dataset_split"] = first["dataset_split"]
        context["dataset_missing"] = first["dataset_missing"]
        if index is None and first["dataset_images"]:
            index = 1_234 % first["dataset_images"]  # a fixed default: the same page each time
        context["index"] = index
        if index is not None:
            result, _ = _run(pair, index, None, noise, level, seed, None, settings, data=data)
            context["result"] = _view(result, pair)
    except (InferenceError, NotFoundError) as e:
        context["error"] = str(e)
        context.setdefault("a", a)
        context.setdefault("b", b)
        status = 404 if isinstance(e, NotFoundError) else 422
    return templates.TemplateResponse(request, "denoise.html", context, status_code=status)


@pages.post("/ui/denoise", response_class=HTMLResponse)
async def denoise_partial(
    request: Request, registry: RegistryDep, templates: TemplatesDep, settings: SettingsDep,
    data: DataDep, a: Annotated[str, Form()], b: Annotated[str, Form()],
    index: Annotated[int | None, Form()] = None, file: UploadFile | None = None,
    noise: Annotated[str, Form()] = "gaussian", level: Annotated[float, Form()] = 0.3,
    seed: Annotated[int, Form(ge=0, le=2**31 - 1)] = 0,
    mask: Annotated[str | None, Form()] = None,
    fit: Annotated[bool, Form()] = False, fit_offered: Annotated[bool, Form()] = False,
) -> HTMLResponse:  # fmt: skip
    """htmx: the result panel for the form's state; the URL follows (unless the image was
    uploaded or the mask painted, which a URL cannot hold). `fit` is the checkbox, which a
    browser leaves out when unticked; `fit_offered` says the form showed it. Where it did not
    (model A's data had no form), an upload is fitted as the switch's default has it, and the
    switch is redrawn out of band for the models now chosen."""
    context: dict[str, Any] = {"error": None, "result": None, "oob": True}
    fit = fit or not fit_offered
    try:
        pair = _pair(registry, a, b)
        context["fit_switch"] = _fit_switch(pair[0], fit)
        upload = await _read_upload(file, settings)
        drawn = (mask or None) if noise == "drawn" else None
        result, about = _run(
            pair, None if upload else index, upload, noise, level, seed, drawn, settings,
            fit=fit, data=data,
        )  # fmt: skip
        context["result"] = {**_view(result, pair), **about}
    except (ImageInputError, InferenceError, NotFoundError, UploadTooLargeError) as e:
        context["error"] = str(e)
        return templates.TemplateResponse(
            request, "partials/denoise.html", context, status_code=422
        )
    response = templates.TemplateResponse(request, "partials/denoise.html", context)
    if upload is None and noise != "drawn":
        query = {"a": a, "b": b, "index": index, "noise": noise, "level": level, "seed": seed}
        response.headers["HX-Replace-Url"] = f"/denoise?{urlencode({**query, **data.query})}"
    return response
