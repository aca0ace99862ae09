"""The data sets the server offers: GET /api/datasets lists every one (its images, its typed
columns, its splits, how many problems reading it found), GET /api/datasets/{dataset} one with its
problems listed. Any model can be viewed on any of them: `data=NAME` on a route that picks a
dataset image by index (app/web/deps.py: DataDep)."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from app.checkpoints.served import ServedModel
from app.inference import ColumnSummary, DatasetError, DataSets, SetSummary
from app.quoting import quoted
from app.web.deps import DataPick, DataSetsDep
from app.web.errors import NOT_FOUND, NotFoundError

router = APIRouter(prefix="/api/datasets", tags=["datasets"])


class Category(BaseModel):
    name: str
    images: int = Field(description="images of this category")


class DataColumn(BaseModel):
    """One value per image: categorical (a class, a shape) or ordered (a size, an angle); a
    generating factor (the disentanglement metrics score latents against it) or an attribute."""

    name: str
    kind: Literal["categorical", "ordered"]
    role: Literal["factor", "attribute"]
    missing: int = Field(description="images with no value in this column")
    categories: list[Category] | None = Field(
        default=None, description="categorical: each category and its images, in code order"
    )
    low: float | None = Field(default=None, description="ordered: the smallest value")
    high: float | None = Field(default=None, description="ordered: the largest value")
    distinct: int | None = Field(default=None, description="ordered: how many values")


class DataSet(BaseModel):
    name: str = Field(description="what `data=NAME` names")
    source: str = Field(description="where its images come from, in words")
    location: str = Field(description="its folder, or 'built-in'")
    images: int
    columns: list[DataColumn]
    splits: dict[str, int] = Field(description="images per split (train, validation, test)")
    problems: int = Field(description="problems found reading its listing and table")
    unavailable: str | None = Field(
        default=None, description="why it cannot be read here (a built-in not installed)"
    )


class Problem(BaseModel):
    where: str = Field(description="the file, folder or table row it concerns")
    what: str


class DataSetDetail(DataSet):
    problem_list: list[Problem] = Field(description="every problem, in the order found")


def _column(s: ColumnSummary) -> DataColumn:
    categories = [Category(name=n, images=k) for n, k in zip(s.categories, s.counts, strict=True)]
    return DataColumn(
        name=s.name, kind=s.kind, role=s.role, missing=s.missing,
        categories=categories if s.kind == "categorical" else None,
        low=s.low, high=s.high, distinct=s.distinct,
    )  # fmt: skip


# a set's summary counts every column's values (0.1 s for dSprites' 737,280 images): once per set
_summaries: weakref.WeakKeyDictionary[object, SetSummary] = weakref.WeakKeyDictionary()


def describe_set(sets: DataSets, name: str) -> DataSet:
    image_set = sets[name]
    try:
        summary = _summaries.get(image_set) or image_set.summary()
    except DatasetError as e:  # a built-in whose files are not installed
        return DataSet(name=name, source=image_set.source, location=image_set.location,
                       images=0, columns=[], splits={}, problems=0, unavailable=str(e))  # fmt: skip
    _summaries[image_set] = summary
    return DataSet(
        name=summary.name,
        source=summary.source,
        location=summary.location,
        images=summary.n_images,
        columns=[_column(c) for c in summary.columns],
        splits=dict(summary.splits),
        problems=summary.problems,
    )


@router.get("")
def list_datasets(sets: DataSetsDep) -> list[DataSet]:
    """Every data set served: the built-ins (dsprites, shapes3d, fashion-mnist), each folder of
    the data sets folder, and each `serve --data NAME=PATH`."""
    return [describe_set(sets, name) for name in sets]


@router.get("/{dataset}", responses=NOT_FOUND)
def get_dataset(
    sets: DataSetsDep,
    dataset: Annotated[
        str,
        Path(description="a data set from /api/datasets", json_schema_extra={"x-data-set": True}),
    ],
) -> DataSetDetail:
    """One data set, with every problem found reading it (a file that is no image, a table row
    naming no file, a value none of its column's categories)."""
    if dataset not in sets:
        known = ", ".join(sets) or "none"
        raise NotFoundError(f"unknown data set {quoted(dataset)}; served: {known}")
    found = [Problem(where=p.where, what=p.what) for p in sets[dataset].problems]
    return DataSetDetail(**describe_set(sets, dataset).model_dump(), problem_list=found)


# --- the pages' data set picker (templates/partials/_data_picker.html) ------------------------


def picker(data: DataPick, action: str, keep: Mapping[str, object], own: str) -> dict[str, Any]:
    """What a page's data set picker shows: every served set, the one the page views (`data`)
    selected, and `own` naming the model's own images (the empty choice). `keep` is the page's
    state as the form sends it without scripts; static/data_picker.js keeps the URL's instead,
    which follows the page."""
    return {
        "action": action,
        "keep": [(k, str(v)) for k, v in keep.items() if v is not None and k != "data"],
        "sets": list(data.sets),
        "current": data.name or "",
        "own": own,
    }


def data_query(data: DataPick, first: bool = True) -> str:
    """`?data=NAME` (or `&data=NAME` when not `first`) for a URL the page's scripts and forms
    call, nothing for the model's own images."""
    if not data.name:
        return ""
    return ("?" if first else "&") + urlencode(data.query)


def own_images(model: ServedModel) -> str:
    """The picker's words for the model's own images."""
    dataset = model.description.dataset
    return f"its own ({dataset})" if dataset else "its own"
