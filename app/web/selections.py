"""Selections on the latent map, kept by id (app.studies.selection_store): what the selected
images have in common under a model (mean μ, mean reconstruction, their columns), and the
direction from one selection's mean μ to another's, which the direction slider drives, on /map
and, for each model, on /compare. A selection is a set of image indices of the data a model is
viewed on (its own, or `data=NAME`), whatever map they were circled on."""

from __future__ import annotations

import base64
from typing import Annotated, Any
from urllib.parse import quote

import numpy as np
from annotated_types import Ge, Le
from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, Field

from app.checkpoints.served import ServedModel
from app.encodings.cache import class_labels
from app.imaging import png_bytes
from app.inference import DatasetImages, InferenceError, SetImages, latent_order
from app.settings import Settings
from app.studies import directions, selections
from app.studies.cache import SharedResults
from app.studies.selection_store import (
    StoredSelection,
    UnknownSelectionError,
    selection_store,
    source_of,
)
from app.studies.set_encodings import encoding_status, progress_text
from app.web.deps import DataDep, DataPick, ModelDep, SettingsDep
from app.web.directions import fit_json
from app.web.errors import DATA_UNAVAILABLE, NOT_FOUND, NotFoundError, NotInModelError
from app.web.inputs import images_of
from app.web.responses import etag_for
from app.web.set_directions import PENDING, StillEncoding, pending_response

router = APIRouter(prefix="/api", tags=["selections"])

MAX_SELECTED = 1_000_000  # indices one selection holds (all of dSprites is 737,280)
SelectionId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{16}$", description="a selection's id, as POST made it")
]


def _not_a_boolean(value: object) -> object:
    """JSON's true and false are not image indices (pydantic would read them as 1 and 0)."""
    if isinstance(value, bool):
        raise ValueError("an image index is a whole number, not true or false")
    return value


# bounds as annotated_types' (Field(ge=…) beside a validator reached the schema as "ge", which
# no client reads as a minimum)
ImageIndex = Annotated[int, Ge(0), Le(2**31 - 1), BeforeValidator(_not_a_boolean)]


class SelectionBody(BaseModel):
    indices: list[ImageIndex] = Field(
        min_length=1, max_length=MAX_SELECTED,
        description="the selected images' indices in the data the model is viewed on "
        "(repeats count once)",
    )  # fmt: skip


class ValueCount(BaseModel):
    value: str
    count: int


class ColumnSummary(BaseModel):
    name: str
    kind: str = Field(description="categorical: its most frequent values; ordered: its range")
    missing: int = Field(description="selected images without a value")
    counts: list[ValueCount] = []
    mean: float | None = None
    low: float | None = None
    high: float | None = None


class SelectionAnswer(BaseModel):
    id: str = Field(description="the selection's id: a digest of the images it names")
    model: str
    images: str = Field(description="what the indices are images of: dSprites, a data set")
    count: int
    mean_mu: list[float] = Field(description="the selected images' mean encoder mean μ")
    mean_reconstruction: str = Field(
        description="PNG data URL: the mean of the images' reconstructions, each decoded from its μ"
    )
    reconstructed: int = Field(description="images averaged (a seeded sample past 256)")
    shown: list[int] = Field(description="up to 24 of the images, a seeded sample")
    shown_urls: list[str] = Field(description="each of `shown`'s images")
    columns: list[ColumnSummary]
    csv: str = Field(description="the selection's indices as CSV")


class DirectionAnswer(BaseModel):
    model: str
    source: str
    target: str
    name: str
    about: str
    vector: list[float] = Field(description="mean μ of target − mean μ of source")
    source_mean: list[float]
    target_mean: list[float]
    source_count: int
    target_count: int
    shared: int = Field(description="images in both selections")
    norm: float


def _images(model: ServedModel, settings: Settings, data: DataPick | None) -> DatasetImages:
    images = images_of(model, settings, data)
    if images is None:
        raise NotInModelError(
            f"model {model.name} has no images here to select (its map shows its own prior "
            "samples): view it on a data set with data=NAME"
        )
    return images


def _selected(
    model: ServedModel, settings: Settings, images: DatasetImages, indices: np.ndarray
) -> selections.Selected | StillEncoding:
    """μ of the selected images under `model`, or where its encoding of the set stands."""
    try:
        if not isinstance(images, SetImages):
            return selections.selected(
                model, images, indices, limit=settings.max_map_points
            )  # fmt: skip
        status = encoding_status(model, images.set, settings.cache_dir)
        if status.state == "failed":
            raise InferenceError(status.reason)
        if status.encoding is None:
            return StillEncoding(images.name, progress_text(images.set, status))
        enc = status.encoding
        labels = None
        if model.description.kind == "cvae":
            labels = class_labels(model, images.set, enc.meta.label_column)[1]
        return selections.selected(model, images, indices, enc, labels)
    except selections.SelectionError as e:
        raise NotInModelError(str(e)) from None


def _stored(settings: Settings, images: DatasetImages, ident: str) -> StoredSelection:
    try:
        stored = selection_store(settings.cache_dir).get(ident)
    except UnknownSelectionError as e:
        raise NotFoundError(str(e)) from None
    if stored.source != source_of(images):
        raise NotInModelError(
            f"selection {ident} is of {stored.name} images; this view shows {images.name}'s"
        )
    return stored


_answers: SharedResults[SelectionAnswer] = SharedResults(32)


def _answer(
    model: ServedModel, images: DatasetImages, stored: StoredSelection,
    chosen: selections.Selected, data: DataPick | None,
) -> SelectionAnswer:  # fmt: skip
    def build() -> SelectionAnswer:
        recon, averaged = selections.mean_reconstruction(model, chosen)
        png = base64.b64encode(png_bytes(recon)).decode()
        name = model.name
        query = f"?data={quote(data.name, safe='')}" if data is not None and data.name else ""
        picked = selections.shown(chosen).tolist()
        quoted_name = quote(name, safe="")
        return SelectionAnswer(
            id=stored.id,
            model=name,
            images=stored.name,
            count=chosen.count,
            mean_mu=np.round(chosen.mu.mean(axis=0), 6).tolist(),
            mean_reconstruction=f"data:image/png;base64,{png}",
            reconstructed=averaged,
            shown=picked,
            shown_urls=[f"/api/models/{quoted_name}/dataset/{i}.png{query}" for i in picked],
            columns=[
                ColumnSummary(
                    name=c.name,
                    kind=c.kind,
                    missing=c.missing,
                    counts=[ValueCount(value=v.value, count=v.count) for v in c.counts],
                    mean=c.mean,
                    low=c.low,
                    high=c.high,
                )  # fmt: skip
                for c in selections.column_summaries(images, chosen.indices)
            ],
            csv=f"/api/selections/{stored.id}.csv",
        )

    return _answers.get((model.digest or id(model), stored.id), build)


@router.post(
    "/models/{name}/selections", status_code=201, response_model=SelectionAnswer,
    responses={**PENDING, **NOT_FOUND, **DATA_UNAVAILABLE},
)  # fmt: skip
def add_selection(
    model: ModelDep, settings: SettingsDep, data: DataDep,
    body: Annotated[SelectionBody, Body()],
) -> Any:  # fmt: skip
    """Keep a selection of the images the model is viewed on (its own, or `data=NAME`) and say
    what they have in common under it: mean μ, mean reconstruction, a summary of each column.
    The answer's `id` names the selection in URLs, for this model and for any other viewed on
    the same images. A data set whose encoding is not kept yet: 202 with its progress (the
    selection is kept; ask GET /selections/{id} again after Retry-After)."""
    images = _images(model, settings, data)
    try:
        indices = selections.unique_indices(
            np.asarray(body.indices, dtype=np.int64), images.n_images, images.noun
        )
    except selections.SelectionError as e:
        raise NotInModelError(str(e)) from None
    stored = selection_store(settings.cache_dir).add(images, indices)
    chosen = _selected(model, settings, images, indices)
    if isinstance(chosen, StillEncoding):
        return pending_response(model, chosen)
    return _answer(model, images, stored, chosen, data)


@router.get(
    "/models/{name}/selections/direction", response_model=DirectionAnswer,
    responses={**PENDING, **NOT_FOUND, **DATA_UNAVAILABLE},
)  # fmt: skip
def selection_direction(
    request: Request, model: ModelDep, settings: SettingsDep, data: DataDep,
    source: Annotated[str, Query(pattern=r"^[0-9a-f]{16}$", description="from: a selection id")],
    target: Annotated[str, Query(pattern=r"^[0-9a-f]{16}$", description="to: a selection id")],
) -> Any:  # fmt: skip
    """The direction from selection `source`'s mean μ to selection `target`'s under this model
    (any model viewed on the images they were made of): the vector the direction slider moves
    z along, z = z_start + t·vector, t = 1 carrying the one mean to the other."""
    images = _images(model, settings, data)
    a = _stored(settings, images, source)
    b = _stored(settings, images, target)
    etag = etag_for(model, ("selection-direction", a.id, b.id, images.name))
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    picked = []
    for s in (a, b):
        chosen = _selected(model, settings, images, s.indices)
        if isinstance(chosen, StillEncoding):
            return pending_response(model, chosen)
        picked.append(chosen)
    d = selections.direction(picked[0], picked[1])
    answer = DirectionAnswer(
        model=model.name, source=a.id, target=b.id,
        name=f"selection A ({a.count:,}) → selection B ({b.count:,})",
        about=f"from the mean μ of {a.count:,} selected {a.name} images to the mean μ of "
        f"{b.count:,} others" + (f" ({d.shared:,} in both)" if d.shared else ""),
        vector=np.round(d.vector, 6).tolist(),
        source_mean=np.round(d.source_mean, 6).tolist(),
        target_mean=np.round(d.target_mean, 6).tolist(),
        source_count=d.source_count, target_count=d.target_count, shared=d.shared,
        norm=round(float(np.linalg.norm(d.vector)), 6),
    )  # fmt: skip
    return Response(
        answer.model_dump_json(), media_type="application/json",
        headers={"ETag": etag, "Cache-Control": "public, max-age=86400"},
    )  # fmt: skip


@router.get(
    "/models/{name}/selections/{ident}", response_model=SelectionAnswer,
    responses={**PENDING, **NOT_FOUND, **DATA_UNAVAILABLE},
)  # fmt: skip
def get_selection(model: ModelDep, settings: SettingsDep, data: DataDep, ident: SelectionId) -> Any:
    """A kept selection under this model (any model viewed on the images it was made of)."""
    images = _images(model, settings, data)
    stored = _stored(settings, images, ident)
    chosen = _selected(model, settings, images, stored.indices)
    if isinstance(chosen, StillEncoding):
        return pending_response(model, chosen)
    return _answer(model, images, stored, chosen, data)


@router.get(
    "/selections/{ident}.csv", response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "one image index a line"},
               **NOT_FOUND},
)  # fmt: skip
def selection_csv(settings: SettingsDep, ident: SelectionId) -> Response:
    """A kept selection's image indices, one a line under the header `index`."""
    try:
        stored = selection_store(settings.cache_dir).get(ident)
    except UnknownSelectionError as e:
        raise NotFoundError(str(e)) from None
    text = "index\n" + "\n".join(map(str, stored.indices.tolist())) + "\n"
    return Response(
        text, media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="selection-{ident}.csv"'},
    )  # fmt: skip


def selection_direction_json(
    model: ServedModel, settings: Settings, data: DataPick | None, source: str, target: str
) -> dict[str, Any] | StillEncoding:
    """The direction from selection `source` to `target` under `model`, in the shape of
    app.web.directions.direction_json (what /compare's direction section draws): the vector
    and centre from all the selected images' μ, and how well it separates the two groups, from
    app.studies.directions.class_direction's held-out accuracy on the same images."""
    images = _images(model, settings, data)
    a, b = _stored(settings, images, source), _stored(settings, images, target)
    picked = []
    for s in (a, b):
        chosen = _selected(model, settings, images, s.indices)
        if isinstance(chosen, StillEncoding):
            return chosen
        picked.append(chosen)
    d = selections.direction(picked[0], picked[1])
    mu = np.concatenate([picked[0].mu, picked[1].mu])
    groups = np.r_[np.zeros(a.count, dtype=np.int64), np.ones(b.count, dtype=np.int64)]
    names = (f"selection A ({a.count:,})", f"selection B ({b.count:,})")
    try:
        fit = directions.class_direction(mu, groups, 0, 1, seed=0, names=names).fit
    except directions.DirectionError as e:
        raise NotInModelError(f"selections {a.id} and {b.id}: {e}") from None
    rounded = lambda v: np.round(np.asarray(v, dtype=np.float64), 6).tolist()  # noqa: E731
    return {
        "model": model.name,
        "kind": "classes",
        "factor": None,
        "from": names[0],
        "to": names[1],
        "column": None,
        "data": data.name if data is not None else None,
        "vector": rounded(d.vector),
        "length": round(float(np.linalg.norm(d.vector)), 5),
        "centre": rounded((d.source_mean + d.target_mean) / 2),
        "fit": fit_json(fit),  # every selected image has a μ: left_out 0
        "participation_ratio": round(directions.participation_ratio(d.vector), 5),
        "shares": rounded(directions.shares(d.vector)),
        "latent_names": [model.description.latent_name(i) for i in range(len(d.vector))],
        "latent_order": latent_order(model),
        "source": {
            "kind": "selections",
            "dataset": a.name,
            "description": f"the mean μ of {a.count:,} selected {a.name} images to that of "
            f"{b.count:,} others" + (f" ({d.shared:,} in both)" if d.shared else ""),
        },
    }
