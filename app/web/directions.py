"""Directions in latent space: the API that answers which way in z carries a ground-truth factor
(dSprites' scale, position, orientation) or moves one class to another, and a strip of images
decoded along one (/compare's section on them is app/web/direction_compare.py).

The numbers come from app.studies.directions on the sample of encoder means the latent map
draws (app.web.latent_map.sample_for); nothing here computes them. With `data=NAME` (and for a
model whose own images are a served set) they are read from the set's columns over the map's
sample of the set's kept encoding (app/web/set_directions.py): 202 with its progress while that
is computed in the background. The handlers are plain `def`s, so FastAPI runs them on its
thread pool: a first sample takes seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import torch
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from app import imaging, inference
from app.checkpoints.served import ServedModel
from app.inference import InferenceError, ground_truth_of, held_out_class_names
from app.quoting import quoted
from app.settings import Settings
from app.studies import directions
from app.studies.directions import MIN_SAMPLE, Direction, DirectionError, DirectionRequest, Fit
from app.studies.latent_map import MapSample
from app.web.deps import DataDep, DataPick, ModelDep, RegistryDep, ServedDep, SettingsDep
from app.web.errors import DATA_UNAVAILABLE, NOT_MODIFIED, NotInModelError
from app.web.inputs import check_label
from app.web.latent_map import sample_for
from app.web.params import Label, Scale
from app.web.responses import PNG, cached_image
from app.web.set_directions import (
    PENDING,
    Found,
    StillEncoding,
    named_in,
    nothing_to_read,
    pending_response,
    readable_columns,
    set_direction,
    set_direction_request,
    set_of,
)

router = APIRouter(tags=["directions"])


@dataclass(frozen=True)
class ColumnChoice:
    """A data set's categorical column a from → to direction can join two categories of."""

    name: str
    categories: list[str]


@dataclass(frozen=True)
class DirectionChoices:
    """What a direction can be asked of a model: `factors`, the ground-truth factors a straight
    line can read (every one but the categorical factor, shape: its classes have no order), and
    `classes`, the class names a from → to direction can join; on a data set, `factors` are its
    ordered columns and `columns` its categorical ones. All empty for a model without data of
    known factors or classes (an imported CelebA model without its set), or viewed on a set
    without columns (`note` says so). `data` is the set `data=NAME` picks (what a page's
    requests carry); `data_set` the set the directions are read from, the model's own too."""

    factors: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    columns: list[ColumnChoice] = field(default_factory=list)
    data: str | None = None
    data_set: str | None = None
    note: str | None = None


def direction_choices(
    model: ServedModel, settings: Settings | None = None, data: DataPick | None = None
) -> DirectionChoices:
    """The factors and classes `model` has, from its dataset alone: nothing is read or encoded,
    so a test split that is not installed still lists its classes (the direction then says how
    to install it). With `data` (and `settings`), a data set's columns where it names one or
    where the model's own images are a served set; a set that cannot be read says why in
    `note`."""
    if settings is not None and data is not None:
        try:
            images = set_of(model, settings, data)
        except InferenceError as e:  # a set that cannot be read here
            return DirectionChoices(data=data.name, note=f"no direction: {e}")
        if images is not None:
            columns = images.set.columns
            ordered, categorical = readable_columns(columns)
            return DirectionChoices(
                factors=ordered,
                columns=[ColumnChoice(c.name, list(c.categories)) for c in categorical],
                data=data.name,
                data_set=images.name,
                note=None if ordered or categorical else nothing_to_read(images.name, columns),
            )
    truth = ground_truth_of(model)
    if truth is not None:
        factors = [n for k, n in enumerate(truth.factor_names) if k != truth.label_factor]
        return DirectionChoices(factors, list(truth.label_names))
    return DirectionChoices([], list(held_out_class_names(model)))


# --- the names a request may use --------------------------------------------------------------


@dataclass(frozen=True)
class ServedNames:
    """What the served models name between them: every ground-truth factor (the categorical
    one too: asked as a factor, it is that model's 404 saying to ask for two of its classes)
    and every class. A name outside these is malformed for every model (422); one inside that
    the named model has not is its 404."""

    factors: tuple[str, ...]
    classes: tuple[str, ...]


def served_names(registry: Mapping[str, ServedModel]) -> ServedNames:
    factors: dict[str, None] = {}  # ordered sets: first seen first
    classes: dict[str, None] = {}
    for model in registry.values():
        truth = ground_truth_of(model)
        factors.update(dict.fromkeys(truth.factor_names if truth else ()))
        classes.update(dict.fromkeys(direction_choices(model).classes))
    return ServedNames(tuple(factors), tuple(classes))


def listed(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


def direction_request(
    model: ServedModel, registry: Mapping[str, ServedModel], factor: str | None,
    source: str | None, target: str | None, n: int, seed: int,
) -> DirectionRequest:  # fmt: skip
    """The direction a query asks of `model`, checked against what the served models name (an
    InferenceError, 422, where none does) and against what this one has (NotInModelError, 404);
    each message names the bad value and the valid ones."""
    served = served_names(registry)
    has = direction_choices(model)
    if factor is not None and (source is not None or target is not None):
        raise InferenceError(f"give factor={factor} alone, or from=… and to=… alone, not both")
    if factor is not None:
        if factor not in served.factors:
            raise InferenceError(
                f"no served model has a factor {quoted(factor)}; factors: {listed(served.factors)}"
            )
        truth = ground_truth_of(model)
        if truth is None:
            raise NotInModelError(
                f"model {model.name} has no ground-truth factors (it was trained on "
                f"{model.description.dataset}), so no factor {quoted(factor)}"
                + (f"; its classes: {listed(has.classes)} (from=…&to=…)" if has.classes else "")
            )
        if factor not in has.factors:
            if factor == truth.factor_names[truth.label_factor]:
                first, second = truth.label_names[:2]
                raise NotInModelError(
                    f"factor {quoted(factor)} of model {model.name} is categorical: its classes "
                    f"({listed(truth.label_names)}) have no order for a line to read; use "
                    f"from=…&to=… (from={first}&to={second}) for the direction from one to "
                    f"another, or a factor: {listed(has.factors)}"
                )
            raise NotInModelError(
                f"model {model.name} has no factor {quoted(factor)}; "
                f"its factors: {listed(has.factors)}"
            )
        return DirectionRequest(factor, None, None, n, seed)
    if source is None or target is None:
        raise InferenceError(
            "name a factor (factor=scale) or two classes (from=square&to=heart); "
            f"got {'from' if source is not None else 'to' if target is not None else 'neither'}"
            + (" alone" if source is not None or target is not None else "")
        )
    names = []
    for what, text in (("from", source), ("to", target)):
        name = named_in(text, served.classes)
        if name is None:
            raise InferenceError(
                f"{what}: no served model has a class {quoted(text)}; "
                f"classes: {listed(served.classes)}"
            )
        names.append(name)
    if names[0] == names[1]:
        raise InferenceError(f"from and to are both {quoted(names[0])}: name two different classes")
    for what, name in zip(("from", "to"), names, strict=True):
        if name not in has.classes:
            raise NotInModelError(
                f"{what}: model {model.name} has no class {quoted(name)}; its classes: "
                f"{listed(has.classes)}"
            )
    return DirectionRequest(None, names[0], names[1], n, seed)


# --- the API ---------------------------------------------------------------------------------

# the `x-...` keys are markers that app/web/openapi.py turns into the served models' names
FactorQuery = Annotated[
    str | None,
    Query(
        description="a ground-truth factor (dSprites: scale, orientation, pos_x, pos_y): the "
        "direction that carries it from its lowest class to its highest; with data=NAME, an "
        "ordered column of that set, from its lowest value to its highest (a set's columns are "
        "its own: the values listed here are the served models' factors)",
        json_schema_extra={"x-direction-names": "factors"},
    ),
]
FromQuery = Annotated[
    str | None,
    Query(
        alias="from",
        description="a class (dSprites: a shape; Fashion-MNIST: a garment), any case: the "
        "direction from its mean μ to that of `to`; with data=NAME, a category of one of the "
        "set's categorical columns (`column`)",
        json_schema_extra={"x-direction-names": "classes"},
    ),
]
ToQuery = Annotated[
    str | None,
    Query(
        alias="to",
        description="the class the direction goes to, other than `from`",
        json_schema_extra={"x-direction-names": "classes"},
    ),
]
DEFAULT_SAMPLE = 5000  # images behind a direction unless asked (or the server's limit is lower)
SampleQuery = Annotated[
    int | None,
    Query(
        ge=MIN_SAMPLE,
        description="images encoded (the latent map's sample): 80% fit the direction, 20% score "
        "it; default 5,000, or the server's limit where that is lower (on a data set: or all its "
        "test images, or all its images); 404 past a test split's size or a data set's",
        json_schema_extra={"x-maximum": "max_map_points"},
    ),
]
SeedQuery = Annotated[
    int, Query(ge=0, le=2**31 - 1, description="which images are drawn, and which are held out")
]
ColumnQuery = Annotated[
    str | None,
    Query(
        description="with data=NAME: the categorical column of the set whose categories `from` "
        "and `to` are (needed only where several columns have both)"
    ),
]
# factor alone, or from and to (two different classes, with a column or not) alone; openapi.py
# spells out "different"
DIRECTION_CASES: dict[str, Any] = {
    "x-one-of": [
        {
            "required": ["factor"],
            "not": {
                "anyOf": [{"required": ["from"]}, {"required": ["to"]}, {"required": ["column"]}]
            },
        },
        {"required": ["from", "to"], "not": {"required": ["factor"]}, "x-distinct": ["from", "to"]},
    ]
}


def model_direction(
    model: ServedModel, settings: Settings, request: DirectionRequest
) -> tuple[Direction, MapSample]:
    """The direction, from the latent map's sample (its errors: a test split not installed is a
    503, more images than it holds a 404), cached per weights; a sample that cannot give it
    (too few images of a class) is the model's 404."""
    try:
        return directions.model_direction(
            model, request, lambda: sample_for(model, settings, request.n, request.seed)
        )
    except DirectionError as e:
        raise NotInModelError(f"model {model.name}: {e}") from None


DIRECTION_JSON = {
    "description": "the direction: its vector, centre, fit, shares and participation ratio",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


def find_direction(
    model: ServedModel, registry: Mapping[str, ServedModel], settings: Settings,
    data: DataPick | None, factor: str | None, source: str | None, target: str | None,
    column: str | None, n: int | None, seed: int,
) -> Found | StillEncoding:  # fmt: skip
    """The direction a query asks: on a data set where `data` names one or the model's own
    images are one (set_directions; where its encoding is not kept yet, how far it is), else on
    the model's own images. Each request's errors as set_direction_request and
    direction_request say."""
    images = set_of(model, settings, data)
    if images is not None:
        asked = set_direction_request(
            images.name, images.set.columns, factor, column, source, target, seed
        )
        return set_direction(model, settings, images, asked, n, DEFAULT_SAMPLE)
    n = min(DEFAULT_SAMPLE, settings.max_map_points) if n is None else n
    request = direction_request(model, registry, factor, source, target, n, seed)
    if column is not None:
        raise NotInModelError(
            f"model {model.name}'s own images have no columns: column= names a categorical "
            "column of a data set (data=NAME)"
        )
    d, sample = model_direction(model, settings, request)
    return Found(d, sample, request)


def _rounded(a: np.ndarray, digits: int = 6) -> list[float]:
    """Six significant digits: a direction's scale is the model's (μ may span 0.01 or 30)."""
    return [float(f"{x:.{digits}g}") for x in a]


def fit_json(fit: Fit) -> dict[str, Any]:
    """How well a direction fits its sample, as a direction's JSON says it."""
    return {
        "measure": fit.measure,
        "value": round(fit.value, 5),
        "held_out": fit.held_out,
        "chance": None if fit.chance is None else round(fit.chance, 5),
        "about": fit.about,
        "left_out": fit.left_out,
    }


def direction_json(
    model: ServedModel, request: DirectionRequest, d: Direction, sample: MapSample
) -> dict[str, Any]:
    return {
        "model": model.name,
        "kind": "factor" if request.factor is not None else "classes",
        "factor": request.factor,
        "from": request.source,
        "to": request.target,
        # the data set's column it is read from; None for the model's own images
        "column": (request.column or request.factor) if sample.data_set else None,
        "data": sample.data_set,
        "vector": _rounded(d.vector),
        "length": round(d.length, 5),
        "centre": _rounded(d.centre),
        "fit": fit_json(d.fit),
        "participation_ratio": round(d.participation_ratio, 5),
        "shares": _rounded(d.shares),
        "latent_names": [model.description.latent_name(i) for i in range(len(d.vector))],
        "latent_order": inference.latent_order(model),
        "n": request.n,
        "seed": request.seed,
        "source": {
            "kind": sample.source,
            "dataset": sample.dataset,
            "description": sample.description,
        },
    }


@router.get("/api/models/{name}/direction", response_class=Response,
            openapi_extra=DIRECTION_CASES,
            responses={200: DIRECTION_JSON, **PENDING, **DATA_UNAVAILABLE})  # fmt: skip
def direction(
    model: ModelDep, registry: RegistryDep, settings: SettingsDep, data: DataDep,
    factor: FactorQuery = None, source: FromQuery = None, target: ToQuery = None,
    column: ColumnQuery = None, n: SampleQuery = None, seed: SeedQuery = 0,
) -> Response:  # fmt: skip
    """A direction in the model's latent space, read from the encoder means μ of n images (the
    latent map's sample: dSprites drawn from its factors, Fashion-MNIST's test split), 80% to
    fit and 20% held out to score. `factor`: the step along which μ moves with a straight-line
    read-out of the factor, sized to carry the read-out from the factor's lowest class to its
    highest (the read-out's pattern, Haufe et al. 2014), scored by R². `from` and `to`: class
    `from`'s mean μ to class `to`'s (the attribute vector of Latent Space Cartography, Liu et
    al. 2019), scored by the share of held-out images of the two on their own side of the
    midpoint. With each, its shares per latent v_i²/|v|² and participation ratio (Σv_i²)²/Σv_i⁴
    (1: along one latent), and `centre`, the mean μ (factor) or the classes' midpoint.

    With `data=NAME` (and for a model whose own images are a served set, e.g. an imported
    CelebA model's celeba-100) the images are the latent map's sample of that set, and the
    direction is read from one of its columns, factor or attribute: `factor` an ordered column
    (its values scaled to 0..1 from the column's lowest value in the set to its highest),
    `from` and `to` two categories of a categorical column (`column` names it where several
    have both). Images without a value in the column are left out (`fit.left_out`). The set's
    encoding is computed once in the background: 202 with its progress until it is kept."""
    found = find_direction(
        model, registry, settings, data, factor, source, target, column, n, seed
    )  # fmt: skip
    if isinstance(found, StillEncoding):
        return pending_response(model, found)
    return JSONResponse(direction_json(model, found.request, found.direction, found.sample))


def strip_latents(d: Direction, steps: int) -> torch.Tensor:
    """(steps, D): from centre − vector/2 to centre + vector/2."""
    t = np.linspace(-0.5, 0.5, steps)[:, None]
    return torch.from_numpy(d.centre + t * d.vector).float()


@router.get(
    "/api/models/{name}/direction.png",
    response_class=Response,
    openapi_extra=DIRECTION_CASES,
    responses={200: PNG, **NOT_MODIFIED, **PENDING, **DATA_UNAVAILABLE},
)
def direction_png(
    request: Request, model: ModelDep, registry: RegistryDep, settings: SettingsDep,
    served: ServedDep, data: DataDep, factor: FactorQuery = None, source: FromQuery = None,
    target: ToQuery = None, column: ColumnQuery = None, n: SampleQuery = None,
    seed: SeedQuery = 0,
    steps: Annotated[
        int, Query(ge=2, json_schema_extra={"x-maximum": "max_interpolate_steps"})
    ] = 7,
    label: Label = None, scale: Scale = 1,
) -> Response:  # fmt: skip
    """A strip of images decoded along the direction (see `direction`, `data=NAME` too), from
    its centre minus half the vector to its centre plus half: for a factor, from about its
    lowest class to its highest; for two classes, from `from`'s mean μ to `to`'s. 202 while a
    data set's encoding is computed, as `direction`."""
    check_label(model, label, served)
    if steps > settings.max_interpolate_steps:
        raise InferenceError(f"steps is {steps}, the limit is {settings.max_interpolate_steps}")
    if scale > settings.max_image_scale:
        raise InferenceError(f"scale is {scale}, the limit is {settings.max_image_scale}")
    found = find_direction(
        model, registry, settings, data, factor, source, target, column, n, seed
    )  # fmt: skip
    if isinstance(found, StillEncoding):
        return pending_response(model, found)
    d = found.direction

    def render() -> bytes:
        images = inference.decode_latents(model, strip_latents(d, steps), label)
        return imaging.png_bytes(imaging.grid(images, 1, steps), scale)

    key = ("direction", found.source, found.request, steps, label, scale)
    return cached_image(request, model, key, render)
