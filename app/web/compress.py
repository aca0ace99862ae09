"""The compression view: a model's latent code as an image codec against JPEG. The JSON API
(one dataset image or an upload → the code, both reconstructions and their quality), the
rate–distortion SVG, the page /compress and the htmx partials it swaps in.

Compressing one image costs ~20 ms (12 of them are the 95 JPEG encodes that find the closest
size), the first rate–distortion study of a model a few seconds: both run on the thread pool,
off the event loop.
"""

from __future__ import annotations

import base64
from dataclasses import asdict
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import numpy as np
import torch
from fastapi import APIRouter, Depends, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from app import imaging
from app.checkpoints.served import ServedModel
from app.imaging import ImageInputError
from app.inference import InferenceError, TestImages, TestSplit
from app.photo_fit import form_of
from app.quoting import quoted
from app.settings import Settings
from app.studies import compression, compression_svg
from app.studies.compression import Comparison, CompressionError, Study
from app.studies.figure2 import TRAVERSAL_IMAGE
from app.studies.quality import PSNR_CAP, Quality, ms_ssim_scales
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
from app.web.errors import (
    DATA_UNAVAILABLE,
    NOT_MODIFIED,
    DataUnavailableError,
    NotInModelError,
    UploadTooLargeError,
)
from app.web.inputs import check_label, dataset_tensor, drawn_elsewhere, images_of, own_class
from app.web.params import DatasetIndex
from app.web.responses import cached_image, data_url
from app.web.summaries import model_summary
from app.web.uploads import FitField, ImageFile, read_upload

router = APIRouter(tags=["compression"])

SVG = {"content": {"image/svg+xml": {}}, "description": "an SVG document"}
SVG_RESPONSES = {200: SVG, **NOT_MODIFIED}
SHARED_STATE = (
    "the decoder already knows the model, which latents are kept, their quantiser and k, as a "
    "JPEG decoder knows its tables: that shared state is not counted in the code's bytes"
)
# the page's first dSprites image: a centred heart at scale 0.8, upright (the image Figure 2
# traverses); image 0 of any other dataset
DSPRITES_HEART = TRAVERSAL_IMAGE
DEFAULT_BITS = 6  # the shipped VAEs' codes are then 0.1–0.3 dB below their unquantised μ
METRIC_NAMES = tuple(compression_svg.METRICS)

Bits = Annotated[int, Query(ge=1, le=8, description="bits per kept latent, 1..8")]
Label = Annotated[
    int | None,
    Query(
        description="a CVAE's class (it is carried in the code); default: the image's shape",
        json_schema_extra={"x-class-index": True},
    ),
]
Metric = Annotated[Literal["psnr", "ssim", "ms_ssim"], Query(description="the y axis")]


async def get_study() -> Study:
    """Which images the rate–distortion study averages over (tests override this with fewer)."""
    return Study()


StudyDep = Annotated[Study, Depends(get_study)]


# --- building blocks ------------------------------------------------------------------------


def _quality(q: Quality) -> dict[str, float]:
    return {"psnr": q.psnr, "ssim": q.ssim, "ms_ssim": q.ms_ssim}


def comparison_json(model: ServedModel, c: Comparison) -> dict[str, Any]:
    """What the API answers and the page shows for one compressed image."""
    cfg = model.description
    bpp = 8 / c.pixels
    label_bits = c.n_bits - len(c.kept) * c.bits
    float32_bytes = -(-(label_bits + 32 * len(c.kept)) // 8)  # μ as it is, for reference
    return {
        "model": model.name,
        "image_size": cfg.image_size,
        "bits": c.bits,
        "kept_latents": list(c.kept),
        "label": c.label,
        "label_name": cfg.label_names[c.label] if c.label is not None else None,
        "code": {"hex": c.code.hex(), "bytes": len(c.code), "bits": c.n_bits, "bpp": c.bpp},
        "original_png": data_url(imaging.png_bytes(c.original)),
        "reconstruction_png": data_url(imaging.png_bytes(c.reconstruction)),
        "vae": _quality(c.vae),
        "unquantised": {
            **_quality(c.unquantised),
            "bytes": float32_bytes,
            "bpp": bpp * float32_bytes,
        },
        "jpeg": {
            "image": "data:image/jpeg;base64," + base64.b64encode(c.jpeg.data).decode(),
            "quality": c.jpeg.quality,
            "file_bytes": c.jpeg.file_bytes,
            "payload_bytes": c.jpeg.payload_bytes,
            "file_bpp": bpp * c.jpeg.file_bytes,
            "payload_bpp": bpp * c.jpeg.payload_bytes,
            **_quality(c.jpeg_quality),
        },
        "shared_state": SHARED_STATE,
        "psnr_cap": PSNR_CAP,
    }


def dataset_image(
    model: ServedModel, settings: Settings, index: int, served: Served | None = None,
    data: DataPick | None = None,
) -> tuple[torch.Tensor, int | None]:  # fmt: skip
    """Image `index` of the model's dataset (drawn from ground truth, or its test split; or of
    the data set `data` names) and, for a CVAE, its class as the label; a 404 where the schema
    calls the index valid (inputs.dataset_tensor), else a 422; a 503 where the test split is
    not installed."""
    images = images_of(model, settings, data)
    if images is None:
        error = NotInModelError if drawn_elsewhere(served, index) else CompressionError
        raise error(
            f"{model.description.dataset} cannot be drawn here: model {model.name} has no "
            "dataset images to compress; upload one"
        )
    x = dataset_tensor(images, index, served=served)
    return x, own_class(model, images, index)


# (metric, weights, name, study, test images) → SVG text: a registry is read-only, so built
# once per process
_documents: dict[tuple[Any, ...], str] = {}


def svg_document(
    model: ServedModel, study: Study, metric: str, split: TestSplit | None = None
) -> str:
    images = (split.name, len(split)) if split is not None else ()
    key = (metric, model.digest, model.name, study, *images)
    if key not in _documents or not model.digest:
        rd = compression.rate_distortion(model, study, split)
        _documents[key] = compression_svg.rate_distortion_svg(rd, metric)
    return _documents[key]


def study_split(model: ServedModel, settings: Settings) -> TestSplit | None:
    """Where the model's rate–distortion study takes its images: its dataset's test split
    (Fashion-MNIST), or None for images drawn from ground truth (dSprites). A 404 for a model
    whose dataset cannot be drawn (an image folder): it has no study; a 503 where its test
    split is not installed."""
    images = images_of(model, settings)
    if isinstance(images, TestImages):
        return images.split
    try:
        compression.dataset_of(model.description)
    except CompressionError as e:
        raise NotInModelError(str(e)) from None
    return None


# --- the JSON/SVG API -----------------------------------------------------------------------


@router.get("/api/models/{name}/compress", responses=DATA_UNAVAILABLE)
def compress_dataset_image(
    model: ModelDep,
    settings: SettingsDep,
    served: ServedDep,
    index: DatasetIndex,
    data: DataDep,
    bits: Bits = DEFAULT_BITS,
    label: Label = None,
) -> dict[str, Any]:
    """Compress image `index` of the model's dataset with its latent code at `bits` bits per kept
    latent (mean KL > 0.1 nats; every latent for the AE), and with JPEG at the quality whose
    whole file is closest in size: the code as hex, its bytes and bits per pixel, both
    reconstructions (JPEG as the real file), and PSNR / SSIM / MS-SSIM of each (PSNR capped at
    100 dB for identical images). The model, the kept latents and k are shared codec state,
    not counted. With `data=NAME`, image `index` of that data set, fitted to the model."""
    x, own_label = dataset_image(model, settings, index, served, data)
    check_label(model, label, served)
    c = compression.compress_image(model, x, bits, own_label if label is None else label)
    return {**comparison_json(model, c), "index": index}


@router.post("/api/models/{name}/compress", dependencies=[NoEmptyFields])
async def compress_upload(
    model: ModelDep,
    settings: SettingsDep,
    served: ServedDep,
    file: ImageFile,
    bits: Annotated[int, Form(ge=1, le=8, description="bits per kept latent, 1..8")] = (
        DEFAULT_BITS
    ),
    label: Annotated[
        int | None,
        Form(
            description="a CVAE's class; default: the best",
            json_schema_extra={"x-class-index": True},
        ),
    ] = None,
    fit: FitField = True,
) -> dict[str, Any]:
    """The same for an uploaded image (validated as every upload is). A CVAE without a label
    tries every class and keeps the best: the class is part of the code. A Fashion-MNIST or
    MNIST photo is first fitted to the data's form, as for encode (`fit`, `fitted`,
    `notes.fit`)."""
    check_label(model, label, served)
    x, about = await read_upload(model, settings, file, fit)
    c = await run_in_threadpool(compression.compress_image, model, x, bits, label)
    return {**comparison_json(model, c), **about}


@router.get("/api/models/{name}/rate-distortion", responses=DATA_UNAVAILABLE)
def rate_distortion_numbers(
    model: ModelDep, settings: SettingsDep, study: StudyDep
) -> dict[str, Any]:
    """The rate–distortion study behind the plot: mean bpp, PSNR, SSIM and MS-SSIM over a
    fixed set of dataset images, for the code at k = 1..8, JPEG whole files and JPEG payloads
    at qualities 1…90, and the unquantised μ (models whose dataset can be drawn, e.g.
    dSprites, or has a test split, e.g. Fashion-MNIST)."""
    split = study_split(model, settings)
    rd = compression.rate_distortion(model, study, split)
    return {
        "model": rd.model,
        "dataset": rd.dataset,
        "kept_latents": list(rd.kept),
        "label_bits": rd.label_bits,
        "images": rd.study.n_images,
        "seed": rd.study.seed,
        "pixels": rd.pixels,
        "vae": [asdict(p) for p in rd.vae],
        "jpeg_file": [asdict(p) for p in rd.jpeg_file],
        "jpeg_payload": [asdict(p) for p in rd.jpeg_payload],
        "unquantised": asdict(rd.unquantised),
    }


@router.get(
    "/api/models/{name}/rate-distortion.svg",
    response_class=Response,
    responses={**SVG_RESPONSES, **DATA_UNAVAILABLE},
)
def rate_distortion_document(
    request: Request, model: ModelDep, settings: SettingsDep, study: StudyDep,
    metric: Metric = "psnr",
) -> Response:  # fmt: skip
    """The study as an SVG plot: `metric` against bits per pixel (log scale), one line for the
    VAE code at k = 1..8, one for JPEG whole files, one for JPEG payloads (models whose
    dataset can be drawn, e.g. dSprites, or has a test split, e.g. Fashion-MNIST)."""
    split = study_split(model, settings)  # before anything is computed
    images = (split.name, len(split)) if split is not None else ()
    return cached_image(
        request,
        model,
        ("rate-distortion", metric, study, *images),
        lambda: svg_document(model, study, metric, split).encode(),
        media_type="image/svg+xml",
    )


# --- the page and its partials --------------------------------------------------------------


def _page_url(model: ServedModel, bits: int, index: int | None, data: DataPick) -> str:
    query: dict[str, Any] = {"model": model.name}
    if index is not None:
        query["index"] = index
    query["bits"] = bits
    return f"/compress?{urlencode({**query, **data.query})}"


def _result_context(
    registry: RegistryDep, model: ServedModel, settings: Settings, bits: int, index: int | None,
    source: str, data: DataPick,
) -> dict[str, Any]:  # fmt: skip
    """What the result partial needs besides the comparison itself: the state, and links that
    show the same dataset image with the other models or another image with this one. Without
    dataset images (an image-folder model, or a test split not installed: `missing` says how
    to install it) uploads only."""
    missing = None
    try:
        images = images_of(model, settings, data)
    except DataUnavailableError as e:
        images, missing = None, str(e)
    others = [n for n in registry if n != model.name]
    random_index = int(np.random.default_rng().integers(images.n_images)) if images else None
    return {
        "m": model_summary(model),
        "bits": bits,
        "bits_range": list(compression.BITS),
        "index": index,
        "source": source,
        "dataset": images.name if images else None,
        "noun": images.noun if images else None,
        "split": "test" if isinstance(images, TestImages) else None,
        "missing": missing,
        "n_images": images.n_images if images else 0,
        "other_models": [(n, _page_url(registry[n], bits, index, data)) for n in others],
        "random_url": _page_url(model, bits, random_index, data) if images else None,
        "data_query": data_query(data),
        "shared_state": SHARED_STATE,
        "psnr_cap": PSNR_CAP,
        "photo_form": form_of(model.description.dataset) is not None,
        "r": None,
        "error": None,
        "oob": False,
    }


def _parse_int(text: str | None, what: str) -> int | None:
    if text is None or not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise CompressionError(f"{what} must be a whole number, got {quoted(text)}") from None


@router.get("/compress", response_class=HTMLResponse, include_in_schema=False)
def compress_page(
    request: Request, registry: RegistryDep, templates: TemplatesDep, settings: SettingsDep,
    data: DataDep, model: str | None = None, index: int | None = None, bits: int = DEFAULT_BITS,
) -> HTMLResponse:  # fmt: skip
    """The model's code against JPEG for one image (of the data set `data`, where one is
    named), and the rate–distortion study below."""
    if not registry:
        return templates.TemplateResponse(request, "empty.html", {}, status_code=503)
    name = model if model is not None and model in registry else next(iter(registry))
    ckpt = registry[name]
    warning = f"unknown model {quoted(model)}; showing {name}" if name != model and model else None
    context = _result_context(registry, ckpt, settings, bits, index, "dataset", data)
    context["warning"] = warning
    state = {"model": name, "index": index, "bits": bits}
    context["picker"] = picker(data, "/compress", state, own_images(ckpt))
    if context["dataset"]:
        default = DSPRITES_HEART if context["dataset"] == "dSprites" else 0
        context["index"] = default if index is None else index
        try:
            compression.check_bits(bits)
            x, label = dataset_image(ckpt, settings, context["index"], data=data)
            c = compression.compress_image(ckpt, x, bits, label)
            context["r"] = {**comparison_json(ckpt, c), "index": context["index"]}
        except InferenceError as e:
            context["error"] = str(e)
    return templates.TemplateResponse(request, "compress.html", context)


@router.post("/ui/{name}/compress", response_class=HTMLResponse, include_in_schema=False)
async def compress_partial(
    request: Request, model: ModelDep, registry: RegistryDep, settings: SettingsDep,
    templates: TemplatesDep, data: DataDep,
    source: Annotated[Literal["dataset", "upload"], Form()] = "dataset",
    index: Annotated[str | None, Form()] = None,
    bits: Annotated[str | None, Form()] = None,
    file: UploadFile | None = None, fit: Annotated[bool, Form()] = False,
) -> HTMLResponse:  # fmt: skip
    """htmx: compress the dataset image or the upload at the chosen bits; the URL is replaced
    so that a dataset image's view can be shared (an upload cannot live in a URL). `fit` is the
    page's checkbox, which a browser leaves out when unticked: absent here means off."""
    context = _result_context(registry, model, settings, DEFAULT_BITS, None, source, data)
    context["oob"] = True
    status = 200
    try:
        k = _parse_int(bits, "bits")
        k = compression.check_bits(DEFAULT_BITS if k is None else k)
        context["bits"] = k
        i = _parse_int(index, "the image index")
        context["index"] = i
        extra: dict[str, Any]
        if source == "upload":
            if file is None or not file.filename:
                raise ImageInputError("choose an image file to upload")
            x, extra = await read_upload(model, settings, file, fit)
            label = None
        else:
            if i is None:
                raise CompressionError("give a dataset image index, or upload an image")
            x, label = dataset_image(model, settings, i, data=data)
            extra = {"index": i}
        c = await run_in_threadpool(compression.compress_image, model, x, k, label)
        context["r"] = {**comparison_json(model, c), **extra}
    except (ImageInputError, InferenceError, UploadTooLargeError) as e:
        context["error"], status = str(e), 413 if isinstance(e, UploadTooLargeError) else 422
    response = templates.TemplateResponse(
        request, "partials/compress.html", context, status_code=status
    )
    if context["r"] is not None:
        upload = source == "upload"
        url = _page_url(model, context["bits"], None if upload else context["index"], data)
        response.headers["HX-Replace-Url"] = url
    return response


@router.get("/ui/{name}/rate-distortion", response_class=HTMLResponse, include_in_schema=False)
def rate_distortion_partial(
    request: Request, model: ModelDep, templates: TemplatesDep, settings: SettingsDep,
    study: StudyDep,
) -> HTMLResponse:  # fmt: skip
    """htmx: the study's plots, its numbers and what they say, loaded after the page."""
    side = model.description.image_size
    context: dict[str, Any] = {
        "part": "rate-distortion",
        "name": model.name,
        "error": None,
        "psnr_cap": PSNR_CAP,
        # MS-SSIM's scales at the model's image size (quality.ms_ssim_scales): 64 → 32 → 16
        "scales": [side >> k for k in range(ms_ssim_scales(side))],
    }
    try:
        split = study_split(model, settings)
        rd = compression.rate_distortion(model, study, split)
        # Markup: our own SVG, every piece of text in it escaped by app.studies.compression_svg
        plots = {m: Markup(svg_document(model, study, m, split)) for m in METRIC_NAMES}
        context["plots"] = plots
        context["rd"] = rd
        context["findings"] = findings(rd)
    except InferenceError as e:
        context["error"] = str(e)
    status = 200 if context["error"] is None else 422
    return templates.TemplateResponse(
        request, "partials/compress.html", context, status_code=status
    )


def findings(rd: compression.RateDistortion) -> dict[str, Any]:
    """The numbers the page's summary quotes: the code at its largest, JPEG at its smallest,
    and where JPEG's SSIM dips below the code's."""
    per_byte = rd.pixels / 8
    best = rd.vae[-1]
    small_file = min(rd.jpeg_file, key=lambda p: p.bpp)
    small_payload = min(rd.jpeg_payload, key=lambda p: p.bpp)
    return {
        "code": best,
        "code_bytes": round(best.bpp * per_byte),
        "smallest_code": rd.vae[0],
        "smallest_code_bytes": round(rd.vae[0].bpp * per_byte),
        "file": small_file,
        "file_bytes": small_file.bpp * per_byte,
        "payload": small_payload,
        "payload_bytes": small_payload.bpp * per_byte,
        "ratio": small_payload.bpp / best.bpp if best.bpp > 0 else None,
        "jpeg_wins_psnr": small_payload.psnr > best.psnr,
        "top": max(rd.jpeg_file, key=lambda p: p.psnr),
        "ceiling": rd.unquantised,
        "ssim_dips": [p for p in rd.jpeg_file if p.ssim < best.ssim],
    }
