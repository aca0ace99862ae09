"""Dependencies as Annotated aliases, so handlers read `def decode(model: ModelDep, ...)`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.templating import Jinja2Templates

from app.checkpoints import Checkpoint
from app.settings import Settings
from app.web.errors import NotFoundError


# async: trivial dependencies run on the event loop instead of hopping to the thread pool
async def get_registry(request: Request) -> Mapping[str, Checkpoint]:
    return request.app.state.registry


async def get_templates(request: Request) -> Jinja2Templates:
    return request.app.state.templates


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


RegistryDep = Annotated[Mapping[str, Checkpoint], Depends(get_registry)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_model(
    registry: RegistryDep, name: Annotated[str, Path(description="a model name from /api/models")]
) -> Checkpoint:
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(registry) or "none"
        raise NotFoundError(f"unknown model {name!r}; available: {known}") from None


ModelDep = Annotated[Checkpoint, Depends(get_model)]
