"""A model's scores on any served data set (`data=NAME`): GET /api/models/{name}/scores as JSON,
and the htmx fragment the model's card page loads. The disentanglement metrics over the set's
factor columns, a linear probe of each categorical column and the ELBO read at μ come from the
set's kept encoding; the ELBO and the importance-weighted bound from its held-out images encoded
again. Everything is computed in the background (app.studies.set_scores): 202 with where it
stands until all of it is kept, then 200.

The handlers are plain `def`s: FastAPI runs them on its thread pool (finding a kept encoding
reads a Parquet file)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from app.checkpoints.served import ServedModel
from app.inference import InferenceError, SetImages
from app.metrics.evaluate import EvaluationError
from app.metrics.set_scores import METRIC_LABELS, SetScoreSettings
from app.settings import Settings
from app.studies.set_scores import PartStatus, SetScores, set_scores
from app.web.datasets import picker
from app.web.deps import DataDep, DataPick, ModelDep, SettingsDep, TemplatesDep
from app.web.errors import DATA_UNAVAILABLE, NotInModelError
from app.web.inputs import images_of

router = APIRouter(tags=["scores"])

RETRY_AFTER = 5  # seconds between polls while anything is computing
MAX_K = 10_000  # draws of q(z|x) per image a request may ask for
MAX_IMAGES = 10_000  # held-out images a request may ask the bound of


async def get_score_settings() -> SetScoreSettings:
    """How a model is scored on a set (tests override this with smaller samples)."""
    return SetScoreSettings()


ScoreSettingsDep = Annotated[SetScoreSettings, Depends(get_score_settings)]
KQuery = Annotated[
    int | None,
    Query(ge=1, le=MAX_K, description="draws of q(z|x) per image for the bound L_k (default "
          "1,000)"),
]  # fmt: skip
ImagesQuery = Annotated[
    int | None,
    Query(ge=1, le=MAX_IMAGES, description="at most this many held-out images get the bound "
          "(a seeded subset where there are more; default 500)"),
]  # fmt: skip


# --- the response ------------------------------------------------------------------------------


class Stage(BaseModel):
    state: Literal["queued", "running", "done", "failed", "none"]
    fraction: float = Field(description="share done while running")
    detail: str = Field(description="where it stands, or why it failed or does not apply")


class FactorUsed(BaseModel):
    name: str
    kind: Literal["categorical", "ordered"]
    classes: int = Field(description="classes the metrics see")
    how: str = Field(description="how the column's values became classes")
    train: int = Field(description="training images that have its value")
    test: int = Field(description="test images that have its value")
    skipped: str | None = Field(default=None, description="why it was not scored")


class Score(BaseModel):
    value: float | None = Field(description="None where it is undefined (modularity of one factor)")
    per_factor: dict[str, float | None] | None = None
    settings: str = Field(description="estimator, images, split and seeds, in words")


class Disentanglement(BaseModel):
    factors: list[FactorUsed]
    scores: dict[str, Score] = Field(
        description="mig, dci_et_*, sap_tree, modularity, explicitness"
    )
    left_out: dict[str, str] = Field(description="scores not computed on a data set, and why")
    note: str | None = Field(default=None, description="why no score applies, where none does")
    mi_matrix: list[list[float]] | None = Field(default=None, description="(latents, factors) nats")
    train: int
    test: int


class Probe(BaseModel):
    column: str
    role: Literal["factor", "attribute"]
    classes: int
    images: int
    mean: float | None = Field(description="held-out accuracy, mean over folds")
    std: float | None = Field(description="its std over folds")
    converged: bool | None
    chance_majority: float | None = Field(description="always guessing the most common class")
    chance_uniform: float = Field(description="one over the classes present")
    skipped: str | None = Field(default=None, description="why it could not be probed")


class Probes(BaseModel):
    images: int
    rows: str = Field(description="which images were probed")
    settings: str
    columns: list[Probe]
    note: str | None = Field(default=None, description="a CVAE's: what its μ is encoded given")


class Estimate(BaseModel):
    mean: float = Field(description="nats per image (a log-likelihood: higher is better)")
    se: float = Field(description="standard error over images, nats")
    bits_per_dim: float
    bits_per_dim_se: float
    estimator: str


class EncodingElbo(Estimate):
    images: int
    dims_note: str
    reconstruction: float = Field(description="mean log p(x | z = μ), nats")
    kl: float = Field(description="mean KL(q(z|x) ‖ N(0, I)), nats")


class Likelihood(BaseModel):
    images: int
    rows: str = Field(description="which images were scored, and in what sense held out")
    likelihood: str
    k: int
    dims: int
    dims_note: str
    elbo: Estimate
    bound: Estimate
    reconstruction: float
    kl: float
    conditioning: str | None = None
    wall_time_s: float


class SetScoresBody(BaseModel):
    """A model's scores on a data set; `status` "computing" (a 202) until every part is kept."""

    model: str
    data: str
    images: int = Field(description="images in the data set")
    status: Literal["computing", "done"]
    retry_after: int | None = Field(description="seconds to wait before asking again")
    encoding: Stage
    scores_stage: Stage = Field(description="the metrics, probes and ELBO at μ")
    likelihood_stage: Stage = Field(description="the ELBO and L_k on re-encoded images")
    disentanglement: Disentanglement | None = None
    probes: Probes | None = None
    encoding_elbo: EncodingElbo | None = None
    likelihood: Likelihood | None = None
    held_out: str | None = Field(default=None, description="the images scored as held out")
    reconstructions: str = Field(description="URL of the set's reconstructions grid")


SCORE_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "model": SetScoresBody,
        "description": "Accepted: the set's encoding or its scores are being computed; ask "
        "again after Retry-After (the parts already kept are in the body)",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
    },
    **DATA_UNAVAILABLE,
}


def _stage(p: PartStatus) -> Stage:
    return Stage(state=p.state, fraction=round(p.fraction, 4), detail=p.detail)


def scores_body(model: ServedModel, found: SetScores) -> SetScoresBody:
    part = found.scores.result or {}
    done = found.done
    name, data = quote(model.name, safe=""), quote(found.data, safe="")
    dis, probes, elbo = (part.get(k) for k in ("disentanglement", "probes", "encoding_elbo"))
    result = found.likelihood.result
    return SetScoresBody(
        model=found.model, data=found.data, images=found.images,
        status="done" if done else "computing", retry_after=None if done else RETRY_AFTER,
        encoding=_stage(found.encoding), scores_stage=_stage(found.scores),
        likelihood_stage=_stage(found.likelihood),
        disentanglement=None if dis is None else Disentanglement.model_validate(dis),
        probes=None if probes is None else Probes.model_validate(probes),
        encoding_elbo=None if elbo is None else EncodingElbo.model_validate(elbo),
        likelihood=None if result is None else Likelihood.model_validate(result),
        held_out=part.get("held_out"),
        reconstructions=f"/api/models/{name}/reconstructions.png?data={data}",
    )  # fmt: skip


def _scores(
    model: ServedModel, settings: Settings, data: DataPick, s: SetScoreSettings
) -> SetScores:
    images = images_of(model, settings, data)
    if not isinstance(images, SetImages):
        served = ", ".join(data.sets) or "none"
        # the model's own images are not a data set here: nothing to find (a 404, as for any
        # request the schema calls valid that names what the model has not)
        raise NotInModelError(
            f"name the data set to score model {model.name} on with data=NAME (served: "
            f"{served}); its scores on its own ground truth or test split are its card's "
            "(latent-explorer evaluate)"
        )
    try:
        return set_scores(model, images.set, settings.cache_dir, s)
    except EvaluationError as e:
        raise InferenceError(str(e)) from None


def _settings(s: SetScoreSettings, k: int | None, images: int | None) -> SetScoreSettings:
    return dataclasses.replace(
        s, k=s.k if k is None else k,
        likelihood_images=s.likelihood_images if images is None else images,
    )  # fmt: skip


@router.get("/api/models/{name}/scores", response_model=SetScoresBody, responses=SCORE_RESPONSES)
def set_scores_json(
    model: ModelDep, settings: SettingsDep, data: DataDep, base: ScoreSettingsDep,
    k: KQuery = None, images: ImagesQuery = None,
) -> Response:  # fmt: skip
    """A model judged on a served data set: MIG, DCI, SAP, modularity and explicitness over the
    set's factor columns (none for a set of attributes only: said in `note`; β-VAE and
    FactorVAE left out, saying why), a linear probe of each categorical column from μ, the
    ELBO read at μ, and the ELBO and importance-weighted bound L_k with standard errors and
    bits/dim on its held-out images (its test split, else a seeded 20%). Each with its
    settings. Computed once per weights, set content and settings in the background: 202 with
    Retry-After while anything is being computed, the finished parts in the body."""
    found = _scores(model, settings, data, _settings(base, k, images))
    body = scores_body(model, found)
    if body.status == "done":
        return Response(body.model_dump_json(), media_type="application/json")
    return Response(
        body.model_dump_json(),
        status_code=202,
        media_type="application/json",
        headers={"Retry-After": str(RETRY_AFTER), "Cache-Control": "no-store"},
    )


@router.get("/ui/{name}/scores", response_class=HTMLResponse, include_in_schema=False)
def set_scores_partial(
    request: Request, model: ModelDep, settings: SettingsDep, data: DataDep,
    templates: TemplatesDep, base: ScoreSettingsDep, k: KQuery = None,
    images: ImagesQuery = None,
) -> HTMLResponse:  # fmt: skip
    """htmx: the scores on the data set the card page names (`data=NAME`), with the data set
    picker; it asks again every few seconds while anything is being computed."""
    query = {"data": data.name} if data.name else {}
    query |= {"k": str(k)} if k is not None else {}
    query |= {"images": str(images)} if images is not None else {}
    context: dict[str, Any] = {
        "name": model.name,
        "picker": picker(data, f"/models/{quote(model.name, safe='')}", {}, "none chosen"),
        "self_url": f"/ui/{quote(model.name, safe='')}/scores",
        "query": query,
        "labels": METRIC_LABELS,
        "body": None,
        "error": None,
        "retry_after": RETRY_AFTER,
    }
    if data.name:
        try:
            context["body"] = scores_body(
                model, _scores(model, settings, data, _settings(base, k, images))
            )
        except InferenceError as e:
            context["error"] = str(e)
    return templates.TemplateResponse(request, "partials/set_scores.html", context)
