"""The β-VAE paper's Figure 2 for a model: two SVG documents under /api, and the htmx fragment
that the compare and card pages load when it scrolls into view (the first computation takes
seconds; the pages never wait for it).

The handlers are plain `def`s, so FastAPI runs them on its thread pool, off the event loop;
`app.studies.figure2.figure2_data` makes concurrent first requests for one model share one
computation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from app import inference
from app.checkpoints.served import ServedModel
from app.inference import DSPRITES, GroundTruth, InferenceError, ground_truth_of
from app.models.elbo import ACTIVE_KL
from app.studies import figure2, figure2_svg
from app.web.deps import ModelDep, TemplatesDep
from app.web.errors import NOT_MODIFIED, NotInModelError
from app.web.responses import cached_image

router = APIRouter(tags=["figure 2"])

SVG = {"content": {"image/svg+xml": {}}, "description": "an SVG document"}
SVG_RESPONSES = {200: SVG, **NOT_MODIFIED}


async def get_sampling() -> figure2.Sampling:
    """How many images the figure averages over (tests override this with fewer)."""
    return figure2.Sampling()


SamplingDep = Annotated[figure2.Sampling, Depends(get_sampling)]


def card_mi_svg(model: ServedModel, truth: GroundTruth) -> Markup | None:
    """The MI heat-map from the metrics in the model's card (None before `evaluate` ran, or if
    they belong to other factors). Columns by mean KL; a factor's entropy is log(its values):
    evaluate draws factor classes uniformly."""
    metrics = model.card.metrics
    if metrics is None:
        return None
    mi = np.asarray(metrics.mi_matrix, dtype=np.float64)
    if metrics.factors != list(truth.factor_names) or mi.shape != (
        model.description.latent_dim,
        len(truth.factor_names),
    ):
        return None
    kl = model.kl or [1.0] * model.description.latent_dim
    active = [k > ACTIVE_KL for k in kl]
    entropy = np.log(np.asarray(truth.factor_sizes, dtype=np.float64))
    mig = metrics.scores.get("mig")
    n = (mig.settings if mig is not None else "").split(" images")[0]
    svg = figure2_svg.mi_matrix_svg(
        mi, entropy, truth.factor_names, truth.factor_sizes, inference.latent_order(model),
        active, f"MI / H(factor), 20-bin μ, {n} images (latent-explorer evaluate)",
        f"Mutual information between {model.name}'s latents and the {truth.name} factors",
        model.description.latent_names,
    )  # fmt: skip
    return Markup(svg)  # our own SVG: every piece of text escaped by app.studies.figure2_svg


# (data, model name, latent names) → SVG text
Render = Callable[[figure2.Figure2Data, str, Sequence[str]], str]

# (figure, weights, name, latent names, sampling) → SVG text: rendering takes ~40 ms (PNG
# tiles), and a registry is read-only, so each document is built once per process
_documents: dict[tuple[str, str, str, tuple[str, ...], figure2.Sampling], str] = {}


def svg_document(ckpt: ServedModel, sampling: figure2.Sampling, render: Render) -> str:
    names = ckpt.description.latent_names
    key = (render.__name__, ckpt.digest, ckpt.name, names, sampling)
    if key not in _documents:
        _documents[key] = render(figure2.figure2_data(ckpt, sampling), ckpt.name, names)
    return _documents[key]


def _svg_response(
    request: Request, model: ServedModel, sampling: figure2.Sampling, render: Render
) -> Response:
    try:  # before anything is computed: a model of other data has no Figure 2, a 404
        figure2.check_dsprites(model)
    except InferenceError as e:
        raise NotInModelError(str(e)) from None
    return cached_image(
        request,
        model,
        (render.__name__, model.name, model.description.latent_names, sampling),
        lambda: svg_document(model, sampling, render).encode(),
        media_type="image/svg+xml",
    )


@router.get("/api/models/{name}/figure2.svg", response_class=Response, responses=SVG_RESPONSES)
def figure2_document(request: Request, model: ModelDep, sampling: SamplingDep) -> Response:
    """Higgins et al. 2017, Figure 2, for a dSprites model: one column per latent, most varied
    first; rows: mean μ over the 32×32 positions, mean μ against scale and against rotation per
    shape (square red, ellipse green, heart blue), a traversal of one dataset image from −3 to
    +3, and the learned variance Var(μ). Unused latents are dimmed."""
    return _svg_response(request, model, sampling, figure2_svg.figure_svg)


@router.get("/api/models/{name}/mi.svg", response_class=Response, responses=SVG_RESPONSES)
def mutual_information_document(
    request: Request, model: ModelDep, sampling: SamplingDep
) -> Response:
    """The mutual information between each latent (20-bin histogram of μ) and each dSprites
    factor, as a heat-map of MI / H(factor); the tooltips give nats."""
    return _svg_response(request, model, sampling, figure2_svg.mi_svg)


@router.get("/api/models/{name}/shape.svg", response_class=Response, responses=SVG_RESPONSES)
def shape_document(request: Request, model: ModelDep, sampling: SamplingDep) -> Response:
    """Where shape lives, for a dSprites model: the (up to) three used latents sharing most
    information with shape, plotted against each other in pairs, one dot per image coloured by
    its shape, with the share of images whose shape a 15-nearest-neighbour vote reads back from
    each pair and from each latent alone (3-fold cross-validation)."""
    return _svg_response(request, model, sampling, figure2_svg.shape_svg)


@router.get("/ui/{name}/figure2", response_class=HTMLResponse, include_in_schema=False)
def figure2_partial(
    request: Request, model: ModelDep, templates: TemplatesDep, sampling: SamplingDep
) -> HTMLResponse:
    """htmx: a model's Figure 2, its mutual-information map, where shape lives and its metric
    table. A model of another dataset with known factors (colour shapes) gets the MI map and
    the table that `latent-explorer evaluate` stored in its card: Figure 2's rows are dSprites'
    factors."""
    context: dict[str, Any] = {
        "name": model.name,
        "digest": model.digest,
        "metrics": model.card.metrics,
        "error": None,
        "figure": None,
        "mi": None,
        "shape": None,
    }
    truth = ground_truth_of(model)
    if truth is not None and truth is not DSPRITES:
        context["dataset"] = truth.name
        context["mi"] = card_mi_svg(model, truth)
        return templates.TemplateResponse(request, "partials/figure2.html", context)
    try:
        # Markup: our own SVG, every piece of text in it escaped by app.studies.figure2_svg
        context["figure"] = Markup(svg_document(model, sampling, figure2_svg.figure_svg))
        context["mi"] = Markup(svg_document(model, sampling, figure2_svg.mi_svg))
        context["shape"] = Markup(svg_document(model, sampling, figure2_svg.shape_svg))
    except InferenceError as e:
        context["error"] = str(e)
    status = 200 if context["error"] is None else 422
    return templates.TemplateResponse(request, "partials/figure2.html", context, status_code=status)
