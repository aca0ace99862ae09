"""/compare's direction section: one direction (a factor, or from one class to another) in two
models side by side, each with its shares per latent, its fit, its participation ratio and a
strip decoded along it; a model without the factor or classes says so in its place. The
numbers are app.web.directions' (the same as its API answers)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.checkpoints.served import ServedModel
from app.inference import InferenceError, TestImages
from app.quoting import quoted
from app.settings import Settings
from app.studies.directions import DirectionRequest
from app.web.deps import RegistryDep, SettingsDep, TemplatesDep
from app.web.directions import (
    DEFAULT_SAMPLE,
    direction_choices,
    direction_json,
    direction_request,
    listed,
    model_direction,
)
from app.web.errors import NotFoundError
from app.web.inputs import images_of

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class SideView:
    """One model's column of the compare fragment: its direction, or why it has none."""

    name: str
    error: str | None = None
    json: dict[str, Any] | None = None
    bars: list[dict[str, Any]] = field(default_factory=list)
    strip_url: str | None = None


def _bars(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The shares in the model's latent order (as its sliders), for the template's SVG."""
    names = body["latent_names"]
    return [
        {"latent": i, "name": names[i], "share": body["shares"][i], "value": body["vector"][i]}
        for i in body["latent_order"]
    ]


def _side(
    model: ServedModel, registry: Mapping[str, ServedModel], settings: Settings,
    query: dict[str, str], label: int | None,
) -> SideView:  # fmt: skip
    try:
        request = _ui_request(model, registry, settings, query)
        d, sample = model_direction(model, settings, request)
    except InferenceError as e:  # NotInModelError and the 503 of a missing test split too
        return SideView(model.name, error=str(e))
    body = direction_json(model, request, d, sample)
    params = {k: v for k, v in query.items() if v} | {"steps": "7", "scale": "2"}
    if model.description.kind == "cvae" and label is not None:
        params["label"] = str(label)
    url = f"/api/models/{quote(model.name)}/direction.png?{urlencode(params)}"
    return SideView(model.name, json=body, bars=_bars(body), strip_url=url)


def _ui_request(
    model: ServedModel, registry: Mapping[str, ServedModel], settings: Settings,
    query: dict[str, str],
) -> DirectionRequest:  # fmt: skip
    images = images_of(model, settings)  # a test split not installed: the 503's message
    n = min(DEFAULT_SAMPLE, settings.max_map_points)
    n = min(n, images.n_images) if isinstance(images, TestImages) else n
    return direction_request(
        model, registry, query.get("factor"), query.get("from"), query.get("to"), n, 0
    )


@router.get("/ui/compare/direction", response_class=HTMLResponse, include_in_schema=False)
def compare_direction(
    request: Request, registry: RegistryDep, settings: SettingsDep, templates: TemplatesDep,
    a: str, b: str, kind: str | None = None, factor: str | None = None,
    source: Annotated[str | None, Query(alias="from")] = None,
    target: Annotated[str | None, Query(alias="to")] = None,
    label: int | None = None,
) -> HTMLResponse:  # fmt: skip
    """htmx: the "direction of a factor in both models" section of /compare: a picker of the
    factors and classes either model has (`kind`: which of them the picker's choice is), and
    for each model its direction's shares per latent, its fit, its participation ratio and a
    strip decoded along it; a model without the factor or classes says so in its place."""
    models = []
    for name in (a, b):
        if name not in registry:
            available = listed(list(registry))
            raise NotFoundError(f"unknown model {quoted(name)}; available: {available}")
        models.append(registry[name])
    choices = [direction_choices(m, settings) for m in models]
    factors = list(dict.fromkeys(f for c in choices for f in c.factors))
    classes = list(dict.fromkeys(c for ch in choices for c in ch.classes))
    if kind == "factor":
        source = target = None
    elif kind == "classes":
        factor = None
    if factor is None and source is None and target is None:  # the first view: a default
        if factors:
            factor = "scale" if "scale" in factors else factors[0]
        elif len(classes) >= 2:
            source, target = classes[0], classes[1]
    query = {
        k: v for k, v in {"factor": factor, "from": source, "to": target}.items() if v is not None
    }
    sides = [_side(m, registry, settings, query, label) for m in models] if query else []
    if a == b:
        sides = sides[:1]
    context = {
        "a": {"name": a},
        "b": {"name": b},
        "label": label,
        "factors": factors,
        "classes": classes,
        "factor": factor,
        "source": source,
        "target": target,
        "sides": sides,
        "loaded": True,
    }
    return templates.TemplateResponse(request, "partials/direction.html", context)
