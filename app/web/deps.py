"""Dependencies as Annotated aliases, so handlers read `def page(registry: RegistryDep)`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from app.checkpoints import Checkpoint


def get_registry(request: Request) -> Mapping[str, Checkpoint]:
    return request.app.state.registry


def get_templates(request: Request) -> Jinja2Templates:
    return request.app.state.templates


RegistryDep = Annotated[Mapping[str, Checkpoint], Depends(get_registry)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
