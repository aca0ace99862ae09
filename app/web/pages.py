"""HTML pages and the htmx partials they swap in. The same partial renders from the page and
from the endpoint htmx calls; the page state (model, z, label) lives in the URL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse

from app import inference
from app.checkpoints.served import ServedModel
from app.imaging import ImageInputError
from app.inference import InferenceError
from app.photo_fit import form_of
from app.quoting import quoted
from app.settings import Settings
from app.studies.latent_map import METHODS as MAP_METHODS
from app.web import api, cards
from app.web.datasets import data_query, own_images, picker
from app.web.deps import DataDep, ModelDep, RegistryDep, SettingsDep, TemplatesDep
from app.web.directions import direction_choices
from app.web.errors import NotFoundError, UploadTooLargeError
from app.web.inputs import dataset_images, images_of, parse_latents, random_index
from app.web.sliders import (
    SliderRange,
    landing_model,
    landing_start,
    slider_ranges,
    slider_rows,
)
from app.web.spatial import spatial_context
from app.web.summaries import model_summary

router = APIRouter(tags=["pages"], include_in_schema=False)


def initial_z(
    ckpt: ServedModel, z: str, settings: Settings, ranges: list[SliderRange]
) -> tuple[list[float], str | None]:
    """The URL's z, each value held to its slider's range."""
    try:
        values = parse_latents(z, ckpt, settings).tolist()
    except InferenceError as e:
        return [0.0] * ckpt.description.latent_dim, f"{e}; started from z = 0 instead"
    return [r.clamp(v) for r, v in zip(ranges, values, strict=True)], None


def z_text(values: list[float]) -> str:
    return ",".join(f"{v:.2f}" for v in values)


def page_label(cvae: ServedModel | None, label: int | None) -> int | None:
    """The class a page decodes with: the URL's if the CVAE has it, else its first; none
    without a CVAE on the page."""
    if cvae is None:
        return None
    return label if label is not None and 0 <= label < cvae.description.n_labels else 0


@router.get("/", response_class=HTMLResponse)
def explore(
    request: Request, registry: RegistryDep, templates: TemplatesDep, settings: SettingsDep,
    data: DataDep, model: str | None = None, z: str | None = None, label: int | None = None,
) -> HTMLResponse:  # fmt: skip
    """Explore one model: a slider per latent, the decoded image, its traversal grid. Without a
    z in the URL the page starts from a dataset image, encoded, so the first picture is a
    sprite and moving a used latent changes it. `data` names the data set whose images the
    page starts from and encodes (default: the model's own)."""
    if not registry:
        return templates.TemplateResponse(request, "empty.html", {}, status_code=503)
    name = model if model is not None and model in registry else landing_model(registry, settings)
    ckpt = registry[name]
    if ckpt.description.spatial:  # channels over a grid: sliders per channel over a region
        context = spatial_context(ckpt, settings, data, z)
        context["models"] = [model_summary(c) for c in registry.values()]
        return templates.TemplateResponse(request, "spatial.html", context)
    ranges = slider_ranges(ckpt)
    start = None
    if z:
        values, warning = initial_z(ckpt, z, settings, ranges)
    else:
        start = landing_start(ckpt, settings, data)
        values, warning = start.z, None
        if label is None:
            label = start.label
    if model is not None and model not in registry:
        warning = f"unknown model {quoted(model)}; showing {name}"
    label = page_label(ckpt if ckpt.description.kind == "cvae" else None, label)
    state = {"model": name, "z": z_text(values), "label": label}
    context = {
        "models": [model_summary(c) for c in registry.values()],
        "model": model_summary(ckpt, settings, data),
        "picker": picker(data, "/", state, own_images(ckpt)),
        "data_query": data_query(data),
        "url_params": urlencode({"model": name, **data.query}),
        "rows": slider_rows([ckpt], values, ranges),
        "ae_vs_vae": _ae_vs_vae(registry, ckpt),
        "partner": _partner(registry, ckpt),
        "start": start,
        "z": z_text(values),
        "label": label,
        "span": traverse_span(ranges),
        "warning": warning,
        "photo_form": form_of(ckpt.description.dataset),
        "directions": direction_choices(ckpt, settings, data),
    }
    return templates.TemplateResponse(request, "explore.html", context)


MAP_SIZES = (1_000, 2_000, 5_000, 10_000, 20_000)
MAP_LAYOUTS = {  # the layout picker's words for each method
    "pca": "PCA (exact, instant)",
    "tsne": "t-SNE (computed in the background)",
    "umap": "UMAP (computed in the background)",
}


@router.get("/map", response_class=HTMLResponse, name="latent_map")
def latent_map(
    request: Request, registry: RegistryDep, templates: TemplatesDep, settings: SettingsDep,
    data: DataDep, model: str | None = None, method: str = "pca", n: int | None = None,
    colour: str | None = None, z: str | None = None, label: int | None = None,
    split: str | None = None,
) -> HTMLResponse:  # fmt: skip
    """The latent map beside the explorer: the encoder means of n held-out images laid out by
    PCA or t-SNE (static/map.js draws GET /api/models/{name}/map.bin), coloured by a factor,
    class or latent; a point clicked loads its μ into the sliders, and the current z is marked.
    `data` names a served data set to map instead of the model's own images (every column of
    the set to colour by; its test split's images where it has one, or with `split=all`
    every split's, up to the binary map's limit)."""
    if not registry:
        return templates.TemplateResponse(request, "empty.html", {}, status_code=503)
    name = model if model is not None and model in registry else landing_model(registry, settings)
    ckpt = registry[name]
    warnings = []
    if model is not None and model not in registry:
        warnings.append(f"unknown model {quoted(model)}; showing {name}")
    if method not in MAP_METHODS:
        known = ", ".join(MAP_METHODS[:-1]) + f" or {MAP_METHODS[-1]}"
        warnings.append(f"unknown method {quoted(method)} ({known}); showing PCA")
        method = "pca"
    summary = model_summary(ckpt, settings, data)
    limit = settings.max_map_points
    all_images = None  # a data set's images: the binary map holds all of them, "all N"
    splits: list[tuple[str, str]] = []  # a set with a test split: (value, words) to choose
    whole = False
    if summary["dataset_split"] == "test" and summary["dataset_images"]:
        limit = min(limit, summary["dataset_images"])  # a test split holds no more
    else:
        try:
            images = images_of(ckpt, settings, data)
        except InferenceError:  # not installed: the map itself says so
            images = None
        if isinstance(images, inference.SetImages):
            if 0 < images.test_images < images.n_images:
                whole = split == "all"
                splits = [("test", f"test split ({images.test_images:,})"),
                          ("all", f"every split ({images.n_images:,})")]  # fmt: skip
            # the set's test split, or all of it; the binary map holds up to its own limit
            mapped = images.mapped_images(whole)
            limit = min(settings.max_binary_map_points, mapped)
            all_images = mapped if mapped <= limit else None
    offered_all = [all_images] if all_images else []
    if n is None:
        n = min(5_000, limit)
    elif not 2 <= n <= limit:
        n = min(5_000, limit)
        warnings.append(f"a map of {name} holds 2 to {limit:,} points; showing {n:,}")
    ranges = slider_ranges(ckpt)
    if z:
        values, z_warning = initial_z(ckpt, z, settings, ranges)
        warnings += [z_warning] if z_warning else []
    else:
        start = landing_start(ckpt, settings)
        values = start.z
        if label is None:
            label = start.label
    label = page_label(ckpt if ckpt.description.kind == "cvae" else None, label)
    params = {"model": name, "method": method, "n": n} | ({"colour": colour} if colour else {})
    params |= data.query | ({"split": "all"} if whole else {})
    state = {"model": name, "method": method, "n": n, "colour": colour, "z": z, "label": label}
    context = {
        "picker": picker(data, "/map", state, own_images(ckpt)),
        "data_query": data_query(data),
        "map_query": data_query(data) + ("&split=all" if whole else ""),
        "splits": splits,
        "split": "all" if whole else "test",
        "models": [model_summary(c) for c in registry.values()],
        "model": summary,
        "rows": slider_rows([ckpt], values, ranges),
        "z": z_text(values),
        "label": label,
        "method": method,
        "layouts": [(m, MAP_LAYOUTS.get(m, m)) for m in MAP_METHODS],
        "n": n,
        "sizes": sorted({*(s for s in MAP_SIZES if s <= limit), n, *offered_all}),
        "all_images": all_images,
        "colour": colour or "",
        "url_params": urlencode(params),
        "warning": "; ".join(warnings) or None,
        "directions": direction_choices(ckpt, settings, data),
    }
    return templates.TemplateResponse(request, "map.html", context)


def traverse_span(ranges: list[SliderRange]) -> float:
    """The traversal grid sweeps ±span: the prior's ±3, or an AE's widest code within the
    traversal's limit of ±10."""
    return min(10.0, max(max(abs(r.lo), abs(r.hi)) for r in ranges))


def _partner(registry: Mapping[str, ServedModel], ckpt: ServedModel) -> str | None:
    """The model the landing line suggests comparing this one with: a plain β=1 VAE of the same
    data and latent size (the entangled counterpart), or for that VAE itself the disentangled
    model `/` opens on."""
    cfg = ckpt.description

    def comparable(c: ServedModel) -> bool:
        return c.name != ckpt.name and (c.description.dataset, c.description.latent_dim) == (
            cfg.dataset, cfg.latent_dim,
        )  # fmt: skip

    plain = [n for n, c in _own_first(registry) if comparable(c) and _plain_vae(c)]
    if plain and not _plain_vae(ckpt):
        return plain[0]
    disentangled = [
        n for n, c in _own_first(registry) if comparable(c) and (c.description.beta or 0) > 1.0
    ]
    return disentangled[0] if disentangled else None


def _plain_vae(c: ServedModel) -> bool:
    d = c.description
    return d.kind == "vae" and d.beta == 1.0 and d.objective == "beta"


def _own_first(registry: Mapping[str, ServedModel]) -> list[tuple[str, ServedModel]]:
    """The served models, those trained here before those made elsewhere (imported or plugged
    in: their card names a source), each group in name order."""
    return sorted(registry.items(), key=lambda item: (item[1].card.source is not None, item[0]))


def _ae_vs_vae(
    registry: Mapping[str, ServedModel], current: ServedModel | None = None
) -> tuple[str, str] | None:
    """The seed lecture's point in one click: a random z is garbage to an AE, a sprite to a VAE.
    The model on the page stays in the pair where it can be one side of it (an AE, or a VAE with
    an AE of its latent count and data set beside it); else the first AE and a plain VAE of its
    latent count."""
    models = [c for _, c in _own_first(registry)]

    def partner(of: ServedModel, kind: str) -> ServedModel | None:
        d = of.description
        same = [
            c for c in models
            if c.description.kind == kind and c.description.latent_dim == d.latent_dim
            and not c.description.spatial
        ]  # fmt: skip
        same.sort(key=lambda c: c.description.dataset != d.dataset)  # its own data first
        plain = [c for c in same if _plain_vae(c)] if kind == "vae" else []
        chosen = plain or same
        return chosen[0] if chosen else None

    if current is not None and not current.description.spatial:
        if current.description.kind == "ae" and (vae := partner(current, "vae")) is not None:
            return current.name, vae.name
        if current.description.kind == "vae" and (ae := partner(current, "ae")) is not None:
            return ae.name, current.name
    ae = next((c for c in models if c.description.kind == "ae"), None)
    vae = partner(ae, "vae") if ae is not None else None
    return (ae.name, vae.name) if ae is not None and vae is not None else None


@router.get("/models/{name}", response_class=HTMLResponse)
def model_card(
    request: Request, model: ModelDep, registry: RegistryDep, templates: TemplatesDep
) -> HTMLResponse:
    """A model's card as a person reads it: recipe, where each segment of training ran, metrics
    with their settings, KL per latent, provenance; the raw card.json is at /api/models/{name}."""
    summary = model_summary(model)
    served = {c.digest: n for n, c in registry.items()}
    dataset = model.description.dataset
    if summary["dataset_name"]:
        dataset = f"{summary['dataset_name']} ({dataset})"
    view = cards.card_view(model, served, dataset)
    return templates.TemplateResponse(request, "card.html", {"m": summary, "c": view})


def encode_context(
    ckpt: ServedModel, result: dict[str, Any] | None, error: str | None
) -> dict[str, Any]:
    """What templates/partials/encode.html shows of an encoding: a row per latent (most KL
    first), or for a spatial latent a row per channel (its cells' KL summed, μ and σ their
    means): a table of thousands of cells would say less."""
    context: dict[str, Any] = {"m": model_summary(ckpt), "r": result, "error": error}
    if result is None:
        return context
    kl = result["elbo"]["kl_per_dim"]
    if ckpt.description.spatial:
        c = ckpt.description.latent_shape[0]
        per = [np.asarray(result[k], dtype=np.float64).reshape(c, -1) for k in ("mu", "sigma")]
        kl_c = np.asarray(kl, dtype=np.float64).reshape(c, -1).sum(axis=1)
        top = max(float(kl_c.max()), 1e-9)
        context["channels"] = [
            {"channel": ch, "mu": float(per[0][ch].mean()), "sigma": float(per[1][ch].mean()),
             "kl": float(kl_c[ch]), "bar": round(100 * float(kl_c[ch]) / top)}
            for ch in range(c)
        ]  # fmt: skip
        return context
    top = max(max(kl), 1e-9)
    context["latents"] = [
        {"dim": d, "mu": result["mu"][d], "sigma": result["sigma"][d], "kl": kl[d],
         "bar": round(100 * kl[d] / top)}
        for d in inference.latent_order(ckpt)
    ]  # fmt: skip
    return context


def _encode_partial(
    request: Request,
    templates: TemplatesDep,
    ckpt: ServedModel,
    result: dict[str, Any] | None,
    error: str | None,
) -> HTMLResponse:
    status = 200 if error is None else 422
    context = encode_context(ckpt, result, error)
    return templates.TemplateResponse(request, "partials/encode.html", context, status_code=status)


@router.post("/ui/{name}/encode", response_class=HTMLResponse)
async def encode_upload_partial(
    request: Request, model: ModelDep, settings: SettingsDep, templates: TemplatesDep,
    file: Annotated[UploadFile, File()], label: Annotated[int | None, Form()] = None,
    fit: Annotated[bool, Form()] = False,
) -> HTMLResponse:  # fmt: skip
    """htmx: encode an uploaded image and show what the model made of it. `fit` is the page's
    checkbox, which a browser leaves out when unticked: absent here means off."""
    try:
        result = await api.encode_upload(model, settings, file, label, fit=fit)
    except (ImageInputError, InferenceError, UploadTooLargeError) as e:
        return _encode_partial(request, templates, model, None, str(e))
    return _encode_partial(request, templates, model, result, None)


@router.get("/ui/{name}/encode", response_class=HTMLResponse)
def encode_dataset_partial(
    request: Request, model: ModelDep, templates: TemplatesDep, settings: SettingsDep,
    data: DataDep, index: Annotated[int | None, Query(ge=0)] = None, label: int | None = None,
    of_class: Annotated[str | None, Query(alias="class")] = None,
    where: Annotated[str | None, Query(description="column=value: an image with it")] = None,
) -> HTMLResponse:  # fmt: skip
    """htmx: encode a dataset image (a random one when no index is given: of class `class`
    where the model's dataset is a test split and the picker names one, or with a column's
    value, `where`, on a data set), of the data set `data` where one is named."""
    try:
        if index is None:
            images = dataset_images(model, settings, data=data)
            index = random_index(images, np.random.default_rng(), of_class, where)
        result = api.encode_dataset_image(model, settings, index, data, label)
    except (InferenceError, NotFoundError) as e:
        return _encode_partial(request, templates, model, None, str(e))
    return _encode_partial(request, templates, model, result, None)
