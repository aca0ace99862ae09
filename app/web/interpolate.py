"""The interpolate view: two images (uploaded or from the dataset) → encoded → a strip of N steps,
linear and spherical, an animated playback, PNG and GIF downloads. A model whose dataset has a
test split (Fashion-MNIST) picks its ends from the test images by class, and opens on the path
from a sneaker to an ankle boot."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import numpy as np
import torch
from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse

from app import imaging, inference
from app.checkpoints.served import ServedModel
from app.imaging import ImageInputError
from app.inference import DatasetImages, InferenceError, TestImages
from app.photo_fit import form_of
from app.settings import Settings
from app.web.datasets import data_query, own_images, picker
from app.web.deps import DataDep, DataPick, ModelDep, RegistryDep, SettingsDep, TemplatesDep
from app.web.errors import UploadTooLargeError
from app.web.inputs import (
    dataset_tensor,
    images_of,
    nth_of_class,
    own_class,
    parse_latents,
    picked_class,
)
from app.web.responses import data_url
from app.web.summaries import model_summary
from app.web.uploads import upload_bytes, upload_image

router = APIRouter(tags=["pages"], include_in_schema=False)

# a test split's default ends: the first sneaker and the first ankle boot (Fashion-MNIST's
# classes 7 and 9), two shoes far enough apart for the path between them to show something
DEFAULT_CLASSES = (7, 9)


def _strip_context(
    ckpt: ServedModel, z0: str, z1: str, steps: int, label: int | None
) -> dict[str, Any]:
    params = {"z0": z0, "z1": z1, "steps": steps}
    if label is not None:
        params["label"] = label
    base = f"/api/models/{ckpt.name}/interpolate"
    return {
        "linear": f"{base}.png?{urlencode({**params, 'method': 'linear'})}",
        "slerp": f"{base}.png?{urlencode({**params, 'method': 'slerp'})}",
        "gif": f"{base}.gif?{urlencode({**params, 'method': 'slerp', 'scale': 2})}",
        "gif_linear": f"{base}.gif?{urlencode({**params, 'method': 'linear', 'scale': 2})}",
        "steps": steps,
    }


@router.get("/interpolate", response_class=HTMLResponse)
def interpolate_page(
    request: Request, registry: RegistryDep, templates: TemplatesDep, settings: SettingsDep,
    data: DataDep, model: str | None = None, z0: str | None = None, z1: str | None = None,
    steps: int = 8, label: int | None = None,
) -> HTMLResponse:  # fmt: skip
    """Pick two images (of the data set `data`, where one is named); the URL (model, z0, z1,
    steps, data) restores the strips it shows."""
    if not registry:
        return templates.TemplateResponse(request, "empty.html", {}, status_code=503)
    name = model if model is not None and model in registry else next(iter(registry))
    ckpt = registry[name]
    summary = model_summary(ckpt, settings, data)
    images = images_of(ckpt, settings, data) if summary["dataset_images"] else None
    state = {"model": name, "z0": z0, "z1": z1, "steps": steps, "label": label}
    context: dict[str, Any] = {
        "models": [model_summary(c) for c in registry.values()],
        "model": summary,
        "steps": min(max(steps, 2), settings.max_interpolate_steps),
        "max_steps": settings.max_interpolate_steps,
        "index_a": None,
        "index_b": None,
        "classes": {"a": None, "b": None},
        "label": label,
        "strips": None,
        "error": None,
        "photo_form": form_of(ckpt.description.dataset) is not None,
        "picker": picker(data, "/interpolate", state, own_images(ckpt)),
        "data_query": data_query(data),
        "data_more": data_query(data, first=False),
    }
    if isinstance(images, TestImages):
        defaults = [_first_of_class(images, c) for c in DEFAULT_CLASSES]
        context["index_a"], context["index_b"] = defaults
        context["classes"] = {"a": DEFAULT_CLASSES[0], "b": DEFAULT_CLASSES[1]}
    elif images is not None:
        rng = np.random.default_rng()
        context["index_a"], context["index_b"] = (int(rng.integers(images.n_images)) for _ in "ab")
    if z0 and z1:
        try:
            a = parse_latents(z0, ckpt, settings, "z0")
            b = parse_latents(z1, ckpt, settings, "z1")
        except InferenceError as e:
            context["error"] = str(e)
        else:
            context["strips"] = _strip_context(ckpt, _fmt(a), _fmt(b), context["steps"], label)
    elif isinstance(images, TestImages):  # open on the default ends' path
        ends = [context["index_a"], context["index_b"]]
        context.update(_encoded_ends(ckpt, images, ends, context["steps"], label))
    return templates.TemplateResponse(request, "interpolate.html", context)


def _first_of_class(images: TestImages, label: int) -> int:
    """The first test image of class `label`; the first image where the split has none."""
    if not 0 <= label < len(images.label_names):
        return 0
    members = images.of_class(label)
    return int(members[0]) if len(members) else 0


def _encoded_ends(
    ckpt: ServedModel, images: DatasetImages, indices: list[int], steps: int, label: int | None
) -> dict[str, Any]:
    """The strips between the μ of two dataset images (a CVAE's class: `label`, else image
    A's own), with the images and what they are."""
    if ckpt.description.kind != "cvae":
        label = None
    elif label is None or not 0 <= label < ckpt.description.n_labels:
        label = images.label(indices[0])
    ends = [torch.from_numpy(images.image(i)) for i in indices]
    enc = inference.encode_images(ckpt, torch.stack(ends), label)
    return {
        "label": label,
        "strips": _strip_context(ckpt, _fmt(enc.mu[0]), _fmt(enc.mu[1]), steps, label),
        "inputs": [data_url(imaging.png_bytes(x)) for x in ends],
        "captions": [_caption(images, i) for i in indices],
    }


def _caption(images: DatasetImages, index: int) -> str:
    return f"{images.noun} {index:,}: {images.describe(index)}"


def _fmt(z: torch.Tensor) -> str:
    return ",".join(f"{v:.3f}" for v in z.tolist())


async def _end(
    ckpt: ServedModel, settings: Settings, upload: UploadFile | None, index: int | None,
    which: str, of_class: str | None = None, nth: int | None = None, fit: bool = False,
    data: DataPick | None = None,
) -> tuple[torch.Tensor, str, int | None, dict[str, object] | None]:  # fmt: skip
    """One end of the path as the image the model sees, what it is, its class (None for an
    upload) and, for an upload fitted or not, how (app.imaging.load_upload's notes): the upload
    if one was given, fitted to the data's form if `fit` (app.photo_fit), else the dataset image
    `index` (of the data set `data` names, where it names one), or for a test split the `nth`
    (from 0) test image of class `of_class` where one is named."""
    if upload is not None and upload.filename:
        uploaded = await upload_bytes(upload, settings, f"image {which}")
        try:
            loaded, about = upload_image(ckpt, uploaded, settings, fit)
        except ImageInputError as e:
            raise ImageInputError(f"image {which}: {e}") from None
        notes = {**about["notes"], "fitted": about["fitted"]}
        return loaded, f"your upload ({upload.filename})", None, notes
    images = images_of(ckpt, settings, data)
    if images is None:
        raise InferenceError(f"image {which}: {ckpt.name} has no dataset images; upload a file")
    label = picked_class(images, of_class, f"image {which}: class")
    if label is not None and isinstance(images, TestImages):
        index = nth_of_class(images, label, nth or 0, f"image {which}")
    if index is None:
        raise InferenceError(f"image {which}: upload a file or give a dataset index")
    x = dataset_tensor(images, index, f"image {which}")
    return x, _caption(images, index), own_class(ckpt, images, index), None


@router.post("/ui/{name}/interpolate", response_class=HTMLResponse)
async def interpolate_partial(
    request: Request, model: ModelDep, settings: SettingsDep, templates: TemplatesDep,
    data: DataDep, steps: Annotated[int, Form()] = 8,
    file_a: UploadFile | None = None, file_b: UploadFile | None = None,
    index_a: Annotated[int | None, Form()] = None, index_b: Annotated[int | None, Form()] = None,
    class_a: Annotated[str | None, Form()] = None, class_b: Annotated[str | None, Form()] = None,
    nth_a: Annotated[int | None, Form()] = None, nth_b: Annotated[int | None, Form()] = None,
    label: Annotated[int | None, Form()] = None, fit: Annotated[bool, Form()] = False,
) -> HTMLResponse:  # fmt: skip
    """htmx: encode both ends and show the strips; the URL is replaced so it can be shared. Each
    end is the upload if one was given (fitted to the data's form if `fit`: the page's
    checkbox, which a browser leaves out when unticked, so absent means off), else for a test
    split the nth test image of the class named (class_a, nth_a), else the dataset image
    index_a."""
    context: dict[str, Any] = {"model": model_summary(model), "strips": None, "error": None}
    try:
        if not 2 <= steps <= settings.max_interpolate_steps:
            raise InferenceError(
                f"steps must be in 2..{settings.max_interpolate_steps}, got {steps}"
            )
        (a, caption_a, own_a, notes_a), (b, caption_b, _, notes_b) = [
            await _end(model, settings, file_a, index_a, "A", class_a, nth_a, fit, data),
            await _end(model, settings, file_b, index_b, "B", class_b, nth_b, fit, data),
        ]
        if model.description.kind != "cvae":
            label = None
        elif label is None:
            label = own_a  # image A's own class (class 0 for an upload, as the encoder's default)
        ends = [a, b]
        enc = inference.encode_images(model, torch.stack(ends), label)
    except (ImageInputError, InferenceError, UploadTooLargeError) as e:
        context["error"] = str(e)
        return templates.TemplateResponse(
            request, "partials/interpolate.html", context, status_code=422
        )
    z0, z1 = _fmt(enc.mu[0]), _fmt(enc.mu[1])
    context["strips"] = _strip_context(model, z0, z1, steps, label)
    context["inputs"] = [data_url(imaging.png_bytes(x)) for x in ends]
    context["captions"] = [caption_a, caption_b]
    context["notes"] = [notes_a, notes_b]
    query = {"model": model.name, "z0": z0, "z1": z1, "steps": steps, **data.query}
    if label is not None:
        query["label"] = label
    response = templates.TemplateResponse(request, "partials/interpolate.html", context)
    response.headers["HX-Replace-Url"] = f"/interpolate?{urlencode(query)}"
    return response
