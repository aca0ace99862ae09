"""Where a z lands on a finished map (`GET /api/models/{name}/map/place`), and the layouts of a
data set computed elsewhere and loaded from a file (`POST`/`GET /api/datasets/{dataset}/layouts`;
drawn by the map with `method=loaded&layout=NAME`). What a layout file must hold, and where it
is kept: app/studies/layout_files.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Path, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.inference import DatasetError, SetImages
from app.quoting import quoted
from app.settings import Settings
from app.studies import layouts
from app.studies.cache import SharedResults
from app.studies.latent_map import MapSample
from app.studies.layout_files import (
    LayoutExistsError,
    LoadedLayout,
    layout_store,
    parse_layout,
)
from app.studies.layout_jobs import Pending
from app.studies.layouts import Layout, NearestPlacer, PcaPlacer, Placer
from app.web.deps import DataDep, DataSetsDep, ModelDep, NoEmptyFields, ServedDep, SettingsDep
from app.web.errors import (
    DATA_UNAVAILABLE,
    NOT_FOUND,
    DataUnavailableError,
    ErrorBody,
    NotFoundError,
    NotInModelError,
)
from app.web.inputs import images_of, parse_latents
from app.web.latent_map import (
    DEFAULT_POINTS,
    LOADED_NEEDS_A_SET,
    WHOLE_NEEDS_A_SET,
    LayoutQuery,
    MapPending,
    MethodQuery,
    SplitQuery,
    _pending,
    computed_layout,
    images_to_map,
    loaded_layout,
    loaded_layout_file,
    past_own_images,
    sample_for,
    set_map_sample,
)
from app.web.params import LatentText
from app.web.uploads import upload_bytes

router = APIRouter(prefix="/api", tags=["latent map"])


# --- where a z lands on a map -----------------------------------------------------------------


class Placed(BaseModel):
    """Where a z lands on a map, and how it was placed."""

    x: float
    y: float
    how: Literal["pca", "transform", "nearest"] = Field(
        description="pca: the map's exact projection; transform: the layout method's own "
        "transform for new points (openTSNE, UMAP); nearest: the distance-weighted mean of the "
        "10 nearest map points' positions by μ"
    )
    about: str = Field(description="which it used and why, in a sentence")


PLACE_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "model": MapPending,
        "description": "Accepted: the map is being computed (or its data set encoded); ask "
        "again after Retry-After",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
    },
    **DATA_UNAVAILABLE,
}

ABOUT = {
    "pca": "PCA is exact: z lands at (z − mean)·componentsᵀ, the projection that placed every "
    "point of the map",
    "tsne": "placed by openTSNE's own transform: z's affinities to its nearest neighbours in μ, "
    "optimised against the fixed map",
    "umap": "placed by UMAP's own transform: z's fuzzy neighbours in μ, optimised against the "
    "fixed map",
    "loaded": "a layout computed elsewhere has no transform for a point it was not given: z "
    f"sits at the distance-weighted mean of the positions of the {layouts.NEAREST} map points "
    "whose μ lie nearest it",
}
REBUILT = " (rebuilt from the kept μ and positions: this server did not compute the map)"

_pca: SharedResults[Layout] = SharedResults(8)
_placers: SharedResults[Placer] = SharedResults(8)  # transforms rebuilt after a restart


@router.get("/models/{name}/map/place", response_model=Placed, responses=PLACE_RESPONSES)
def place_on_map(
    model: ModelDep, settings: SettingsDep, data: DataDep, served: ServedDep,
    z: LatentText,
    n: Annotated[
        int | None,
        Query(ge=2, description="the map's n (as GET /api/models/{name}/map, or map.bin for a "
              "data set's map)",
              json_schema_extra={"x-maximum": "max_binary_map_points"}),
    ] = None,
    method: MethodQuery = "pca",
    seed: Annotated[int, Query(ge=0, le=2**31 - 1, description="the map's seed")] = 0,
    perplexity: Annotated[
        float, Query(ge=2, le=100, description="the t-SNE map's perplexity")
    ] = 30.0,
    layout: LayoutQuery = None,
    split: SplitQuery = "test",
) -> Placed | Response:  # fmt: skip
    """Where `z` lands on the map that GET /api/models/{name}/map answers for the same
    parameters (the map's `marker.place` is this URL without `z`). PCA: the map's exact
    projection. t-SNE and UMAP: the method's own transform for new points (openTSNE's
    `TSNEEmbedding.transform`, `UMAP.transform`); after a server restart it is rebuilt once from
    the kept μ and positions (their nearest-neighbour index computed again: seconds for 20,000
    points), and where that cannot be done, the nearest neighbours' mean. A loaded layout: the
    distance-weighted mean of the 10 nearest map points by μ. The layout is the map's own
    background job: asking here for a map not computed yet starts it, exactly as asking for the
    map would (one computation for both), and answers 202 with Retry-After until it is done."""
    point = parse_latents(z, model, settings, "z", served).double().numpy()[None]  # (1, D)
    images = images_of(model, settings, data)
    source: str | None
    sample: MapSample | None
    loaded_file = None
    if isinstance(images, SetImages):
        if method == "loaded":
            loaded_file = loaded_layout_file(settings, images, layout)
        found = set_map_sample(model, settings, images, n, seed, method,
                               settings.max_binary_map_points, whole=split == "all")  # fmt: skip
        if isinstance(found, Response):
            return found
        sample, source = found[0], f"{images.name}:{found[1]}"
    else:
        if split == "all":  # valid by the schema, which cannot say that it needs a data set
            raise NotInModelError(WHOLE_NEEDS_A_SET.format(model=model.name))
        n = min(DEFAULT_POINTS, settings.max_map_points) if n is None else n
        if n > settings.max_map_points:
            raise past_own_images(model, settings, n)
        if method == "loaded":
            raise NotInModelError(LOADED_NEEDS_A_SET.format(model=model.name))
        held = images_to_map(model, settings, n)
        source = None if held is None else held.name
        sample = None
    if method == "pca":
        sample = sample or sample_for(model, settings, n or 0, seed)
        pca = _pca.get(
            (model.digest or id(model), source, sample.n, seed, "pca"),
            lambda: layouts.pca(sample.mu),
        )  # fmt: skip
        assert pca.mean is not None and pca.components is not None
        return _placed(PcaPlacer(pca.mean, pca.components), point, ABOUT["pca"])
    if method == "loaded":
        assert loaded_file is not None and sample is not None
        loaded, _ = loaded_layout(loaded_file, sample)
        return _placed(NearestPlacer(sample.mu, loaded.points), point, ABOUT["loaded"])
    size = sample.n if sample is not None else (n or 0)
    known = sample

    def mu() -> np.ndarray:
        return (known or sample_for(model, settings, size, seed)).mu

    key, result = computed_layout(model, settings, method, source, size, seed, perplexity, mu)
    if isinstance(result, Pending):
        return _pending(model, method, size, seed, result.state, result.detail(size))
    if result.placer is not None:
        how = result.placer.how  # a UMAP of 2 points is their PCA
        about = ABOUT[{"transform": method, "pca": "pca"}.get(how, "loaded")]
        return _placed(result.placer, point, about)
    try:
        placer = _placers.get(
            (model.digest or id(model), key), lambda: layouts.rebuilt_placer(method, mu(), result)
        )  # fmt: skip
    except (ValueError, RuntimeError, MemoryError) as e:  # the library could not rebuild it
        fallback = NearestPlacer(mu(), result.points)
        why = f"{method}'s transform could not be rebuilt after a restart ({str(e)[:120]})"
        return _placed(fallback, point, f"{ABOUT['loaded'].split(': ', 1)[1]}; {why}")
    return _placed(placer, point, ABOUT[method] + REBUILT)


def _placed(placer: Placer, point: np.ndarray, about: str) -> Placed:
    x, y = placer.place(point)[0]
    return Placed(x=float(x), y=float(y), how=placer.how, about=about)


# --- layouts computed elsewhere ---------------------------------------------------------------


class LayoutSummary(BaseModel):
    """A layout of a data set loaded from a file."""

    name: str
    data_set: str
    images: int = Field(description="the images it places (rows of the file)")
    set_images: int = Field(description="the images of the data set")
    covers: Literal["the test split", "all images"] = Field(
        description="the images a map of the set can show, each of which it places"
    )
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    created: str = Field(description="when it was loaded, ISO 8601 UTC")
    kept: Literal["disk", "memory"] = Field(
        description="disk: under the cache folder, for every server process and after a "
        "restart; memory: this process only (no cache folder is set)"
    )
    map_query: str = Field(description="what GET /api/models/{name}/map takes to draw it")


def _summary(layout: LoadedLayout, settings: Settings) -> LayoutSummary:
    low, high = layout.positions.min(axis=0), layout.positions.max(axis=0)
    return LayoutSummary(
        name=layout.name, data_set=layout.data_set, images=layout.rows,
        set_images=layout.set_size, covers=layout.covers,  # type: ignore[arg-type]
        x_range=(float(low[0]), float(high[0])), y_range=(float(low[1]), float(high[1])),
        created=layout.created, kept="memory" if settings.cache_dir is None else "disk",
        map_query=f"method=loaded&layout={layout.name}&data={layout.data_set}",
    )  # fmt: skip


DatasetPath = Annotated[
    str, Path(description="a data set from /api/datasets", json_schema_extra={"x-data-set": True})
]
LAYOUT_ERRORS: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    409: {
        "model": ErrorBody,
        "description": "Conflict: the data set has a layout of that name (send replace=true)",
    },
    **DATA_UNAVAILABLE,
}


def _digest(sets: Any, dataset: str) -> tuple[Any, str]:
    if dataset not in sets:
        raise NotFoundError(f"unknown data set {quoted(dataset)}; served: {', '.join(sets)}")
    image_set = sets[dataset]
    try:
        return image_set, image_set.content_digest()
    except DatasetError as e:
        raise DataUnavailableError(f"data set {dataset} cannot be read here: {e}") from None


@router.post(
    "/datasets/{dataset}/layouts", status_code=201, responses=LAYOUT_ERRORS,
    dependencies=[NoEmptyFields],
)  # fmt: skip
async def upload_layout(
    sets: DataSetsDep, settings: SettingsDep, dataset: DatasetPath,
    file: Annotated[
        UploadFile,
        File(description="Parquet or CSV with exactly the columns index, x, y: one row per "
             "image of the set, each image the map can show among them"),
    ],
    name: Annotated[
        str, Form(pattern=r"^[a-z0-9_-]{1,64}$", description="what method=loaded names it by")
    ],
    replace: Annotated[bool, Form(description="replace a layout of that name")] = False,
) -> LayoutSummary:  # fmt: skip
    """Load a layout of the data set computed elsewhere: 201 with its summary. Refused, in one
    line and with nothing kept: a file that is not Parquet or CSV, columns other than index,
    x, y, an index out of range or twice, a position not finite, an image the map can show
    without a position (422); a name the set's layouts have already (409, unless replace=true).
    Kept under the cache folder by the set's content digest (in memory where none is set)."""
    data = await upload_bytes(file, settings, "layout file")

    def load() -> LoadedLayout:
        image_set, digest = _digest(sets, dataset)
        layout = parse_layout(data, name, image_set, digest)
        try:
            layout_store(settings.cache_dir).save(layout, replace=replace)
        except LayoutExistsError as e:
            raise HTTPException(status_code=409, detail=str(e)) from None
        return layout

    return _summary(await run_in_threadpool(load), settings)


@router.get("/datasets/{dataset}/layouts", responses={**NOT_FOUND, **DATA_UNAVAILABLE})
def list_layouts(
    sets: DataSetsDep, settings: SettingsDep, dataset: DatasetPath
) -> list[LayoutSummary]:
    """The layouts loaded for the data set's images as they are now (a set whose images
    changed has none until one is loaded again), by name."""
    image_set, digest = _digest(sets, dataset)
    found = layout_store(settings.cache_dir).all(image_set, digest)
    return [_summary(layout, settings) for layout in found]
