"""The latent map's API: where a model puts n held-out images, laid out by PCA (at once),
t-SNE or UMAP (in the background, the images' encoding included: 202 with Retry-After until it
is done), or by a layout of the data set loaded from a file (app/web/map_layouts.py), as JSON
the /map page draws.

The handler is a plain `def`, so FastAPI runs it on its thread pool; concurrent first requests
for one map share one computation (app.studies.latent_map)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app import inference
from app.checkpoints.served import ServedModel
from app.encodings.cache import class_labels
from app.inference import DatasetImages, InferenceError, SetImages
from app.settings import Settings
from app.studies import latent_map, layouts
from app.studies.cache import SharedResults
from app.studies.latent_map import Column, MapSample
from app.studies.layout_files import (
    LayoutFileError,
    LoadedLayout,
    UnknownLayoutError,
    layout_store,
)
from app.studies.layout_jobs import LayoutJobs, Pending, layout_key
from app.studies.layouts import NEAREST, Layout
from app.studies.set_encodings import encoding_status, progress_text
from app.web import map_binary
from app.web.deps import DataDep, DataPick, ModelDep, SettingsDep
from app.web.errors import DATA_UNAVAILABLE, NOT_MODIFIED, NotFoundError, NotInModelError
from app.web.inputs import images_of
from app.web.responses import cached_image, etag_for

router = APIRouter(prefix="/api", tags=["latent map"])

MARKER_ABOUT = {
    "tsne": "the marker for the current z is placed by openTSNE's own transform: its affinities "
    "to its nearest neighbours in μ, optimised against the fixed map (GET marker.place)",
    "umap": "the marker for the current z is placed by UMAP's own transform: its fuzzy "
    "neighbours in μ, optimised against the fixed map (GET marker.place)",
    "loaded": "a layout computed elsewhere has no map for a point it was not given: the marker "
    f"for the current z sits at the distance-weighted mean of the map positions of the {NEAREST} "
    "images whose μ lie nearest to it",
}
DEFAULT_POINTS = 5000
RETRY_AFTER = 5  # seconds between a page's polls while a t-SNE computes
LOADED_NEEDS_A_SET = (
    "method=loaded draws a layout loaded for a data set: view model {model} on one with "
    "data=NAME (GET /api/datasets/NAME/layouts lists its layouts)"
)
WHOLE_NEEDS_A_SET = (
    "split=all maps every image of a data set: view model {model} on one with data=NAME "
    "(GET /api/datasets lists them)"
)
MethodQuery = Annotated[
    Literal["pca", "tsne", "umap", "loaded"],
    Query(description="pca: exact, at once; tsne (openTSNE) and umap: computed in the "
          "background (202 until done), then kept per model weights; loaded: a layout of the "
          "data set loaded from a file (with layout=NAME and data=NAME)"),
]  # fmt: skip
MapSeedQuery = Annotated[
    int, Query(ge=0, le=2**31 - 1, description="which images are drawn, and t-SNE's start")
]
PerplexityQuery = Annotated[
    float, Query(ge=2, le=100, description="t-SNE's perplexity (at most (n − 1)/3 is used)")
]
SplitQuery = Annotated[
    Literal["test", "all"],
    Query(description="a data set's images to map: its test split where it has one (test), or "
          "every split's (all, e.g. all 70,000 of fashion-mnist); only with a data set"),
]  # fmt: skip
LayoutQuery = Annotated[
    str | None,
    Query(max_length=64, description="method=loaded: the name of a layout of the data set "
          "(GET /api/datasets/{dataset}/layouts)"),
]  # fmt: skip


class MapPending(BaseModel):
    """A map not computed yet: a t-SNE layout, or the encoding of the data set it shows."""

    model: str
    method: Literal["pca", "tsne", "umap", "loaded"]
    n: int
    seed: int
    status: Literal["queued", "computing", "computing elsewhere", "encoding"]
    detail: str = Field(description="where it stands, in a sentence")
    retry_after: int = Field(description="seconds to wait before asking again")


MAP_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the map: points, their images' indices, what to colour them by"},
    202: {
        "model": MapPending,
        "description": "Accepted: a t-SNE map is being computed; ask again after Retry-After",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
    },
    **NOT_MODIFIED,
    **DATA_UNAVAILABLE,
}

BINARY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the map as bytes: magic LEMAP001, header length, JSON header, typed "
        "arrays (app/web/map_binary.py)",
        "content": {
            "application/vnd.latent-explorer.map": {
                "schema": {"type": "string", "format": "binary"}
            }
        },
    },
    **{k: v for k, v in MAP_RESPONSES.items() if k != 200},
}


def sample_for(model: ServedModel, settings: Settings, n: int, seed: int) -> MapSample:
    """The μ of n held-out images of the model's data (or its own prior samples where it has
    none), with the project's errors: a test split not installed is a 503, more images than it
    holds the model's 404, n past the server's limit a 422."""
    images = images_to_map(model, settings, n)
    return latent_map.map_sample(model, images, n, seed)


def images_to_map(
    model: ServedModel, settings: Settings, n: int, data: DataPick | None = None
) -> DatasetImages | None:
    """Where a map's n images come from (None: the model's own prior samples), once n is known
    to be a sample it can draw; nothing drawn or encoded yet."""
    if n > settings.max_map_points:
        raise InferenceError(f"n is {n:,}, the limit is {settings.max_map_points:,}")
    images = images_of(model, settings, data)
    try:
        latent_map.check_sample_size(model, images, n)
    except latent_map.SampleTooLargeError as e:
        raise NotInModelError(str(e)) from None
    return images


def _rounded(a: np.ndarray, decimals: int = 4) -> list[Any]:
    return np.round(a.astype(np.float64), decimals).tolist()


def colour_by(sample: MapSample) -> list[tuple[dict[str, Any], np.ndarray]]:
    """What each point can be coloured by besides its latents, each with its values, one per
    point: each ground-truth factor (the categorical one with its class names), the test split's
    class, or each column of a data set (categorical: codes, −1 where an image has none;
    ordered: numbers to 6 decimals, NaN where none)."""
    if sample.columns:
        return [column_colours(c) for c in sample.columns]
    if sample.factors is not None:
        return [
            (
                {
                    "name": name,
                    "kind": "factor",
                    "names": list(sample.class_names) if k == sample.label_factor else None,
                    "size": size,
                },
                sample.factors[:, k],
            )
            for k, (name, size) in enumerate(
                zip(sample.factor_names, sample.factor_sizes, strict=True)
            )
        ]
    if sample.classes is not None and sample.source == "test-split":
        names = list(sample.class_names)
        return [({"name": "class", "kind": "class", "names": names, "size": len(names)},
                 sample.classes)]  # fmt: skip
    return []


def column_colours(column: Column) -> tuple[dict[str, Any], np.ndarray]:
    if column.kind == "categorical":
        return (
            {
                "name": column.name, "kind": "category", "role": column.role,
                "names": list(column.categories), "size": len(column.categories),
            },
            column.values,
        )  # fmt: skip
    values = column.values
    known = values[~np.isnan(values)]
    return (
        {
            "name": column.name, "kind": "ordered", "role": column.role,
            "low": float(known.min()) if len(known) else 0.0,
            "high": float(known.max()) if len(known) else 1.0,
        },
        np.round(values.astype(np.float64), 6),
    )  # fmt: skip


def _json_values(entry: dict[str, Any], values: np.ndarray) -> list[Any]:
    if entry["kind"] == "ordered":
        return [None if np.isnan(v) else v for v in values.tolist()]
    return values.astype(np.int64).tolist()


def map_parts(
    model: ServedModel, sample: MapSample, layout: Layout, method: str, seed: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A map as its short fields and its long arrays, one row per point (`points`, `indices`,
    `latents`, `prior_z`, and `colour:<name>` for each `colour_by` entry): what both the JSON
    form (map_json) and the binary one (app.web.map_binary) are made of."""
    cfg = model.description
    name = quote(model.name, safe="")
    marker: dict[str, Any]
    if layout.mean is not None and layout.components is not None:
        marker = {
            "kind": "exact",
            "mean": _rounded(layout.mean, 6),
            "components": _rounded(layout.components, 6),
        }
    else:
        kind = "transform" if method in ("tsne", "umap") else "nearest"
        marker = {"kind": kind, "k": NEAREST, "about": MARKER_ABOUT.get(method, "")}
    marker["place"] = place_url(model, sample, layout, method, seed)
    colours = colour_by(sample)
    arrays: dict[str, np.ndarray] = {
        "points": np.round(layout.points.astype(np.float64), 4),
        "indices": sample.indices,
        "latents": sample.mu,  # rounded where a form ships them (not past 20,000 as bytes)
        **{f"colour:{entry['name']}": values for entry, values in colours},
    }
    if sample.prior_z is not None:
        arrays["prior_z"] = np.round(sample.prior_z.astype(np.float64), 4)
    payload = {
        "model": model.name,
        "method": method,
        "n": sample.n,
        "seed": seed,
        "status": "done",
        "source": {
            "kind": sample.source,
            "dataset": sample.dataset,
            "description": sample.description,
        },
        "labels": sample.classes.tolist()
        if cfg.kind == "cvae" and sample.classes is not None
        else None,
        "colour_by": [entry for entry, _ in colours],
        "latent_names": [cfg.latent_name(i) for i in range(cfg.latent_dim)],
        "latent_order": inference.latent_order(model),
        "image_url": None
        if sample.source == "prior"
        else f"/api/models/{name}/dataset/{{index}}.png"
        + (f"?data={quote(sample.data_set, safe='')}" if sample.data_set else ""),
        "marker": marker,
        "settings": layout.settings,
    }
    return payload, arrays


def map_json(
    model: ServedModel, sample: MapSample, layout: Layout, method: str, seed: int
) -> dict[str, Any]:
    """The JSON form: every point's numbers as lists (for scripts, and for small n)."""
    return json_form(*map_parts(model, sample, layout, method, seed))


def json_form(payload: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    lists = {
        "points": arrays["points"].tolist(),
        "indices": arrays["indices"].tolist(),
        "latents": np.round(arrays["latents"].astype(np.float64), 4).tolist(),
        "prior_z": arrays["prior_z"].tolist() if "prior_z" in arrays else None,
    }
    colours = [
        {**entry, "values": _json_values(entry, arrays[f"colour:{entry['name']}"])}
        for entry in payload["colour_by"]
    ]
    return {**payload, **lists, "colour_by": colours}


# --- layouts and their JSON, kept per weights -------------------------------------------------

_json: SharedResults[bytes] = SharedResults(16)  # a map's JSON, 1–2 MB, encoded once
# a map's bytes, plain and gzipped: up to 13 + 8 MB for all of dSprites, so fewer are kept
_binary: SharedResults[tuple[bytes, bytes]] = SharedResults(4)
# a data set map's points, picked from its encoding once (737,280 of them: 0.2 s, 60 MB of μ)
_set_samples: SharedResults[MapSample] = SharedResults(4)
_jobs: dict[Path | None, LayoutJobs] = {}
_jobs_lock = threading.Lock()


def layout_jobs(cache_dir: Path | None) -> LayoutJobs:
    """The background layout runner (t-SNE, UMAP) of this process, for one cache folder."""
    with _jobs_lock:
        if cache_dir not in _jobs:
            _jobs[cache_dir] = LayoutJobs(cache_dir)
        return _jobs[cache_dir]


def computed_layout(
    model: ServedModel, settings: Settings, method: str, source: str | None, n: int, seed: int,
    perplexity: float, mu: Callable[[], np.ndarray],
) -> tuple[str, Layout | Pending]:  # fmt: skip
    """A t-SNE or UMAP of the map's μ (`mu`, called in the background job), by its key: done,
    or where it stands (started where nobody has started it)."""
    used = layouts.used_perplexity(n, perplexity) if method == "tsne" else None
    key = layout_key(method, model, source, n, seed, used)

    def compute(progress: layouts.Progress) -> Layout:
        if method == "tsne":
            assert used is not None
            return layouts.tsne(mu(), seed, used, progress)
        return layouts.umap(mu(), seed)

    return key, layout_jobs(settings.cache_dir).get(key, n, compute, method)


def loaded_layout_file(settings: Settings, images: SetImages, name: str | None) -> LoadedLayout:
    """The set's loaded layout `name` (app.studies.layout_files), or a 404 in one line where the
    name is missing or the set has none of that name: asked before the set's encoding, so a
    wrong name never starts one."""
    image_set = images.set
    if not name:  # valid by the schema, which cannot say that method=loaded needs it
        raise NotFoundError(
            f"method=loaded needs layout=NAME: GET /api/datasets/{image_set.name}/layouts "
            "lists the layouts of the set"
        )
    try:
        return layout_store(settings.cache_dir).load(image_set, image_set.content_digest(), name)
    except UnknownLayoutError as e:
        raise NotFoundError(str(e)) from None


def loaded_layout(loaded: LoadedLayout, sample: MapSample) -> tuple[Layout, str]:
    """The map's points on a loaded layout: a Layout of their positions, and when the layout
    was loaded (it keys the map's JSON); a 404 where the layout has no position for one."""
    try:
        points = loaded.points_of(sample.indices)
    except LayoutFileError as e:  # an image the map shows that the layout has no position for
        raise NotFoundError(str(e)) from None
    settings_ = {"layout": loaded.name, "rows": loaded.rows, "loaded": loaded.created}
    return Layout(points, settings_), loaded.created


def place_url(model: ServedModel, sample: MapSample, layout: Layout, method: str, seed: int) -> str:
    """Where the page asks for the marker of a z on this map (it adds `&z=…`): the map's own
    parameters, at GET /api/models/{name}/map/place (app/web/map_layouts.py)."""
    query: dict[str, Any] = {"method": method, "n": sample.n, "seed": seed}
    perplexity = layout.settings.get("perplexity")
    if method == "tsne" and isinstance(perplexity, float | int) and perplexity >= 2:
        query["perplexity"] = repr(float(perplexity))  # below 2 it is (n − 1)/3 whatever asked
    if sample.data_set:
        query["data"] = sample.data_set
    if sample.whole:
        query["split"] = "all"
    if method == "loaded":
        query["layout"] = layout.settings.get("layout")
    return f"/api/models/{quote(model.name, safe='')}/map/place?{urlencode(query)}"


Parts = Callable[[], tuple[dict[str, Any], dict[str, np.ndarray]]]


def _map_response(
    request: Request, model: ServedModel, key: tuple[Any, ...], build: Parts, form: str = "json",
) -> Response:  # fmt: skip
    """A map, built and encoded once per weights, `key` and form, with an ETag (304 when the
    browser has it). The binary form goes gzip-compressed to a browser that accepts it."""
    cache_key = (model.digest or id(model), *key)
    if form == "json":

        def encoded() -> bytes:
            payload = json_form(*build())
            return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()

        cached = lambda: _json.get(cache_key, encoded)  # noqa: E731
        return cached_image(request, model, key, cached, media_type="application/json")
    gzipped = "gzip" in request.headers.get("accept-encoding", "")
    etag = etag_for(model, (*key, "binary", gzipped))
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)

    def both() -> tuple[bytes, bytes]:
        body = map_binary.encode(*map_binary.split_payload(*build()))
        return body, map_binary.compressed(body)

    body, small = _binary.get(cache_key, both)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return Response(small if gzipped else body, media_type=map_binary.MEDIA_TYPE, headers=headers)


@router.get("/models/{name}/map", response_class=Response, responses=MAP_RESPONSES)
def latent_map_json(
    request: Request, model: ModelDep, settings: SettingsDep, data: DataDep,
    n: Annotated[
        int | None,
        Query(ge=2, description="held-out images to encode and place on the map (default "
              "5,000, or the server's limit where that is lower)",
              json_schema_extra={"x-maximum": "max_map_points"}),
    ] = None,
    method: MethodQuery = "pca",
    seed: MapSeedQuery = 0,
    perplexity: PerplexityQuery = 30.0,
    layout: LayoutQuery = None,
    split: SplitQuery = "test",
) -> Response:  # fmt: skip
    """Where the model puts n held-out images: the encoder means μ of images drawn from its
    ground truth (dSprites, colour shapes), or of its dataset's test split (Fashion-MNIST),
    or, for a model without data here (an imported CelebA model), of its own decoded prior
    samples; laid out in 2-D by PCA (exact: `marker` gives the projection of any z), t-SNE
    (openTSNE) or UMAP, or, on a data set, a layout of it loaded from a file
    (`method=loaded&layout=NAME`). `marker.place` is where to ask where any z lands on this map.
    Each point comes with its image's index, its μ, and the factors or class to colour it by.
    A t-SNE or UMAP map is computed once per weights, in the background: 202 with Retry-After
    (and, for t-SNE, the fraction done) until then. With `data=NAME` (and for a model whose own
    data is a served set, e.g. an imported CelebA model), the points are that set's images (its
    test split where it has one, or all of them with `split=all`), every column of the set to
    colour them by, from the set's encoding, which is computed once in the background (202 with
    its progress until it is kept)."""
    return _map(request, model, settings, data, n, method, seed, perplexity, "json", layout,
                split == "all")  # fmt: skip


@router.get("/models/{name}/map.bin", response_class=Response, responses=BINARY_RESPONSES)
def latent_map_binary(
    request: Request, model: ModelDep, settings: SettingsDep, data: DataDep,
    n: Annotated[
        int | None,
        Query(ge=2, description="images to place on the map (default 5,000, or the server's "
              "limit where that is lower); past the JSON form's limit, a data set's images",
              json_schema_extra={"x-maximum": "max_binary_map_points"}),
    ] = None,
    method: MethodQuery = "pca",
    seed: MapSeedQuery = 0,
    perplexity: PerplexityQuery = 30.0,
    layout: LayoutQuery = None,
    split: SplitQuery = "test",
) -> Response:  # fmt: skip
    """The map of /api/models/{name}/map as bytes the browser views as typed arrays in place
    (app/web/map_binary.py documents the layout): positions float32, image indices uint32,
    each colour column's codes uint8/uint16 or values float32, μ only up to 20,000 points;
    gzip-compressed where accepted. It holds up to `max_binary_map_points` (1,000,000) points
    of a data set (`data=NAME`, e.g. all 737,280 images of dsprites); a map of a model's own
    drawn images or prior samples holds at most the JSON form's limit (404 past it)."""
    return _map(request, model, settings, data, n, method, seed, perplexity, "binary", layout,
                split == "all")  # fmt: skip


def past_own_images(model: ServedModel, settings: Settings, n: int) -> NotInModelError:
    """The 404 of an n past what a map of the model's own images holds (the schema allows
    more for a data set's map)."""
    return NotInModelError(
        f"n is {n:,}: a map of {model.name}'s own images holds at most "
        f"{settings.max_map_points:,}; a data set's map holds more (add data=NAME: "
        "GET /api/datasets lists them)"
    )


def _map(
    request: Request, model: ServedModel, settings: Settings, data: DataPick | None,
    n: int | None, method: str, seed: int, perplexity: float, form: str,
    layout: str | None = None, whole: bool = False,
) -> Response:  # fmt: skip
    images = images_of(model, settings, data)
    if isinstance(images, SetImages):
        return _set_map(
            request, model, settings, images, n, method, seed, perplexity, form, layout, whole
        )  # fmt: skip
    if whole:  # valid by the schema, which cannot say that it needs a data set
        raise NotInModelError(WHOLE_NEEDS_A_SET.format(model=model.name))
    n = min(DEFAULT_POINTS, settings.max_map_points) if n is None else n
    if n > settings.max_map_points and form == "binary":
        raise past_own_images(model, settings, n)
    if method == "pca":
        sample = sample_for(model, settings, n, seed)
        return _map_response(
            request, model, ("map", "pca", n, seed, sample.source),
            lambda: map_parts(model, sample, layouts.pca(sample.mu), method, seed), form,
        )  # fmt: skip
    if method == "loaded":  # valid by the schema, which cannot say that it needs data=NAME
        raise NotInModelError(LOADED_NEEDS_A_SET.format(model=model.name))
    # a t-SNE's or UMAP's images are drawn and encoded in its background job, not while this
    # request waits (a cold PCA map of 10,000, mostly that, takes 3 s on dSprites and 10 s on
    # colour shapes: docs/map.md); what is wrong with the request (n, the data) is answered here
    images = images_to_map(model, settings, n)
    dataset = None if images is None else images.name
    key, result = computed_layout(
        model, settings, method, dataset, n, seed, perplexity,
        lambda: sample_for(model, settings, n, seed).mu,
    )  # fmt: skip
    if isinstance(result, Pending):
        return _pending(model, method, n, seed, result.state, result.detail(n))
    # the sample is the job's, still in memory (a map read from disk encodes it here once)
    return _map_response(
        request, model, ("map", key),
        lambda: map_parts(model, sample_for(model, settings, n, seed), result, method, seed),
        form,
    )  # fmt: skip


def _pending(
    model: ServedModel, method: str, n: int, seed: int, status: str, detail: str
) -> Response:
    body = MapPending(
        model=model.name, method=method, n=n, seed=seed, status=status,  # type: ignore[arg-type]
        detail=detail, retry_after=RETRY_AFTER,
    )  # fmt: skip
    return Response(
        body.model_dump_json(),
        status_code=202,
        media_type="application/json",
        headers={"Retry-After": str(RETRY_AFTER), "Cache-Control": "no-store"},
    )


def set_map_sample(
    model: ServedModel, settings: Settings, images: SetImages, n: int | None, seed: int,
    method: str, limit: int, more: str = "", whole: bool = False,
) -> tuple[MapSample, str] | Response:  # fmt: skip
    """The points of a data set's map (n of the images its kept encoding can show, its test
    split's where it has one unless `whole`, by default as many as the JSON form's limit
    allows; past `limit` a 422, `more` ending its message), picked once per weights, encoding,
    images, n and seed, and the key of what they were drawn from (the encoding's, ":all" added
    where `whole` maps more than the test split); or the 202 with the encoding's progress while
    it is computed (started in the background where it is not)."""
    image_set = images.set
    status = encoding_status(model, image_set, settings.cache_dir)
    if status.state == "failed":
        raise InferenceError(status.reason)
    if status.encoding is None:
        shown = n if n is not None else min(DEFAULT_POINTS, settings.max_map_points)
        return _pending(model, method, shown, seed, "encoding", progress_text(image_set, status))
    enc = status.encoding
    labels = None
    if model.description.kind == "cvae":
        labels = class_labels(model, image_set, enc.meta.label_column)[1]
    usable = latent_map.encoded_rows(enc.indices, enc.ok, image_set.split, labels, whole)
    if n is None:
        n = min(DEFAULT_POINTS, settings.max_map_points, len(usable))
    if n > limit:
        raise InferenceError(f"n is {n:,}, the limit is {limit:,}{more}")
    size = n
    try:
        sample = _set_samples.get(
            (model.digest or id(model), image_set.name, enc.meta.key, n, seed, whole),
            lambda: latent_map.encoded_sample(
                image_set.name, enc.indices, enc.ok, enc.mu, image_set.columns, image_set.split,
                size, seed, labels=labels, class_names=model.description.label_names,
                whole=whole,
            ),
        )  # fmt: skip
    except latent_map.SampleTooLargeError as e:
        raise NotInModelError(str(e)) from None
    return sample, enc.meta.key + (":all" if sample.whole else "")


def _set_map(
    request: Request, model: ServedModel, settings: Settings, images: SetImages,
    n: int | None, method: str, seed: int, perplexity: float, form: str = "json",
    layout: str | None = None, whole: bool = False,
) -> Response:  # fmt: skip
    """A map of a served data set's images (`whole`: every split's), from the set's kept
    encoding (started in the background where it is not kept yet: 202 with its progress)."""
    limit = settings.max_map_points if form == "json" else settings.max_binary_map_points
    more = " (map.bin holds more)" if form == "json" else ""
    loaded_file = loaded_layout_file(settings, images, layout) if method == "loaded" else None
    found = set_map_sample(model, settings, images, n, seed, method, limit, more, whole)
    if isinstance(found, Response):
        return found
    sample, encoding_key = found
    n, image_set = sample.n, images.set
    key = ("map", "set", image_set.name, encoding_key, n, seed)
    if method == "pca":
        return _map_response(
            request, model, (*key, "pca"),
            lambda: map_parts(model, sample, layouts.pca(sample.mu), method, seed), form,
        )  # fmt: skip
    if loaded_file is not None:
        loaded, version = loaded_layout(loaded_file, sample)
        return _map_response(
            request, model, (*key, "loaded", layout, version),
            lambda: map_parts(model, sample, loaded, method, seed), form,
        )  # fmt: skip
    job, result = computed_layout(
        model, settings, method, f"{image_set.name}:{encoding_key}", n, seed, perplexity,
        lambda: sample.mu,
    )  # fmt: skip
    if isinstance(result, Pending):
        return _pending(model, method, n, seed, result.state, result.detail(n))
    return _map_response(
        request, model, (*key, job),
        lambda: map_parts(model, sample, result, method, seed), form,
    )  # fmt: skip
