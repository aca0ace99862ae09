"""Directions on a served data set (`data=NAME`, or a model whose own images are a set, as an
imported CelebA model's are celeba-100): read from the set's columns over the latent map's sample
of the set's kept encoding (app.studies.latent_map.encoded_sample), which is computed once in the
background; until it is kept a direction is a `StillEncoding`, which the API answers with 202
and its progress, as the map does.

An ordered column is read as a factor (`factor=NAME`); a categorical one from one category to
another (`column=NAME&from=A&to=B`, the column found from the two categories where only one
column has both). Generating factors and attributes alike. What the set has not is the 404 of the
request (a valid request on another set); what no request could mean is a 422."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.checkpoints.served import ServedModel
from app.encodings.cache import class_labels
from app.inference import InferenceError, SetImages, ground_truth_of, held_out_class_names
from app.quoting import quoted
from app.settings import Settings
from app.studies import directions, latent_map
from app.studies.directions import Direction, DirectionError, DirectionRequest, column_span
from app.studies.latent_map import Column, MapSample
from app.studies.set_encodings import encoding_status, progress_text
from app.web.deps import DataPick
from app.web.errors import NotInModelError, Responses
from app.web.inputs import images_of
from app.web.latent_map import RETRY_AFTER

SHOWN = 12  # categories named in a message before "…"


def set_of(model: ServedModel, settings: Settings, data: DataPick | None) -> SetImages | None:
    """The data set a direction of `model` is read from: the one `data` names, or the model's
    own images where they are a served set; None where they are its ground truth or its test
    split (nothing is read to say so), or where it has none. Errors as inputs.images_of: an
    unknown set's 404, a set that cannot be read here a 503."""
    if data is None or (
        data.name is None and (ground_truth_of(model) is not None or held_out_class_names(model))
    ):
        return None
    images = images_of(model, settings, data)
    return images if isinstance(images, SetImages) else None


def _few(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN]) + (", …" if len(names) > SHOWN else "")
    return shown or "none"


def named_in(text: str, names: Sequence[str]) -> str | None:
    """The name `text` is among `names` (a class, a category): itself, else the one equal to it
    but for case; None if neither."""
    if text in names:
        return text
    return next((c for c in names if c.casefold() == text.casefold()), None)


def readable_columns(columns: Sequence[Column]) -> tuple[list[str], list[Column]]:
    """What a direction can be read from: the ordered columns with two values or more, and the
    categorical columns with two categories or more."""
    ordered = [
        c.name for c in columns if c.kind == "ordered" and column_span(c)[1] > column_span(c)[0]
    ]
    categorical = [c for c in columns if c.kind == "categorical" and len(c.categories) >= 2]
    return ordered, categorical


def nothing_to_read(name: str, columns: Sequence[Column]) -> str:
    """Why a set offers no direction, in a sentence."""
    if not columns:
        return (
            f"data set {name} has no columns (nothing is known about its images): there is "
            "nothing to read a direction from"
        )
    return (
        f"no column of data set {name} ({_few([c.name for c in columns])}) has two values or "
        "more: there is nothing to read a direction from"
    )


def set_direction_request(
    image_set_name: str, columns: Sequence[Column], factor: str | None, column: str | None,
    source: str | None, target: str | None, seed: int,
) -> DirectionRequest:  # fmt: skip
    """The direction a query asks of a data set's columns, its `n` still 0 (the set's encoding
    says how many images it has): a 422 for what no set could answer (factor and from/to
    together, neither, from equal to to), the 404 of this set for a column or category it
    has not, each message naming what it has."""
    where = f"data set {image_set_name}"
    if factor is not None and (source is not None or target is not None or column is not None):
        raise InferenceError(
            f"give factor={factor} alone, or from=… and to=… (with column=…) alone, not both"
        )
    if factor is None and (source is None or target is None):
        got = "from" if source is not None else "to" if target is not None else None
        raise InferenceError(
            "name an ordered column of the data set (factor=NAME) or two categories of one of "
            f"its columns (column=NAME&from=A&to=B); got {f'{got} alone' if got else 'neither'}"
        )
    if source is not None and target is not None and source.casefold() == target.casefold():
        raise InferenceError(
            f"from and to are both {quoted(source)}: name two different categories"
        )
    by_name = {c.name: c for c in columns}
    if not columns:
        raise NotInModelError(nothing_to_read(image_set_name, columns))
    ordered = [c.name for c in columns if c.kind == "ordered"]
    categorical = [c for c in columns if c.kind == "categorical"]
    if factor is not None:
        asked = by_name.get(factor)
        if asked is None:
            raise NotInModelError(
                f"{where} has no column {quoted(factor)}; its ordered columns: {_few(ordered)}"
                + (f"; categorical: {_few([c.name for c in categorical])}" if categorical else "")
            )
        if asked.kind == "categorical":
            pair = f"&from={asked.categories[0]}&to={asked.categories[1]}" if len(
                asked.categories
            ) > 1 else "&from=…&to=…"  # fmt: skip
            raise NotInModelError(
                f"column {quoted(factor)} of {where} is categorical: its categories "
                f"({_few(asked.categories)}) have no order for a line to read; use "
                f"column={factor}{pair} for the direction from one to another"
                + (f", or an ordered column: {_few(ordered)}" if ordered else "")
            )
        return DirectionRequest(factor, None, None, 0, seed)
    assert source is not None and target is not None
    if column is not None:
        asked = by_name.get(column)
        if asked is None:
            raise NotInModelError(
                f"{where} has no column {quoted(column)}; its categorical columns: "
                f"{_few([c.name for c in categorical])}"
            )
        if asked.kind == "ordered":
            raise NotInModelError(
                f"column {quoted(column)} of {where} is ordered, not categories: use "
                f"factor={column} for the direction that carries it"
            )
        candidates = [asked]
    else:
        candidates = [
            c
            for c in categorical
            if named_in(source, c.categories) and named_in(target, c.categories)
        ]
        if not candidates:
            each = "; ".join(f"{c.name}: {_few(c.categories)}" for c in categorical[:SHOWN])
            raise NotInModelError(
                f"no column of {where} has both {quoted(source)} and {quoted(target)} among its "
                f"categories ({each or 'it has no categorical column'})"
            )
        if len(candidates) > 1:
            raise NotInModelError(
                f"{quoted(source)} and {quoted(target)} are categories of several columns of "
                f"{where} ({_few([c.name for c in candidates])}): name one with column=…"
            )
    chosen = candidates[0]
    names = []
    for what, text in (("from", source), ("to", target)):
        name = named_in(text, chosen.categories)
        if name is None:
            raise NotInModelError(
                f"{what}: column {quoted(chosen.name)} of {where} has no category {quoted(text)}; "
                f"its categories: {_few(chosen.categories)}"
            )
        names.append(name)
    return DirectionRequest(None, names[0], names[1], 0, seed, column=chosen.name)


@dataclass(frozen=True)
class StillEncoding:
    """A direction waiting for its data set's encoding: where that stands, in a sentence."""

    data_set: str
    detail: str


class DirectionPending(BaseModel):
    """A direction on a data set whose encoding is still being computed in the background."""

    model: str
    data: str = Field(description="the data set the direction is read from")
    status: Literal["encoding"] = "encoding"
    detail: str = Field(description="where the encoding stands, in a sentence")
    retry_after: int = Field(description="seconds to wait before asking again")


PENDING: Responses = {
    202: {
        "model": DirectionPending,
        "description": "Accepted: the data set's encoding is being computed; ask again after "
        "Retry-After",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
    }
}


def pending_response(model: ServedModel, still: StillEncoding) -> Response:
    body = DirectionPending(
        model=model.name, data=still.data_set, detail=still.detail, retry_after=RETRY_AFTER
    )
    return Response(
        body.model_dump_json(),
        status_code=202,
        media_type="application/json",
        headers={"Retry-After": str(RETRY_AFTER), "Cache-Control": "no-store"},
    )


@dataclass(frozen=True)
class Found:
    """A direction, the sample it was read from and the request with its n; `source` names the
    images where they are a data set's (its name and its encoding's key), None for the model's
    own."""

    direction: Direction
    sample: MapSample
    request: DirectionRequest
    source: tuple[str, str] | None = None


def set_direction(
    model: ServedModel, settings: Settings, images: SetImages, asked: DirectionRequest,
    n: int | None, default_n: int,
) -> Found | StillEncoding:  # fmt: skip
    """The direction `asked` (set_direction_request) on the latent map's sample of n images of
    the set's kept encoding (default: `default_n`, or as many as the map can show), and the
    request with its n; or where the encoding stands, started in the background where nobody
    has. A failed encoding says why in one line (422, as the map); a sample past what the set
    holds, or one that cannot give the direction, is the request's 404."""
    image_set = images.set
    status = encoding_status(model, image_set, settings.cache_dir)
    if status.state == "failed":
        raise InferenceError(status.reason)
    if status.encoding is None:
        return StillEncoding(image_set.name, progress_text(image_set, status))
    enc = status.encoding
    labels = None
    if model.description.kind == "cvae":
        labels = class_labels(model, image_set, enc.meta.label_column)[1]
    if n is None:
        usable = latent_map.encoded_rows(enc.indices, enc.ok, image_set.split, labels)
        n = min(default_n, settings.max_map_points, len(usable))
    if n > settings.max_map_points:
        raise InferenceError(f"n is {n:,}, the limit is {settings.max_map_points:,}")
    request = replace(asked, n=n)

    def sample() -> MapSample:
        return latent_map.encoded_sample(
            image_set.name, enc.indices, enc.ok, enc.mu, image_set.columns, image_set.split,
            n, request.seed, labels=labels, class_names=model.description.label_names,
        )  # fmt: skip

    source = (image_set.name, enc.meta.key)
    try:
        d, drawn = directions.model_direction(model, request, sample, source, image_set.columns)
    except latent_map.SampleTooLargeError as e:
        raise NotInModelError(str(e)) from None
    except DirectionError as e:
        raise NotInModelError(f"model {model.name} on data set {image_set.name}: {e}") from None
    return Found(d, drawn, request, source)
