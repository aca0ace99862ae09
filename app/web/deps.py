"""Dependencies as Annotated aliases, so handlers read `def decode(model: ModelDep, ...)`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.templating import Jinja2Templates

from app.checkpoints.served import ServedModel
from app.inference import DataSets, InferenceError, ground_truth_of, largest_set
from app.quoting import quoted
from app.settings import Settings
from app.web.errors import NotFoundError


# async: trivial dependencies run on the event loop instead of hopping to the thread pool
async def get_registry(request: Request) -> Mapping[str, ServedModel]:
    return request.app.state.registry


async def get_templates(request: Request) -> Jinja2Templates:
    return request.app.state.templates


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


RegistryDep = Annotated[Mapping[str, ServedModel], Depends(get_registry)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_model(
    registry: RegistryDep,
    name: Annotated[
        str,
        # the schema lists the served models (app/web/openapi.py); any other name is a 404
        Path(description="a model name from /api/models", json_schema_extra={"x-model-name": True}),
    ],
) -> ServedModel:
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(registry) or "none"
        raise NotFoundError(f"unknown model {quoted(name)}; available: {known}") from None


ModelDep = Annotated[ServedModel, Depends(get_model)]


async def get_datasets(request: Request) -> DataSets:
    return request.app.state.datasets


DataSetsDep = Annotated[DataSets, Depends(get_datasets)]


@dataclass(frozen=True)
class DataPick:
    """The data sets the server offers, and the one a request views the model's images on:
    `name` None for the model's own (app.inference.dataset_images_of)."""

    sets: DataSets
    name: str | None = None

    @property
    def query(self) -> dict[str, str]:
        """What a link keeps of the pick: {"data": name}, or nothing for the model's own."""
        return {"data": self.name} if self.name else {}


async def get_data(
    sets: DataSetsDep,
    data: Annotated[
        str | None,
        Query(
            description="view the model on this data set from /api/datasets, each image "
            "fitted to its input; absent or empty: the model's own dataset images",
            # the schema lists the served sets (app/web/openapi.py); any other is a 404
            json_schema_extra={"x-data-set": True},
        ),
    ] = None,
) -> DataPick:
    if not data:
        return DataPick(sets)
    if data not in sets:
        raise NotFoundError(f"unknown data set {quoted(data)}; served: {', '.join(sets) or 'none'}")
    return DataPick(sets, data)


DataDep = Annotated[DataPick, Depends(get_data)]


async def refuse_empty_fields(request: Request) -> None:
    """An API form field sent empty is refused, not read as absent: FastAPI would give it its
    default, and the schema lists no empty string among any field's values. Fields the route
    does not take are ignored, as the schema allows."""
    fields = {f.alias for f in request.scope["route"].dependant.body_params}
    form = await request.form()  # already parsed for the route's own fields: cached
    empty = sorted({name for name, value in form.multi_items() if value == "" and name in fields})
    if empty:
        raise InferenceError(f"form field {empty[0]!r} is empty: leave it out to take its default")


NoEmptyFields = Depends(refuse_empty_fields)


def latent_limit(ckpt: ServedModel, settings: Settings) -> float:
    """How far from 0 a latent value of this model may lie: the N(0, I) prior's ±10 for a VAE
    (MAX_ABS_LATENT); anywhere short of absurd (MAX_ABS_CODE) for an AE, whose codes have no
    prior to be far outside of, and for a model that owns another prior (a VampPrior), which
    lies wherever its encoder put its components."""
    if ckpt.description.kind == "ae" or ckpt.prior.kind != "normal":
        return settings.max_abs_code
    return settings.max_abs_latent


@dataclass(frozen=True)
class Served:
    """What the served models accept between them: the bounds /openapi.json states. A request
    outside them is malformed for every model (422); one inside them that the named model cannot
    answer (fewer latents, a narrower range, no such class or dataset image) is its 404."""

    latent_dims: tuple[int, int]  # (fewest, most) latents of a served model
    latent_limit: float  # the widest |z_i| a served model accepts
    n_labels: int  # the most classes of a served CVAE; 0 without one
    # the most images a served model's dataset can draw, or a served data set holds (any model
    # views any set: `data=NAME`); 0: none can
    dataset_images: int
    image_sizes: tuple[int, ...]  # every served model's image side, ascending
    data_sets: tuple[str, ...] = ()  # the served data sets' names


def served_facts(
    registry: Mapping[str, ServedModel], settings: Settings, sets: DataSets | None = None
) -> Served:
    models = list(registry.values())
    dims = [m.description.latent_dim for m in models] or [0]
    drawable = [t.n_images for m in models if (t := ground_truth_of(m))]
    if models and sets:
        drawable.append(largest_set(sets))
    return Served(
        latent_dims=(min(dims), max(dims)),
        latent_limit=max((latent_limit(m, settings) for m in models), default=0.0),
        n_labels=max(
            (m.description.n_labels for m in models if m.description.kind == "cvae"), default=0
        ),
        dataset_images=max(drawable, default=0),
        image_sizes=tuple(sorted({m.description.image_size for m in models})),
        data_sets=tuple(sets or ()),
    )


async def get_served(registry: RegistryDep, settings: SettingsDep, sets: DataSetsDep) -> Served:
    return served_facts(registry, settings, sets)


ServedDep = Annotated[Served, Depends(get_served)]
