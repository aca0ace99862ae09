"""/models: every served model in one table, side by side: what it is, where it came from,
what it was trained on, and its key figures (latents in use, held-out −ELBO, the test split's
likelihood bound and probe, the disentanglement scores), sortable by any column. Built from the
typed cards; a figure a model has no measurement of is left blank and sorts last."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.checkpoints.served import ServedModel
from app.web.deps import RegistryDep, TemplatesDep

router = APIRouter(tags=["pages"], include_in_schema=False)

SortKey = Literal[
    "name", "kind", "origin", "dataset", "latents", "active", "steps", "neg_elbo", "bound",
    "probe", "mig", "dci", "dci_et", "sap", "sap_tree", "factor_vae",
]  # fmt: skip


@dataclass(frozen=True)
class Figure:
    """One cell: the number it sorts by and the text shown (with what it was measured on)."""

    value: float | None
    text: str
    title: str = ""  # the cell's tooltip: how it was measured


@dataclass(frozen=True)
class Heading:
    key: str
    label: str
    title: str  # what the column holds
    numeric: bool
    lower_is_better: bool = False


HEADINGS = (
    Heading("name", "model", "the served name; the link opens its card", False),
    Heading("kind", "kind", "network and objective", False),
    Heading("origin", "made", "trained here, imported, or a plugin", False),
    Heading("dataset", "trained on", "the data set its config names", False),
    Heading("latents", "latents", "size of z", True),
    Heading("active", "in use", "latents whose mean KL over held-out data exceeds 0.1 nats", True),
    Heading("steps", "steps", "optimiser steps its card records", True),
    Heading("neg_elbo", "−ELBO", "held-out −ELBO per image (nats) saved with the weights", True,
            lower_is_better=True),
    Heading("bound", "log p(x) ≥", "importance-weighted lower bound on log p(x) over the test "
            "split (nats per image; higher is better)", True),
    Heading("probe", "probe", "linear probe's test accuracy on μ (class)", True),
    Heading("mig", "MIG", "mutual information gap over the ground-truth factors, as "
            "disentanglement_lib computes it", True),
    Heading("dci", "DCI D", "DCI disentanglement over the ground-truth factors, as "
            "disentanglement_lib computes it (gradient boosting)", True),
    Heading("dci_et", "DCI D (extra trees)", "our faster DCI disentanglement: extra trees in "
            "place of gradient boosting; not to be set beside published figures", True),
    Heading("sap", "SAP", "SAP over the ground-truth factors, as disentanglement_lib computes it "
            "(LinearSVC, plain accuracy)", True),
    Heading("sap_tree", "SAP (tree)", "our SAP variant: a decision tree and chance-adjusted "
            "balanced accuracy; not to be set beside published figures", True),
    Heading("factor_vae", "FactorVAE", "FactorVAE score over the ground-truth factors (the "
            "library's estimator; its card says on how many votes)", True),
)  # fmt: skip


@dataclass(frozen=True)
class ModelRow:
    name: str
    cells: dict[str, Figure]


def _kind(model: ServedModel) -> str:
    cfg = model.description
    card = model.card
    if card.vaegan is not None:
        return "VAE-GAN"
    if card.denoising is not None:
        return "DAE"
    if cfg.kind == "ae":
        return "AE"
    if cfg.kind == "cvae":
        return "CVAE"
    if cfg.objective in ("btcvae", "tc"):
        return f"β-TCVAE β={cfg.beta:g}"
    if cfg.objective == "factor":
        return "FactorVAE"
    if cfg.objective == "capacity":
        return "β-VAE (controlled capacity)"
    if cfg.objective not in ("beta", "reconstruction"):
        return f"VAE ({cfg.objective})"
    return "VAE" if cfg.beta == 1 else f"β-VAE β={cfg.beta:g}"


def _origin(model: ServedModel) -> Figure:
    """Where the model came from, in a word; the tooltip says from where."""
    card = model.card
    if card.source is not None and card.source.plugin is not None:
        return Figure(None, "plugin", card.source.plugin)
    if card.imported:
        where = card.source.repository or card.source.folder if card.source else None
        return Figure(None, "imported", f"from {where}" if where else "")
    return Figure(None, "trained here")


def _number(value: float | None, fmt: str, title: str = "") -> Figure:
    return Figure(value, "" if value is None else fmt.format(value), title)


def model_row(model: ServedModel) -> ModelRow:
    cfg = model.description
    card = model.card
    ev = card.eval
    test = card.test_split
    scores = card.metrics.scores if card.metrics is not None else {}

    def score(key: str) -> Figure:
        s = scores.get(key)
        if s is None:
            return Figure(None, "")
        return Figure(s.mean, f"{s.mean:.3f}", s.settings)

    elbo_title = ""
    if ev is not None and ev.neg_elbo is not None:
        what = ev.images or "held-out images"
        elbo_title = f"{ev.eval_images:,} {what}" if ev.eval_images else what
    bound = test.bound if test is not None else None
    probe = test.probe if test is not None else None
    test_title = ""
    if test is not None:
        k = f", k = {test.k:,}" if test.k else ""
        n = f"{test.images:,}" if test.images else "?"
        test_title = f"{n} {test.dataset or ''} {test.split or 'test'} images{k}"
    cells = {
        "name": Figure(None, model.name),
        "kind": Figure(None, _kind(model)),
        "origin": _origin(model),
        "dataset": Figure(None, cfg.dataset or ""),
        "latents": _number(float(cfg.latent_dim), "{:.0f}"),
        "active": _number(
            None if card.active_latents is None else float(card.active_latents), "{:.0f}"
        ),
        "steps": _number(None if card.steps is None else float(card.steps), "{:,.0f}"),
        "neg_elbo": _number(ev.neg_elbo if ev is not None else None, "{:.1f}", elbo_title),
        "bound": _number(bound.mean if bound is not None else None, "{:.1f}", test_title),
        "probe": _number(probe.mean if probe is not None else None, "{:.3f}", test_title),
        "mig": score("mig"),
        "dci": score("dci_disentanglement"),
        "dci_et": score("dci_et_disentanglement"),
        "sap": score("sap"),
        "sap_tree": score("sap_tree"),
        "factor_vae": score("factor_vae"),
    }
    return ModelRow(model.name, cells)


def sorted_rows(rows: list[ModelRow], key: str, descending: bool) -> list[ModelRow]:
    """By one column; blanks last whichever the order. Text columns sort by text, the rest by
    number; ties keep the name order."""
    heading = next(h for h in HEADINGS if h.key == key)
    rows = sorted(rows, key=lambda r: r.name)
    known = [r for r in rows if (r.cells[key].value is not None or not heading.numeric)]
    blank = [r for r in rows if r not in known]
    if heading.numeric:
        known.sort(key=lambda r: r.cells[key].value or 0.0, reverse=descending)
    else:
        known.sort(key=lambda r: r.cells[key].text.lower(), reverse=descending)
    return known + blank


@router.get("/models", response_class=HTMLResponse)
def models_page(
    request: Request, registry: RegistryDep, templates: TemplatesDep,
    sort: Annotated[SortKey, Query(description="the column to sort by")] = "name",
    order: Annotated[Literal["asc", "desc"] | None, Query()] = None,
) -> HTMLResponse:  # fmt: skip
    """Every model with its data set and key figures, side by side."""
    heading = next(h for h in HEADINGS if h.key == sort)
    # numbers open best first: descending, or ascending where lower is better
    if order is None:
        order = "asc" if (not heading.numeric or heading.lower_is_better) else "desc"
    rows = sorted_rows([model_row(m) for m in registry.values()], sort, order == "desc")
    links = {h.key: _sort_link(h, sort, order) for h in HEADINGS}
    context = {"headings": HEADINGS, "rows": rows, "sort": sort, "order": order, "links": links}
    return templates.TemplateResponse(request, "models.html", context)


def _sort_link(heading: Heading, sort: str, order: str) -> str:
    if heading.key == sort:
        flipped = "desc" if order == "asc" else "asc"
        return "/models?" + urlencode({"sort": heading.key, "order": flipped})
    return "/models?" + urlencode({"sort": heading.key})
