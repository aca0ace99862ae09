"""The interpolate view: two images (uploaded or from the dataset) → encoded → a strip of N steps,
linear and spherical, an animated playback, PNG and GIF downloads."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import numpy as np
import torch
from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse

from app import imaging, inference
from app.data.ground_truth import ground_truth
from app.imaging import ImageInputError
from app.inference import InferenceError, ground_truth_of
from app.models.interface import ServedModel
from app.settings import Settings
from app.web import api
from app.web.deps import ModelDep, RegistryDep, SettingsDep, TemplatesDep
from app.web.errors import UploadTooLargeError

router = APIRouter(tags=["pages"], include_in_schema=False)


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
    model: str | None = None, z0: str | None = None, z1: str | None = None, steps: int = 8,
    label: int | None = None,
) -> HTMLResponse:  # fmt: skip
    """Pick two images; the URL (model, z0, z1, steps) restores the strips it shows."""
    if not registry:
        return templates.TemplateResponse(request, "empty.html", {}, status_code=503)
    name = model if model is not None and model in registry else next(iter(registry))
    ckpt = registry[name]
    truth = ground_truth_of(ckpt)
    rng = np.random.default_rng()
    context: dict[str, Any] = {
        "models": [api.model_summary(c) for c in registry.values()],
        "model": api.model_summary(ckpt),
        "steps": min(max(steps, 2), settings.max_interpolate_steps),
        "max_steps": settings.max_interpolate_steps,
        "index_a": int(rng.integers(truth.n_images)) if truth else None,
        "index_b": int(rng.integers(truth.n_images)) if truth else None,
        "strips": None,
        "error": None,
    }
    if z0 and z1:
        try:
            a = api.parse_latents(z0, ckpt, settings, "z0")
            b = api.parse_latents(z1, ckpt, settings, "z1")
        except InferenceError as e:
            context["error"] = str(e)
        else:
            context["strips"] = _strip_context(ckpt, _fmt(a), _fmt(b), context["steps"], label)
    return templates.TemplateResponse(request, "interpolate.html", context)


def _fmt(z: torch.Tensor) -> str:
    return ",".join(f"{v:.3f}" for v in z.tolist())


async def _end(
    ckpt: ServedModel, settings: Settings, upload: UploadFile | None, index: int | None, which: str
) -> torch.Tensor:
    """One end of the path as the image the model sees: the upload if one was given, else the
    dSprites image `index`."""
    cfg = ckpt.description
    if upload is not None and upload.filename:
        data = await upload.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise UploadTooLargeError(
                f"image {which} is larger than the upload limit of "
                f"{settings.max_upload_bytes:,} bytes"
            )
        try:
            return imaging.load_upload(
                data, cfg.image_size, cfg.channels, settings.max_upload_pixels
            )[0]
        except ImageInputError as e:
            raise ImageInputError(f"image {which}: {e}") from None
    if index is None:
        raise InferenceError(f"image {which}: upload a file or give a dataset index")
    truth = ground_truth(cfg.dataset, cfg.shape)
    if truth is None:
        raise InferenceError(f"image {which}: {ckpt.name} has no dataset images; upload a file")
    return api.dataset_tensor(truth, index, f"image {which}")


@router.post("/ui/{name}/interpolate", response_class=HTMLResponse)
async def interpolate_partial(
    request: Request, model: ModelDep, settings: SettingsDep, templates: TemplatesDep,
    steps: Annotated[int, Form()] = 8,
    file_a: UploadFile | None = None, file_b: UploadFile | None = None,
    index_a: Annotated[int | None, Form()] = None, index_b: Annotated[int | None, Form()] = None,
    label: Annotated[int | None, Form()] = None,
) -> HTMLResponse:  # fmt: skip
    """htmx: encode both ends and show the strips; the URL is replaced so it can be shared."""
    context: dict[str, Any] = {"model": api.model_summary(model), "strips": None, "error": None}
    try:
        if not 2 <= steps <= settings.max_interpolate_steps:
            raise InferenceError(
                f"steps must be in 2..{settings.max_interpolate_steps}, got {steps}"
            )
        ends = [await _end(model, settings, file_a, index_a, "A"),
                await _end(model, settings, file_b, index_b, "B")]  # fmt: skip
        if model.description.kind != "cvae":
            label = None
        enc = inference.encode_images(model, torch.stack(ends), label)
    except (ImageInputError, InferenceError, UploadTooLargeError) as e:
        context["error"] = str(e)
        return templates.TemplateResponse(
            request, "partials/interpolate.html", context, status_code=422
        )
    z0, z1 = _fmt(enc.mu[0]), _fmt(enc.mu[1])
    context["strips"] = _strip_context(model, z0, z1, steps, label)
    context["inputs"] = [api.data_url(imaging.png_bytes(x)) for x in ends]
    query = {"model": model.name, "z0": z0, "z1": z1, "steps": steps}
    if label is not None:
        query["label"] = label
    response = templates.TemplateResponse(request, "partials/interpolate.html", context)
    response.headers["HX-Replace-Url"] = f"/interpolate?{urlencode(query)}"
    return response
