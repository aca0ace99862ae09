"""HTML pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.web.api import model_summary
from app.web.deps import RegistryDep, TemplatesDep

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request, registry: RegistryDep, templates: TemplatesDep) -> HTMLResponse:
    models = [model_summary(ckpt) for ckpt in registry.values()]
    return templates.TemplateResponse(request, "index.html", {"models": models})
