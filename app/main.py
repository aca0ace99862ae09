"""`create_app(settings)`: the FastAPI application. The registry loads in the lifespan, never at
import, onto `app.state`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import torch
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp

from app.checkpoints import ServedModel
from app.data.sets import SET_NAME, DatasetError, DataSets, ImageSet, open_set, scan_sets
from app.metrics.names import LABELS as METRIC_LABELS
from app.registry import load_registry
from app.settings import Settings
from app.studies.set_encodings import measure_missing_kl
from app.web import (
    api,
    compare,
    compress,
    datasets,
    denoise,
    direction_compare,
    directions,
    errors,
    figure2,
    gallery,
    interpolate,
    latent_map,
    map_layouts,
    models_page,
    openapi,
    pages,
    reference_scores,
    security,
    selections,
    set_scores,
    sharpness,
    spatial,
)
from app.web.batching import DecodeBatcher


def load_data_sets(settings: Settings) -> DataSets:
    """The built-in sets (opened lazily: nothing is read yet), every folder of
    `settings.datasets_dir` (listed, no image opened; one that cannot be opened is logged and
    skipped) and the `serve --data` sets. A DatasetError in one line where a `--data` set cannot
    be opened or its name is taken: that stops the server, as a bad `--plugin` does."""
    found = scan_sets(settings.datasets_dir, fashion_root=settings.fashion_mnist_dir)
    return with_named_sets(
        found, [(f"--data {name}={path}", name, path) for name, path in settings.data.items()]
    )


def with_named_sets(
    found: DataSets, named: Iterable[tuple[str, str, str | Path | ImageSet]]
) -> DataSets:
    """`found` and the sets named by the person starting the server, each (how it was given,
    NAME, a folder, a built-in's name or a set already open): a DatasetError in one line, opening
    with how it was given, where one cannot be opened or its name is taken."""
    sets = dict(found)
    for given, name, spec in named:
        if not SET_NAME.fullmatch(name):
            raise DatasetError(
                f"{given}: a data set's name is letters, digits, '.', '_' or '-', the first a "
                "letter or digit"
            )
        if name in sets:
            where = sets[name].location
            raise DatasetError(f"{given}: a data set named {name!r} is already served ({where})")
        if isinstance(spec, ImageSet):
            sets[name] = spec
            continue
        try:  # a str may name a built-in; a Path is a folder
            sets[name] = open_set(spec, name=name)
        except DatasetError as e:  # its message opens with the folder, named here already
            what = str(e).removeprefix(f"{spec}: ").removeprefix(f"{Path(spec).resolve()}: ")
            raise DatasetError(f"{given}: {what}") from None
    return DataSets(sets, found.skipped)


class LatentExplorer(FastAPI):
    """FastAPI with the security headers outside everything, Starlette's own error middleware
    included: `add_middleware` puts a middleware inside ServerErrorMiddleware, so the plain 500
    that middleware answers with would otherwise go out without the headers."""

    def build_middleware_stack(self) -> ASGIApp:
        settings: Settings = self.state.settings
        return security.SecurityHeaders(
            super().build_middleware_stack(), security.security_headers(settings.frame_ancestors)
        )


def create_app(
    settings: Settings | None = None,
    models: Mapping[str, ServedModel] | None = None,
    data_sets: DataSets | None = None,
) -> FastAPI:
    """The application on `settings`. `models` and `data_sets`, where given, are served instead
    of the checkpoints folder and plugins, and instead of the data sets the settings name
    (latent_explorer.serve: models and sets already in memory); the lifespan runs the same."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threads = torch.get_num_threads()
        # one intra-op thread: the transposed convolutions are then batch-invariant (same z,
        # same bytes whatever a request was batched with), and concurrency comes from batching
        # and from worker processes instead
        torch.set_num_threads(settings.torch_threads)
        app.state.registry = (
            load_registry(settings.checkpoints_dir, settings.plugins) if models is None else models
        )
        app.state.datasets = load_data_sets(settings) if data_sets is None else data_sets
        # KL bars and latent order for models whose card has no KL, from their own data set
        app.state.measuring_kl = measure_missing_kl(
            app.state.registry, app.state.datasets, settings.cache_dir
        )
        app.state.batcher = DecodeBatcher(max_batch=settings.max_batch)
        yield
        app.state.registry = {}
        app.state.datasets = DataSets({})
        torch.set_num_threads(threads)

    app = LatentExplorer(
        title="latent-explorer",
        lifespan=lifespan,
        description="See what a variational autoencoder has learned.",
        docs_url=None,  # ours, served from /static: see app/web/security.py
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.templates = Jinja2Templates(directory=str(settings.templates_dir))
    app.state.templates.env.globals["metric_labels"] = METRIC_LABELS
    app.mount("/static", StaticFiles(directory=str(settings.static_dir)), name="static")
    errors.install(app, settings.max_upload_bytes)
    # outside the other middleware (add_middleware puts the last one added outermost): a request
    # for another host is refused before anything reads its body
    app.add_middleware(security.TrustedHosts, allowed=settings.allowed_hosts)
    app.include_router(api.router)
    app.include_router(datasets.router)
    app.include_router(pages.router)
    app.include_router(compare.router)
    app.include_router(models_page.router)
    app.include_router(interpolate.router)
    app.include_router(figure2.router)
    app.include_router(gallery.router)
    app.include_router(latent_map.router)
    app.include_router(selections.router)
    app.include_router(map_layouts.router)
    app.include_router(compress.router)
    app.include_router(denoise.router)
    app.include_router(denoise.pages)
    app.include_router(sharpness.router)
    app.include_router(sharpness.pages)
    app.include_router(directions.router)
    app.include_router(direction_compare.router)
    app.include_router(set_scores.router)
    app.include_router(reference_scores.router)
    app.include_router(spatial.router)
    app.include_router(security.router)
    openapi.install(app)  # /openapi.json from the routes and what is served, on first request
    return app
