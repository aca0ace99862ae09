"""/compare: two models side by side, driven one of two ways.

*One z* (templates/compare.html): one set of sliders, the same z decoded by both; it needs two
flat latents of the same size. *One image* (templates/compare_image.html): the same picture (a
dataset image of either model, or an upload) encoded by each model, fitted to its input, and
each model its own explorer beside the other: its own sliders, traversal and KL bars (a spatial
latent its channel sliders), under each its reconstruction and −ELBO terms; their metrics and
Figure 2 below. Any two served models compare by image; the page never swaps a model the person
chose for another, and says in one line why one z cannot drive a pair that it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import numpy as np
import torch
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app import imaging, inference
from app.checkpoints.served import ServedModel
from app.inference import DatasetImages, InferenceError
from app.quoting import quoted
from app.settings import Settings
from app.web import api
from app.web.deps import DataPick, DataSetsDep, RegistryDep, SettingsDep, TemplatesDep, latent_limit
from app.web.errors import NotFoundError
from app.web.inputs import dataset_images, dataset_tensor, own_class, random_index
from app.web.pages import encode_context, initial_z, page_label, traverse_span, z_text
from app.web.sliders import landing_start, shared_ranges, slider_ranges, slider_rows
from app.web.spatial import spatial_context
from app.web.summaries import model_summary

router = APIRouter(tags=["pages"], include_in_schema=False)

By = Literal["z", "image"]
SIDES = ("a", "b")


def one_z_refusal(ca: ServedModel, cb: ServedModel) -> str | None:
    """Why one set of sliders cannot drive both models (None where it can)."""
    for c in (ca, cb):
        if c.description.spatial:
            ch, h, w = c.description.latent_shape
            return (
                f"{c.name}'s latent is {ch} channels over {h}×{w} cells, not one slider per "
                "latent: one z cannot drive both"
            )
    da, db = ca.description.latent_dim, cb.description.latent_dim
    if da != db:
        return f"{ca.name} has {da} latents and {cb.name} has {db}: one z cannot drive both"
    return None


@router.get("/compare", response_class=HTMLResponse, response_model=None)
def compare(
    request: Request, registry: RegistryDep, templates: TemplatesDep, settings: SettingsDep,
    sets: DataSetsDep, a: str | None = None, b: str | None = None, by: By | None = None,
    z: str | None = None, label: int | None = None, sample: str | None = None,
    source: str | None = None, index: Annotated[int | None, Query(ge=0)] = None,
    za: str | None = None, zb: str | None = None, labela: int | None = None,
    labelb: int | None = None,
) -> HTMLResponse | RedirectResponse:  # fmt: skip
    """Two models side by side (default: β=1 vs β=4), by one z where both take it, else by one
    image. `source` and `index` name the image (model `source`'s dataset image `index`); `za`,
    `zb` (and a CVAE's `labela`, `labelb`) each model's own z when compared by image."""
    if not registry:
        return templates.TemplateResponse(request, "empty.html", {}, status_code=503)
    names = list(registry)
    default_a = "dsprites-vae" if "dsprites-vae" in registry else names[0]
    default_b = "dsprites-beta-vae" if "dsprites-beta-vae" in registry else names[-1]
    warnings = []
    unknown = [n for n in (a, b) if n is not None and n not in registry]
    if unknown:
        warnings.append(f"unknown model {quoted(unknown[0])}; showing the defaults")
    ca = registry[a if a is not None and a in registry else default_a]
    cb = registry[b if b is not None and b in registry else default_b]
    refusal = one_z_refusal(ca, cb)
    if by == "z" and refusal is not None:
        warnings.append(f"{refusal}; compared by one image instead")
    if refusal is not None or by == "image":
        state = {"a": (za, labela), "b": (zb, labelb)}
        context = _by_image(ca, cb, settings, DataPick(sets), source, index, state)
        context["warnings"] = warnings + context["warnings"]
        context["refusal"] = refusal
        context["models"] = [model_summary(c) for c in registry.values()]
        return templates.TemplateResponse(request, "compare_image.html", context)
    ranges = shared_ranges([ca, cb], min(latent_limit(c, settings) for c in (ca, cb)))
    if sample is not None:
        # a fresh z from the left model's prior, within the sliders, then a redirect so the URL
        # names it (bookmarkable)
        seed = int(np.random.default_rng().integers(2**31))
        drawn = inference.sample_model_prior(ca, 1, seed)[0].tolist()
        drawn = [r.clamp(v) for r, v in zip(ranges, drawn, strict=True)]
        params = {"a": ca.name, "b": cb.name, "z": z_text(drawn)}
        return RedirectResponse(f"/compare?{urlencode(params)}", status_code=303)
    if z:
        values, z_warning = initial_z(ca, z, settings, ranges)
        if z_warning:
            warnings.append(z_warning)
    else:  # both models decode the left one's code of the same dataset image
        start = landing_start(ca, settings)
        values = [r.clamp(v) for r, v in zip(ranges, start.z, strict=True)]
    labelled = next((c for c in (ca, cb) if c.description.kind == "cvae"), None)
    label = page_label(labelled, label)
    context = {
        "models": [model_summary(c) for c in registry.values()],
        "a": model_summary(ca),
        "b": model_summary(cb),
        "labelled": model_summary(labelled) if labelled else None,
        "rows": slider_rows([ca, cb], values, ranges),
        "z": z_text(values),
        "label": label,
        "span": traverse_span(ranges),
        "warning": "; ".join(warnings) or None,
    }
    return templates.TemplateResponse(request, "compare.html", context)


@dataclass(frozen=True)
class Picture:
    """The image both models encode: model `source`'s dataset image `index`, read once."""

    source: ServedModel
    images: DatasetImages  # the source model's dataset images
    index: int
    x: torch.Tensor  # (C, H, W) in [0, 1], as the source model sees it

    @classmethod
    def of(cls, source: ServedModel, images: DatasetImages, index: int) -> Picture:
        return cls(source, images, index, dataset_tensor(images, index))

    @property
    def text(self) -> str:
        """What it is ("dSprites image 1,234: ellipse, scale 3/6, ...")."""
        return f"{self.images.noun} {self.index:,}: {self.images.describe(self.index)}"


def _picture(
    ca: ServedModel, cb: ServedModel, settings: Settings, source: str | None, index: int | None
) -> tuple[Picture | None, list[str]]:
    """The URL's image where it names one that exists, else the first model with dataset
    images' typical one (as its explore page starts); None where neither has any."""
    warnings: list[str] = []
    with_images = []
    for c in (ca, cb):
        try:
            with_images.append((c, dataset_images(c, settings)))
        except (InferenceError, NotFoundError):
            continue  # no images to draw here (an image folder, a plugin, not installed)
    if not with_images:
        return None, warnings
    chosen = next(((c, im) for c, im in with_images if c.name == source), None)
    if source is not None and chosen is None:
        warnings.append(f"{quoted(source)} is not one of the two models with dataset images here")
    c, images = chosen or with_images[0]
    if index is not None and not 0 <= index < images.n_images:
        warnings.append(f"index {index} is past {images.name}'s {images.n_images:,} images")
        index = None
    if index is None:
        index = settings.landing_image
        if index is None or not 0 <= index < images.n_images:
            index = images.default_index
    return Picture.of(c, images, index), warnings


def encode_picture(
    model: ServedModel, picture: Picture, label: int | None = None
) -> dict[str, Any]:
    """`model`'s encoding of the picture, fitted to its input as an upload is (the source
    model's own dataset image exactly); a CVAE's label is the image's own class where the image
    is of its dataset, else `label` (else its first class)."""
    images, x = picture.images, picture.x
    d = model.description
    fitted = imaging.fit_image(x, d.image_size, d.channels)
    if d.kind == "cvae":
        own = own_class(model, images, picture.index) if model is picture.source else None
        label = own if own is not None else (label if label is not None else 0)
    else:
        label = None
    what = picture.text
    if fitted is not x:
        ch = {1: "grey", 3: "colour"}
        what += (
            f", fitted from {x.shape[-1]}×{x.shape[-2]} {ch[x.shape[0]]} to "
            f"{d.image_size}×{d.image_size} {ch[d.channels]}"
        )
    return {
        **api.encoding_json(model, fitted, label),
        "index": picture.index,
        "source": picture.source.name,
        "picture": what,
        "label": label,
    }


def _by_image(
    ca: ServedModel, cb: ServedModel, settings: Settings, data: DataPick,
    source: str | None, index: int | None, state: dict[str, tuple[str | None, int | None]],
) -> dict[str, Any]:  # fmt: skip
    """templates/compare_image.html's context: the picture and, per model, its explorer
    started from its encoding of the picture (or the URL's z for it), with the encoding."""
    picture, warnings = _picture(ca, cb, settings, source, index)
    # each model's summary with its dataset images (read once: the panel and the picker use it)
    summaries = [model_summary(c, settings) for c in (ca, cb)]
    panels = []
    for side, c, summary in zip(SIDES, (ca, cb), summaries, strict=True):
        result, error = None, None
        if picture is not None:
            try:
                result = encode_picture(c, picture)
            except InferenceError as e:
                error = str(e)
        start = result["mu"] if result is not None else [0.0] * c.description.latent_dim
        z, label = state[side]
        panel = _panel(side, c, summary, settings, data, z, label, start, result, error, warnings)
        panels.append(panel)
    sources = [
        {"name": s["name"], "images": s["dataset_images"], "set": s["dataset_name"]}
        for s in summaries
        if s["dataset_images"]
    ]
    return {
        "a": model_summary(ca),
        "b": model_summary(cb),
        "panels": panels,
        "image": picture,
        "sources": sources,
        "scored_alike": _scored_alike(ca, cb),
        "warnings": warnings,
    }


def _panel(
    side: str, c: ServedModel, summary: dict[str, Any], settings: Settings, data: DataPick,
    z: str | None,
    label: int | None, start: list[float], result: dict[str, Any] | None, error: str | None,
    warnings: list[str],
) -> dict[str, Any]:  # fmt: skip
    """One model's explorer on the page: a spatial one's channel explorer, or sliders of its
    own over its own ranges, from the URL's z and label for it where given, else from its
    encoding of the picture."""
    prefix = f"{side}-"
    encoding = encode_context(c, result, error)
    if z is None and result is not None:
        label = result["label"]
    label = page_label(_cvae(c), label)
    if c.description.spatial:
        values = z_text(start)
        context = spatial_context(c, settings, data, z or values)
        if context["warning"]:
            warnings.append(f"{c.name}: {context['warning']}")
        return {**context, "side": side, "prefix": prefix, "spatial": True, "encoding": encoding}
    ranges = slider_ranges(c)
    if z:
        values_list, z_warning = initial_z(c, z, settings, ranges)
        if z_warning:
            warnings.append(f"{c.name}: {z_warning}")
    else:
        values_list = [r.clamp(round(v, 2)) for r, v in zip(ranges, start, strict=True)]
    return {
        "side": side,
        "prefix": prefix,
        "spatial": False,
        "model": summary,
        "rows": slider_rows([c], values_list, ranges),
        "z": z_text(values_list),
        "label": label,
        "span": traverse_span(ranges),
        "encoding": encoding,
    }


def _cvae(c: ServedModel) -> ServedModel | None:
    return c if c.description.kind == "cvae" else None


def _scored_alike(ca: ServedModel, cb: ServedModel) -> str | None:
    """Why the two −ELBOs cannot be set against each other, where they cannot: nats over
    different pixels or under different likelihoods (None where they can)."""
    da, db = ca.description, cb.description

    def scored(d: Any) -> str:
        pixels = f"{d.image_size}×{d.image_size} {'grey' if d.channels == 1 else 'colour'}"
        like = "Bernoulli" if d.likelihood == "bernoulli" else f"Gaussian σ = {d.gaussian_sigma:g}"
        return f"{pixels} pixels under a {like}"

    if scored(da) == scored(db):
        return None
    return (
        f"the −ELBOs are not comparable: {ca.name} scores {scored(da)}, {cb.name} "
        f"{scored(db)}; compare the reconstructions"
    )


@router.get("/ui/{name}/encode-picture", response_class=HTMLResponse)
def encode_picture_partial(
    request: Request, name: str, registry: RegistryDep, templates: TemplatesDep,
    settings: SettingsDep, source: str, index: Annotated[int | None, Query(ge=0)] = None,
    label: int | None = None,
) -> HTMLResponse:  # fmt: skip
    """htmx: model `name`'s encoding of model `source`'s dataset image `index` (a random one
    when none is given), fitted to its input: /compare by one image asks each model for it."""
    if name not in registry:
        raise NotFoundError(f"unknown model {quoted(name)}")
    model = registry[name]
    error, result = None, None
    try:
        if source not in registry:
            raise InferenceError(f"unknown model {quoted(source)} to take the image from")
        images = dataset_images(registry[source], settings)
        if index is None:
            index = random_index(images, np.random.default_rng(), None, None)
        # Picture.of reads the image: an index past the set is an error naming its range
        result = encode_picture(model, Picture.of(registry[source], images, index), label)
    except (InferenceError, NotFoundError) as e:
        error = str(e)
    context = encode_context(model, result, error)
    status = 200 if error is None else 422
    return templates.TemplateResponse(request, "partials/encode.html", context, status_code=status)
