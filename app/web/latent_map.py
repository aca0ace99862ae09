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
from app.inference import DatasetImages, InferenceError
from app.settings import Settings
from app.studies import latent_map
from app.studies.cache import SharedResults
from app.studies.latent_map import Layout, MapSample
from app.studies.tsne_jobs import Pending, TsneJobs, tsne_key
from app.web.deps import ModelDep, SettingsDep
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
    """A t-SNE map not computed yet."""

    model: str
    method: Literal["tsne"]
    n: int
    seed: int
    status: Literal["queued", "computing", "computing elsewhere"]
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


def images_to_map(model: ServedModel, settings: Settings, n: int) -> DatasetImages | None:
    """Where a map's n images come from (None: the model's own prior samples), once n is known
    to be a sample it can draw; nothing drawn or encoded yet."""
    if n > settings.max_map_points:
        raise InferenceError(f"n is {n:,}, the limit is {settings.max_map_points:,}")
    images = images_of(model, settings)
    try:
        latent_map.check_sample_size(model, images, n)
    except latent_map.SampleTooLargeError as e:
        raise NotInModelError(str(e)) from None
    return images


def _rounded(a: np.ndarray, decimals: int = 4) -> list[Any]:
    return np.round(a.astype(np.float64), decimals).tolist()


def colour_by(sample: MapSample) -> list[dict[str, Any]]:
    """What each point can be coloured by besides its latents: each ground-truth factor (the
    categorical one with its class names), or the test split's class."""
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
        else f"/api/models/{name}/dataset/{{index}}.png",
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
    request: Request, model: ModelDep, settings: SettingsDep,
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
    then."""
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
        body = MapPending(
            model=model.name, method="tsne", n=n, seed=seed, status=result.state,  # type: ignore[arg-type]
            detail=result.detail(n), retry_after=RETRY_AFTER,
        )  # fmt: skip
        return Response(
            body.model_dump_json(),
            status_code=202,
            media_type="application/json",
            headers={"Retry-After": str(RETRY_AFTER), "Cache-Control": "no-store"},
        )
    # the sample is the job's, still in memory (a map read from disk encodes it here once)
    return _map_response(
        request, model, ("map", "tsne", n, seed, used, dataset),
        lambda: map_json(model, sample_for(model, settings, n, seed), result, method, seed),
    )  # fmt: skip
