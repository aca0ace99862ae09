"""HTML pages and the htmx partials they swap in. The same partial renders from the page and
from the endpoint htmx calls; the page state (model, z, label) lives in the URL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse

from app import inference
from app.checkpoints import Checkpoint
from app.imaging import ImageInputError
from app.inference import InferenceError
from app.web import api, cards
from app.web.deps import ModelDep, RegistryDep, SettingsDep, TemplatesDep
from app.web.errors import NotFoundError, UploadTooLargeError

router = APIRouter(tags=["pages"], include_in_schema=False)

SLIDER_RANGE = 3.0  # sliders span ±3σ of the prior, as the β-VAE paper's traversals do


def _slider_rows(ckpts: list[Checkpoint], z: list[float]) -> list[dict[str, Any]]:
    """One row per latent, in the first model's order (most KL first), with a KL bar per model."""
    per_model = []
    for ckpt in ckpts:
        kl = ckpt.card.get("kl_per_dim") or [None] * ckpt.config.latent_dim
        top = max((k for k in kl if k is not None), default=0.0) or 1.0
        per_model.append([
            {"kl": k, "bar": 0 if k is None else max(2, round(100 * k / top)),
             "active": k is None or k > 0.1}
            for k in kl
        ])  # fmt: skip
    return [
        {"dim": d, "value": z[d], "bars": [bars[d] for bars in per_model],
         "active": any(bars[d]["active"] for bars in per_model)}
        for d in inference.latent_order(ckpts[0])
    ]  # fmt: skip


def _initial_z(ckpt: Checkpoint, z: str | None, settings: Any) -> tuple[list[float], str | None]:
    if not z:
        return [0.0] * ckpt.config.latent_dim, None
    try:
        values = api.parse_latents(z, ckpt, settings).clamp(-SLIDER_RANGE, SLIDER_RANGE)
    except InferenceError as e:
        return [0.0] * ckpt.config.latent_dim, f"{e}; started from z = 0 instead"
    return values.tolist(), None


def _page_label(cvae: Checkpoint | None, label: int | None) -> int | None:
    """The class a page decodes with: the URL's if the CVAE has it, else its first; none
    without a CVAE on the page."""
    if cvae is None:
        return None
    return label if label is not None and 0 <= label < cvae.config.n_labels else 0


@router.get("/", response_class=HTMLResponse)
def explore(
    request: Request, registry: RegistryDep, templates: TemplatesDep, settings: SettingsDep,
    model: str | None = None, z: str | None = None, label: int | None = None,
) -> HTMLResponse:  # fmt: skip
    """Explore one model: a slider per latent, the decoded image, its traversal grid."""
    if not registry:
        return templates.TemplateResponse(request, "empty.html", {}, status_code=503)
    name = model if model is not None and model in registry else next(iter(registry))
    ckpt = registry[name]
    values, warning = _initial_z(ckpt, z, settings)
    if model is not None and model not in registry:
        warning = f"unknown model {model!r}; showing {name}"
    label = _page_label(ckpt if ckpt.config.kind == "cvae" else None, label)
    context = {
        "models": [api.model_summary(c) for c in registry.values()],
        "model": api.model_summary(ckpt),
        "rows": _slider_rows([ckpt], values),
        "ae_vs_vae": _ae_vs_vae(registry),
        "z": ",".join(f"{v:.2f}" for v in values),
        "label": label,
        "range": SLIDER_RANGE,
        "warning": warning,
    }
    return templates.TemplateResponse(request, "explore.html", context)


def _ae_vs_vae(registry: Mapping[str, Checkpoint]) -> tuple[str, str] | None:
    """The seed lecture's point in one click: a random z is garbage to an AE, a sprite to a VAE."""
    ae = next((n for n, c in registry.items() if c.config.kind == "ae"), None)
    vaes = [n for n, c in registry.items() if c.config.kind == "vae"]
    plain = [n for n in vaes if registry[n].config.beta == 1.0]
    if ae is None or not vaes:
        return None
    return ae, (plain or vaes)[0]


@router.get("/compare", response_class=HTMLResponse, response_model=None)
def compare(
    request: Request, registry: RegistryDep, templates: TemplatesDep, settings: SettingsDep,
    a: str | None = None, b: str | None = None, z: str | None = None, label: int | None = None,
    sample: str | None = None,
) -> HTMLResponse | RedirectResponse:  # fmt: skip
    """Two models side by side, one set of sliders driving both (default: β=1 vs β=4)."""
    if len(registry) < 1:
        return templates.TemplateResponse(request, "empty.html", {}, status_code=503)
    names = list(registry)
    default_a = "dsprites-vae" if "dsprites-vae" in registry else names[0]
    default_b = "dsprites-beta-vae" if "dsprites-beta-vae" in registry else names[-1]
    warning = None
    unknown = [n for n in (a, b) if n is not None and n not in registry]
    if unknown:
        warning = f"unknown model {unknown[0]!r}; showing the defaults"
    name_a = a if a is not None and a in registry else default_a
    name_b = b if b is not None and b in registry else default_b
    ca, cb = registry[name_a], registry[name_b]
    if ca.config.latent_dim != cb.config.latent_dim:
        warning = (
            f"{name_a} has {ca.config.latent_dim} latents and {name_b} has "
            f"{cb.config.latent_dim}: one set of sliders cannot drive both"
        )
        name_b, cb = name_a, ca
    if sample is not None:
        # a fresh z from the prior, then a redirect so the URL names it (bookmarkable)
        seed = int(np.random.default_rng().integers(2**31))
        zs = inference.sample_prior(ca.config.latent_dim, 1, seed)[0].clamp(-3, 3)
        params = {"a": name_a, "b": name_b, "z": ",".join(f"{v:.2f}" for v in zs.tolist())}
        return RedirectResponse(f"/compare?{urlencode(params)}", status_code=303)
    values, z_warning = _initial_z(ca, z, settings)
    labelled = next((c for c in (ca, cb) if c.config.kind == "cvae"), None)
    label = _page_label(labelled, label)
    context = {
        "models": [api.model_summary(c) for c in registry.values()],
        "a": api.model_summary(ca),
        "b": api.model_summary(cb),
        "labelled": api.model_summary(labelled) if labelled else None,
        "rows": _slider_rows([ca, cb], values),
        "z": ",".join(f"{v:.2f}" for v in values),
        "label": label,
        "range": SLIDER_RANGE,
        "warning": warning or z_warning,
    }
    return templates.TemplateResponse(request, "compare.html", context)


@router.get("/models/{name}", response_class=HTMLResponse)
def model_card(
    request: Request, model: ModelDep, registry: RegistryDep, templates: TemplatesDep
) -> HTMLResponse:
    """A model's card as a person reads it: recipe, where each segment of training ran, metrics
    with their settings, KL per latent, provenance; the raw card.json is at /api/models/{name}."""
    summary = api.model_summary(model)
    served = {c.digest: n for n, c in registry.items()}
    dataset = model.config.dataset
    if summary["dataset_name"]:
        dataset = f"{summary['dataset_name']} ({dataset})"
    view = cards.card_view(model, served, dataset)
    return templates.TemplateResponse(request, "card.html", {"m": summary, "c": view})


def _encode_partial(
    request: Request,
    templates: TemplatesDep,
    ckpt: Checkpoint,
    result: dict[str, Any] | None,
    error: str | None,
) -> HTMLResponse:
    context: dict[str, Any] = {"m": api.model_summary(ckpt), "r": result, "error": error}
    if result is not None:
        kl = result["elbo"]["kl_per_dim"]
        top = max(max(kl), 1e-9)
        context["latents"] = [
            {"dim": d, "mu": result["mu"][d], "sigma": result["sigma"][d], "kl": kl[d],
             "bar": round(100 * kl[d] / top)}
            for d in inference.latent_order(ckpt)
        ]  # fmt: skip
    status = 200 if error is None else 422
    return templates.TemplateResponse(request, "partials/encode.html", context, status_code=status)


@router.post("/ui/{name}/encode", response_class=HTMLResponse)
async def encode_upload_partial(
    request: Request, model: ModelDep, settings: SettingsDep, templates: TemplatesDep,
    file: Annotated[UploadFile, File()], label: Annotated[int | None, Form()] = None,
) -> HTMLResponse:  # fmt: skip
    """htmx: encode an uploaded image and show what the model made of it."""
    try:
        result = await api.encode_upload(model, settings, file, label)
    except (ImageInputError, InferenceError, UploadTooLargeError) as e:
        return _encode_partial(request, templates, model, None, str(e))
    return _encode_partial(request, templates, model, result, None)


@router.get("/ui/{name}/encode", response_class=HTMLResponse)
def encode_dataset_partial(
    request: Request, model: ModelDep, templates: TemplatesDep,
    index: Annotated[int | None, Query(ge=0)] = None, label: int | None = None,
) -> HTMLResponse:  # fmt: skip
    """htmx: encode a dataset image (a random one when no index is given)."""
    try:
        if index is None:
            index = int(np.random.default_rng().integers(api.dataset_of(model).n_images))
        result = api.encode_dataset_image(model, index, label)
    except (InferenceError, NotFoundError) as e:
        return _encode_partial(request, templates, model, None, str(e))
    return _encode_partial(request, templates, model, result, None)
