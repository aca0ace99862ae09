"""/compare's direction section: one direction (a factor, or from one class to another) in two
models side by side, each with its shares per latent, its fit, its participation ratio and a
strip decoded along it; a model without the factor or classes says so in its place. The
numbers are app.web.directions' (the same as its API answers). With `data=NAME` both models
are read on that served set (its columns; while its encoding is computed a side says how far
it is and the section asks again)."""

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
from app.web.deps import DataPick, DataSetsDep, RegistryDep, SettingsDep, TemplatesDep
from app.web.directions import (
    DEFAULT_SAMPLE,
    ColumnChoice,
    DirectionChoices,
    direction_choices,
    direction_json,
    find_direction,
    listed,
)
from app.web.errors import NotFoundError, NotInModelError
from app.web.inputs import images_of
from app.web.latent_map import RETRY_AFTER
from app.web.selections import selection_direction_json
from app.web.set_directions import StillEncoding, set_of

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class SideView:
    """One model's column of the compare fragment: its direction, why it has none, or where the
    encoding of the data set it is read from stands (`pending`)."""

    name: str
    error: str | None = None
    not_here: str | None = None  # a valid question this model has no answer to (no such class)
    pending: str | None = None
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


def _ui_n(model: ServedModel, settings: Settings, data: DataPick) -> int | None:
    """The images behind a side's direction: the API's default, no more than a test split
    holds (a test split not installed: the 503's message); None on a data set (the set's
    encoding says)."""
    if set_of(model, settings, data) is not None:
        return None
    images = images_of(model, settings)
    n = min(DEFAULT_SAMPLE, settings.max_map_points)
    return min(n, images.n_images) if isinstance(images, TestImages) else n


def _side(
    model: ServedModel, registry: Mapping[str, ServedModel], settings: Settings,
    query: dict[str, str], label: int | None, data: DataPick,
) -> SideView:  # fmt: skip
    try:
        found = find_direction(
            model, registry, settings, data, query.get("factor"), query.get("from"),
            query.get("to"), query.get("column"), _ui_n(model, settings, data), 0,
        )  # fmt: skip
    except NotInModelError as e:  # a class or factor it does not have: a note, not an error
        return SideView(model.name, not_here=str(e))
    except InferenceError as e:  # the 503 of a missing test split too
        return SideView(model.name, error=str(e))
    if isinstance(found, StillEncoding):
        return SideView(model.name, pending=found.detail)
    body = direction_json(model, found.request, found.direction, found.sample)
    params = {k: v for k, v in query.items() if v} | {"steps": "7", "scale": "2"}
    if model.description.kind == "cvae" and label is not None:
        params["label"] = str(label)
    url = f"/api/models/{quote(model.name)}/direction.png?{urlencode(params)}"
    return SideView(model.name, json=body, bars=_bars(body), strip_url=url)


def _selection_side(
    model: ServedModel, settings: Settings, pick: DataPick, sel_a: str, sel_b: str,
    label: int | None,
) -> SideView:  # fmt: skip
    """A side whose direction is from selection A's images to selection B's, under this model,
    with a strip of 5 pictures from A's mean μ to B's (GET path.png)."""
    try:
        body = selection_direction_json(model, settings, pick, sel_a, sel_b)
    except InferenceError as e:
        return SideView(model.name, error=str(e))
    if isinstance(body, StillEncoding):
        return SideView(model.name, pending=body.detail)
    start = [c - v / 2 for c, v in zip(body["centre"], body["vector"], strict=True)]
    params = {
        "z": ",".join(f"{v:.4f}" for v in start),
        "v": ",".join(f"{v:.4f}" for v in body["vector"]),
        "lo": "0", "hi": "1.01", "step": "0.25",
    }  # fmt: skip
    if model.description.kind == "cvae" and label is not None:
        params["label"] = str(label)
    url = f"/api/models/{quote(model.name)}/path.png?{urlencode(params)}"
    return SideView(model.name, json=body, bars=_bars(body), strip_url=url)


@dataclass(frozen=True)
class Offered:
    """What the picker offers: the two models' choices together."""

    factors: list[str]
    classes: list[str]
    columns: list[ColumnChoice]
    notes: list[str]

    @staticmethod
    def of(choices: list[DirectionChoices]) -> Offered:
        columns: dict[str, ColumnChoice] = {}
        for ch in choices:
            for c in ch.columns:
                columns.setdefault(c.name, c)
        return Offered(
            factors=list(dict.fromkeys(f for ch in choices for f in ch.factors)),
            classes=list(dict.fromkeys(c for ch in choices for c in ch.classes)),
            columns=list(columns.values()),
            notes=list(dict.fromkeys(ch.note for ch in choices if ch.note)),
        )

    def categories(self, column: str | None) -> list[str]:
        """The classes a from → to pair is picked among: a data set column's categories, or
        the models' own classes."""
        chosen = next((c for c in self.columns if c.name == column), None)
        return chosen.categories if chosen is not None else self.classes

    def pair_column(self, column: str | None, source: str | None, target: str | None) -> str | None:
        """The data set column a from → to pair is read from: `column` where the set has it,
        else (without own classes) the first whose categories hold both, else its first
        categorical column; None for the models' own classes."""
        if column in {c.name for c in self.columns}:
            return column
        if self.classes or not self.columns:
            return None
        wanted = {(source or "").casefold(), (target or "").casefold()}
        holding = (c for c in self.columns if wanted <= {x.casefold() for x in c.categories})
        return next(holding, self.columns[0]).name


@router.get("/ui/compare/direction", response_class=HTMLResponse, include_in_schema=False)
def compare_direction(
    request: Request, registry: RegistryDep, settings: SettingsDep, templates: TemplatesDep,
    sets: DataSetsDep, a: str, b: str, kind: str | None = None, factor: str | None = None,
    source: Annotated[str | None, Query(alias="from")] = None,
    target: Annotated[str | None, Query(alias="to")] = None,
    column: str | None = None, data: str | None = None, label: int | None = None,
    sel_a: Annotated[str | None, Query(pattern=r"^[0-9a-f]{16}$")] = None,
    sel_b: Annotated[str | None, Query(pattern=r"^[0-9a-f]{16}$")] = None,
) -> HTMLResponse:  # fmt: skip
    """htmx: the "direction of a factor in both models" section of /compare: a picker of the
    images (each model's own, or a served data set: `data`) and of the factors and classes (a
    set's columns) either model has there (`kind`: which of them the picker's choice is), and
    for each model its direction's shares per latent, its fit, its participation ratio and a
    strip decoded along it; a model without the factor or classes says so in its place, and
    one whose data set is still being encoded says how far it is (202: the section asks
    again). With `sel_a` and `sel_b` (two selections of the latent map, app.web.selections)
    and no other choice, each model's direction is from its mean μ of A's images to its mean
    μ of B's."""
    models = []
    for name in (a, b):
        if name not in registry:
            available = listed(list(registry))
            raise NotFoundError(f"unknown model {quoted(name)}; available: {available}")
        models.append(registry[name])
    warnings = []
    if data and data not in sets:
        warnings.append(f"unknown data set {quoted(data)}: each model's own images instead")
    pick = DataPick(sets, data if data and data in sets else None)
    offered = Offered.of([direction_choices(m, settings, pick) for m in models])
    if kind == "factor":
        source = target = column = None
    elif kind == "classes":
        factor = None
    images = f"data set {pick.name}" if pick.name else "their own images"
    if factor is not None and factor not in offered.factors:  # e.g. the data set changed
        warnings.append(f"neither model has a factor {quoted(factor)} on {images}")
        factor = None
    column = offered.pair_column(column, source, target)
    pairs = offered.categories(column)
    named = {c.casefold() for c in pairs}
    if source is not None and not {source.casefold(), (target or "").casefold()} <= named:
        warnings.append(
            f"{quoted(source)} and {quoted(target or '')} are not two classes either model "
            f"has on {images}"
        )
        source = target = None
    if factor is None and source is None:  # the first view, or nothing asked fits: a default
        if offered.factors and kind != "classes":
            factor = "scale" if "scale" in offered.factors else offered.factors[0]
        elif len(pairs) >= 2:
            source, target = pairs[0], pairs[1]
        elif offered.factors:
            factor = offered.factors[0]
    if source is None:
        column = None
    query = {
        k: v
        for k, v in {
            "factor": factor, "from": source, "to": target, "column": column,
            "data": pick.name,
        }.items()
        if v is not None
    }  # fmt: skip
    asks = factor is not None or source is not None
    chosen = kind is None and sel_a is not None and sel_b is not None
    if chosen:
        assert sel_a is not None and sel_b is not None
        factor = source = target = column = None
        query = {"sel_a": sel_a, "sel_b": sel_b} | ({"data": pick.name} if pick.name else {})
        sides = [_selection_side(m, settings, pick, sel_a, sel_b, label) for m in models]
    else:
        sides = [_side(m, registry, settings, query, label, pick) for m in models] if asks else []
    if a == b:
        sides = sides[:1]
    pending = any(s.pending for s in sides)
    again = {"a": a, "b": b} | query | ({"label": str(label)} if label is not None else {})
    context = {
        "a": {"name": a},
        "b": {"name": b},
        "label": label,
        "sets": list(sets),
        "data": pick.name,
        "factors": offered.factors,
        "classes": pairs,
        "columns": offered.columns,
        "column": column,
        "notes": offered.notes,
        "factor": factor,
        "source": source,
        "target": target,
        "sides": sides,
        "warning": "; ".join(warnings) or None,
        "poll_url": f"/ui/compare/direction?{urlencode(again)}" if pending else None,
        "retry_after": RETRY_AFTER,
        "loaded": True,
        "selections": {"a": sel_a, "b": sel_b} if chosen else None,
    }
    response = templates.TemplateResponse(request, "partials/direction.html", context)
    if pending:
        response.status_code = 202
        response.headers["Retry-After"] = str(RETRY_AFTER)
    return response
