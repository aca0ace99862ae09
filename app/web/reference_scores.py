"""disentanglement_lib's scores of a model of ground-truth data whose card lacks them,
computed in the server's background (app/studies/reference_scores.py): GET
/api/models/{name}/reference-scores as JSON (202 with where it stands while the boosted trees
grow, then 200), and the htmx fragment the model's card page loads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse

from app.checkpoints.served import ServedModel
from app.inference import ground_truth_of
from app.studies.reference_scores import (
    REFERENCE,
    ReferenceSettings,
    needs_reference,
    reference_scores,
)
from app.web.deps import ModelDep, SettingsDep, TemplatesDep
from app.web.errors import NotInModelError

router = APIRouter(tags=["scores"])

RETRY_AFTER = 5  # seconds between polls while the scores are computed


async def get_reference_settings(settings: SettingsDep) -> ReferenceSettings:
    """How many images the background scores are computed on (the settings'
    `reference_points`, the library's 10,000 by default)."""
    n = settings.reference_points
    return ReferenceSettings(points=n, test_points=n // 2)


ReferenceSettingsDep = Annotated[ReferenceSettings, Depends(get_reference_settings)]


def _body(model: ServedModel, settings: SettingsDep, s: ReferenceSettings) -> dict[str, Any]:
    """Where the library's scores of `model` stand: from its card where it has them, else from
    the background computation (started here if nobody has started it)."""
    if ground_truth_of(model) is None:
        raise NotInModelError(
            f"model {model.name} was trained on {model.description.dataset!r}, which has no "
            "ground-truth factors: the disentanglement metrics do not apply"
        )
    if not needs_reference(model, True):
        metrics = model.card.metrics
        assert metrics is not None
        scores = {k: {"value": metrics.scores[k].mean, "settings": metrics.scores[k].settings}
                  for k in REFERENCE if k in metrics.scores}  # fmt: skip
        return {"status": "done", "source": "card", "fraction": 1.0, "detail": "",
                "scores": scores}  # fmt: skip
    status = reference_scores(model, settings.cache_dir, s)
    result = status.result or {}
    state = {"queued": "computing", "running": "computing"}.get(status.state, status.state)
    return {"status": state, "source": "background", "fraction": status.fraction,
            "detail": status.detail, "scores": result.get("scores"),
            "seed": result.get("seed"), "points": result.get("points"),
            "test_points": result.get("test_points")}  # fmt: skip


@router.get("/api/models/{name}/reference-scores", responses={202: {"description": "computing"}})
def reference_scores_json(
    model: ModelDep, settings: SettingsDep, s: ReferenceSettingsDep
) -> JSONResponse:
    """MIG, DCI, SAP, modularity and explicitness as disentanglement_lib computes them: the
    card's, or computed by this server in the background on evaluate's first seed (the
    library's DCI grows gradient-boosted trees for minutes): 202 with Retry-After and where it
    stands until then. A 404 for a model whose data has no ground-truth factors."""
    body = _body(model, settings, s)
    if body["status"] == "computing":
        headers = {"Retry-After": str(RETRY_AFTER), "Cache-Control": "no-store"}
        return JSONResponse(body, status_code=202, headers=headers)
    return JSONResponse(body)


@router.get("/ui/{name}/reference-scores", response_class=HTMLResponse, include_in_schema=False)
def reference_scores_partial(
    request: Request, model: ModelDep, settings: SettingsDep, templates: TemplatesDep,
    s: ReferenceSettingsDep,
) -> HTMLResponse:  # fmt: skip
    """htmx: the library's scores on the card page, asking again every few seconds while they
    are computed."""
    context = {"name": model.name, "b": _body(model, settings, s), "retry_after": RETRY_AFTER}
    return templates.TemplateResponse(request, "partials/reference_scores.html", context)
