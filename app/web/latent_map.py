"""The latent map's API: where a model puts n held-out images, laid out by PCA (at once) or
t-SNE (in the background, the images' encoding included: 202 with Retry-After until it is
done), as JSON the /map page draws.

The handler is a plain `def`, so FastAPI runs it on its thread pool; concurrent first requests
for one map share one computation (app.studies.latent_map)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app import inference
from app.checkpoints.served import ServedModel
from app.encodings.cache import class_labels
from app.inference import DatasetImages, InferenceError, SetImages
from app.settings import Settings
from app.studies import latent_map
from app.studies.cache import SharedResults
from app.studies.latent_map import Column, Layout, MapSample
from app.studies.set_encodings import encoding_status, progress_text
from app.studies.tsne_jobs import Pending, TsneJobs, tsne_key
from app.web.deps import DataDep, DataPick, ModelDep, SettingsDep
from app.web.errors import DATA_UNAVAILABLE, NOT_MODIFIED, NotInModelError
from app.web.inputs import images_of
from app.web.responses import cached_image

router = APIRouter(prefix="/api", tags=["latent map"])

NEAREST = 10  # the t-SNE marker: the distance-weighted mean of this many neighbours' positions
TSNE_MARKER = (
    "t-SNE has no map for a point it was not fitted on: the marker for the current z sits at "
    f"the distance-weighted mean of the map positions of the {NEAREST} images whose μ lie "
    "nearest to it"
)
DEFAULT_POINTS = 5000
RETRY_AFTER = 5  # seconds between a page's polls while a t-SNE computes


class MapPending(BaseModel):
    """A map not computed yet: a t-SNE layout, or the encoding of the data set it shows."""

    model: str
    method: Literal["pca", "tsne"]
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


def colour_by(sample: MapSample) -> list[dict[str, Any]]:
    """What each point can be coloured by besides its latents: each ground-truth factor (the
    categorical one with its class names), the test split's class, or each column of a data
    set (categorical: codes, −1 where an image has none; ordered: numbers, null where none)."""
    if sample.columns:
        return [column_colours(c) for c in sample.columns]
    if sample.factors is not None:
        return [
            {
                "name": name,
                "kind": "factor",
                "values": sample.factors[:, k].tolist(),
                "names": list(sample.class_names) if k == sample.label_factor else None,
                "size": size,
            }
            for k, (name, size) in enumerate(
                zip(sample.factor_names, sample.factor_sizes, strict=True)
            )
        ]
    if sample.classes is not None and sample.source == "test-split":
        return [
            {
                "name": "class",
                "kind": "class",
                "values": sample.classes.tolist(),
                "names": list(sample.class_names),
                "size": len(sample.class_names),
            }
        ]
    return []


def column_colours(column: Column) -> dict[str, Any]:
    if column.kind == "categorical":
        return {
            "name": column.name, "kind": "category", "role": column.role,
            "values": column.values.tolist(), "names": list(column.categories),
            "size": len(column.categories),
        }  # fmt: skip
    values = column.values
    known = values[~np.isnan(values)]
    return {
        "name": column.name, "kind": "ordered", "role": column.role,
        "values": [None if np.isnan(v) else round(float(v), 6) for v in values.tolist()],
        "low": float(known.min()) if len(known) else 0.0,
        "high": float(known.max()) if len(known) else 1.0,
    }  # fmt: skip


def map_json(
    model: ServedModel, sample: MapSample, layout: Layout, method: str, seed: int
) -> dict[str, Any]:
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
        marker = {"kind": "nearest", "k": NEAREST, "about": TSNE_MARKER}
    return {
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
        "points": _rounded(layout.points),
        "indices": sample.indices.tolist(),
        "latents": _rounded(sample.mu),
        "labels": sample.classes.tolist()
        if cfg.kind == "cvae" and sample.classes is not None
        else None,
        "colour_by": colour_by(sample),
        "latent_names": [cfg.latent_name(i) for i in range(cfg.latent_dim)],
        "latent_order": inference.latent_order(model),
        "image_url": None
        if sample.source == "prior"
        else f"/api/models/{name}/dataset/{{index}}.png"
        + (f"?data={quote(sample.data_set, safe='')}" if sample.data_set else ""),
        "prior_z": None if sample.prior_z is None else _rounded(sample.prior_z),
        "marker": marker,
        "settings": layout.settings,
    }


# --- layouts and their JSON, kept per weights -------------------------------------------------

_json: SharedResults[bytes] = SharedResults(16)  # a map's JSON, 1–2 MB, encoded once
_jobs: dict[Path | None, TsneJobs] = {}
_jobs_lock = threading.Lock()


def tsne_jobs(cache_dir: Path | None) -> TsneJobs:
    """The background t-SNE runner of this process, for one cache folder."""
    with _jobs_lock:
        if cache_dir not in _jobs:
            _jobs[cache_dir] = TsneJobs(cache_dir)
        return _jobs[cache_dir]


def _map_response(
    request: Request, model: ServedModel, key: tuple[Any, ...],
    build: Callable[[], dict[str, Any]],
) -> Response:  # fmt: skip
    """A map's JSON, built and encoded once per weights and `key`, with an ETag (304 when the
    browser has it)."""

    def encoded() -> bytes:
        payload = build()
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()

    cached = lambda: _json.get((model.digest or id(model), *key), encoded)  # noqa: E731
    return cached_image(request, model, key, cached, media_type="application/json")


@router.get("/models/{name}/map", response_class=Response, responses=MAP_RESPONSES)
def latent_map_json(
    request: Request, model: ModelDep, settings: SettingsDep, data: DataDep,
    n: Annotated[
        int | None,
        Query(ge=2, description="held-out images to encode and place on the map (default "
              "5,000, or the server's limit where that is lower)",
              json_schema_extra={"x-maximum": "max_map_points"}),
    ] = None,
    method: Annotated[
        Literal["pca", "tsne"],
        Query(description="pca: exact, at once; tsne: computed in the background (202 until "
              "done), then kept per model weights"),
    ] = "pca",
    seed: Annotated[
        int, Query(ge=0, le=2**31 - 1, description="which images are drawn, and t-SNE's start")
    ] = 0,
    perplexity: Annotated[
        float,
        Query(ge=2, le=100, description="t-SNE's perplexity (at most (n − 1)/3 is used)"),
    ] = 30.0,
) -> Response:  # fmt: skip
    """Where the model puts n held-out images: the encoder means μ of images drawn from its
    ground truth (dSprites, colour shapes), or of its dataset's test split (Fashion-MNIST),
    or, for a model without data here (an imported CelebA model), of its own decoded prior
    samples; laid out in 2-D by PCA (exact: `marker` gives the projection of any z) or t-SNE.
    Each point comes with its image's index, its μ, and the factors or class to colour it by.
    A t-SNE map is computed once per weights, in the background: 202 with Retry-After until
    then. With `data=NAME` (and for a model whose own data is a served set, e.g. an imported
    CelebA model), the points are that set's images (its test split where it has one), every
    column of the set to colour them by, from the set's encoding, which is computed once in the
    background (202 with its progress until it is kept)."""
    images = images_of(model, settings, data)
    if isinstance(images, SetImages):
        return _set_map(request, model, settings, images, n, method, seed, perplexity)
    n = min(DEFAULT_POINTS, settings.max_map_points) if n is None else n
    if method == "pca":
        sample = sample_for(model, settings, n, seed)
        return _map_response(
            request, model, ("map", "pca", n, seed, sample.source),
            lambda: map_json(model, sample, latent_map.pca(sample.mu), method, seed),
        )  # fmt: skip
    # a t-SNE's images are drawn and encoded in its background job, not while this request
    # waits (a cold PCA map of 10,000, mostly that, takes 3 s on dSprites and 10 s on colour
    # shapes: docs/map.md); what is wrong with the request (n, the data) is answered here
    images = images_to_map(model, settings, n)
    dataset = None if images is None else images.name
    used = min(perplexity, max((n - 1) / 3, 0.5))
    result = tsne_jobs(settings.cache_dir).get(
        tsne_key(model, dataset, n, seed, used), n,
        lambda: latent_map.tsne(sample_for(model, settings, n, seed).mu, seed, used),
    )  # fmt: skip
    if isinstance(result, Pending):
        return _pending(model, method, n, seed, result.state, result.detail(n))
    # the sample is the job's, still in memory (a map read from disk encodes it here once)
    return _map_response(
        request, model, ("map", "tsne", n, seed, used, dataset),
        lambda: map_json(model, sample_for(model, settings, n, seed), result, method, seed),
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


def _set_map(
    request: Request, model: ServedModel, settings: Settings, images: SetImages,
    n: int | None, method: str, seed: int, perplexity: float,
) -> Response:  # fmt: skip
    """A map of a served data set's images, from the set's kept encoding (started in the
    background where it is not kept yet: 202 with its progress)."""
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
    usable = latent_map.encoded_rows(enc.indices, enc.ok, image_set.split, labels)
    if n is None:
        n = min(DEFAULT_POINTS, settings.max_map_points, len(usable))
    if n > settings.max_map_points:
        raise InferenceError(f"n is {n:,}, the limit is {settings.max_map_points:,}")
    try:
        sample = latent_map.encoded_sample(
            image_set.name, enc.indices, enc.ok, enc.mu, image_set.columns, image_set.split,
            n, seed, labels=labels, class_names=model.description.label_names,
        )  # fmt: skip
    except latent_map.SampleTooLargeError as e:
        raise NotInModelError(str(e)) from None
    key = ("map", "set", image_set.name, enc.meta.key, n, seed)
    if method == "pca":
        return _map_response(
            request, model, (*key, "pca"),
            lambda: map_json(model, sample, latent_map.pca(sample.mu), method, seed),
        )  # fmt: skip
    used = min(perplexity, max((n - 1) / 3, 0.5))
    result = tsne_jobs(settings.cache_dir).get(
        tsne_key(model, f"{image_set.name}:{enc.meta.key}", n, seed, used), n,
        lambda: latent_map.tsne(sample.mu, seed, used),
    )  # fmt: skip
    if isinstance(result, Pending):
        return _pending(model, method, n, seed, result.state, result.detail(n))
    return _map_response(
        request, model, (*key, "tsne", used),
        lambda: map_json(model, sample, result, method, seed),
    )  # fmt: skip
