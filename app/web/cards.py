"""A model's card as rows a person reads on its page (/models/{name}): the metrics with their
settings, the test-split scores, the KL per latent as bars, what it started from and where it
came from, beside the training segments (app.web.card_training). Pure functions of the typed
card (and the served models' weight digests), so the template only lays rows out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.checkpoints.card import Estimate, Licence, ModelCard, Probe, TestSplitScores
from app.checkpoints.served import ServedModel
from app.inference import ground_truth_of, has_factors, has_test_split
from app.metrics.names import LABELS, VARIANTS
from app.models.elbo import ACTIVE_KL
from app.models.priors import MIXTURE_KL_NOTE, GaussianMixture
from app.studies.reference_scores import needs_reference
from app.web.card_training import (
    UNRECORDED,
    DeviceTotal,
    SegmentRow,
    device_totals,
    duration,
    lead,
    segment_rows,
)

BAR_WIDTH = 160  # px of the longest KL bar


@dataclass(frozen=True)
class MetricRow:
    key: str
    label: str
    mean: float
    std: float
    values: list[float]
    settings: str

    @property
    def variant(self) -> bool:
        """Ours, not the library's: never to be set beside a published figure."""
        return self.key in VARIANTS

    @property
    def shown(self) -> str:
        fmt = "{:.1f}" if self.key == "active_latents" else "{:.3f}"
        if len(self.values) == 1:  # one seed (the library's DCI): no spread to show
            return f"{fmt.format(self.mean)} (1 seed)"
        return f"{fmt.format(self.mean)} ± {fmt.format(self.std)}"


@dataclass(frozen=True)
class KlBar:
    dim: int
    kl: float
    width: float  # px, of BAR_WIDTH
    active: bool


@dataclass(frozen=True)
class Parent:
    """The checkpoint a run started from, and which served model (if any) has its weights."""

    name: str
    digest: str
    recipe: str
    steps: int | None
    path: str | None
    served_as: str | None


@dataclass(frozen=True)
class NamedLatent:
    dim: int
    name: str
    kl: float | None  # mean KL over held-out data, nats, where the card has it


@dataclass(frozen=True)
class HeldOutScores:
    """The card's "test_split" entry (`latent-explorer evaluate` on a model with a test split)
    as the page shows it: rows of (what, value, how), a caption saying on what, and the
    settings rows under the table."""

    rows: list[tuple[str, str, str]]
    caption: str
    details: list[tuple[str, str]]
    stale: bool


@dataclass(frozen=True)
class PriorView:
    """A prior other than N(0, I) as the card shows it: what it is, what its KL figures mean,
    and its pseudo-inputs' picture (a VampPrior's)."""

    described: str
    kl_note: str
    pseudo_inputs_url: str | None
    components: int


@dataclass
class CardView:
    name: str
    recipe: str
    settings: list[tuple[str, str]]
    summary: list[tuple[str, str]]
    lead: str | None
    segments: list[SegmentRow]
    totals: list[DeviceTotal]
    metrics: list[MetricRow]
    metrics_note: str | None
    metrics_stale: bool
    kl: list[KlBar]
    kl_measured_on: str | None  # where the KL was measured, when not the card's
    parent: Parent | None
    provenance: list[tuple[str, str]]
    repairs: list[str] = field(default_factory=list)
    names: list[NamedLatent] = field(default_factory=list)
    held_out: HeldOutScores | None = None
    prior: PriorView | None = None  # None: N(0, I)
    # a model of ground-truth data whose card lacks the library's scores: the page asks the
    # server for them (computed in its background)
    reference_pending: bool = False
    bar_width: int = BAR_WIDTH


def metric_rows(card: ModelCard) -> list[MetricRow]:
    scores = card.metrics.scores if card.metrics is not None else {}
    return [
        MetricRow(key, label, s.mean, s.std, list(s.values), s.settings)
        for key, label in LABELS.items()
        if (s := scores.get(key)) is not None
    ]


def _metrics_note(card: ModelCard, name: str, digest: str, dataset: str) -> tuple[str | None, bool]:
    """What the disentanglement metrics were computed on, whether they are stale, or why there
    are none. `dataset` is the model's (config.dataset): data without ground-truth factors has
    no disentanglement metrics to compute."""
    metrics = card.metrics
    if metrics is None and not has_factors(dataset):
        data = repr(dataset) if dataset else "its data"
        note = (f"the disentanglement metrics do not apply: {data} has no ground-truth factors "
                "to score the latents against")  # fmt: skip
        if has_test_split(dataset):
            note += "; the model is judged on its test split instead"
        return note, False
    if metrics is None:
        return f"not evaluated: run latent-explorer evaluate checkpoints/{name}", False
    parts = []
    if metrics.seeds:
        parts.append(f"mean ± std over seeds {', '.join(str(s) for s in metrics.seeds)}")
    if metrics.step is not None:
        parts.append(f"at step {metrics.step:,}")
    if metrics.factors:
        parts.append(f"factors {', '.join(metrics.factors)}")
    if metrics.wall_time_s:
        parts.append(f"evaluated in {duration(metrics.wall_time_s)}")
    stale = metrics.digest != digest
    if stale:
        parts.append(f"stale: computed on weights {metrics.digest[:12]}…, "
                     f"these are {digest[:12]}…")  # fmt: skip
    return "; ".join(parts) or None, stale


def _nats(score: Estimate) -> str:
    text = f"{score.mean:.2f} ± {score.se or 0.0:.2f} nats"
    if score.bits_per_dim is not None:
        text += f" · {score.bits_per_dim:.4f} bits/dim"
    return text


def _accuracy(probe: Probe) -> str:
    text = f"{probe.mean:.3f} ± {probe.std or 0.0:.3f}"
    return text if probe.converged else f"{text} (a fold's fit did not converge)"


def _likelihood_rows(entry: TestSplitScores) -> list[tuple[str, str, str]]:
    rows = []
    bound, elbo, k = entry.bound, entry.elbo, entry.k
    if bound is not None:
        what = f"log p(x) ≥ L_k, k = {k:,}" if k else "log p(x) ≥ L_k"
        rows.append((what, _nats(bound), bound.estimator or ""))
    if elbo is not None:
        how = elbo.estimator or ""
        if elbo.reconstruction is not None and elbo.kl is not None:
            how = (f"E_q log p(x|z) {elbo.reconstruction:.2f} − KL "
                   f"{elbo.kl:.2f} nats; {how}")  # fmt: skip
        rows.append(("ELBO", _nats(elbo), how))
    return rows


def _probe_rows(entry: TestSplitScores) -> list[tuple[str, str, str]]:
    rows = []
    if entry.probe is not None:
        how = entry.probe_settings or ""
        rows.append(("linear probe of the class from μ", _accuracy(entry.probe), how))
    if entry.probe_pixels is not None:
        how = "the baseline: what a linear read of the image itself gets"
        if entry.chance is not None:
            how += f"; chance {entry.chance:.2f}"
        rows.append(("the same probe on the raw pixels", _accuracy(entry.probe_pixels), how))
    return rows


def held_out_scores(card: ModelCard, digest: str) -> HeldOutScores | None:
    """The likelihood on the test split and the linear probes, or None where the card has no
    "test_split" entry (the page then shows no section at all)."""
    entry = card.test_split
    if entry is None:
        return None
    subset = entry.subset or entry.images
    caption = " ".join(f"{subset} {entry.dataset or ''} test images".split())
    if entry.step is not None:
        caption += f", at step {entry.step:,}"
    if entry.wall_time_s is not None:
        caption += f"; computed in {duration(entry.wall_time_s)}"
    if entry.date:
        caption += f" on {entry.date}"
    stale = entry.digest != digest
    if stale:
        caption += (f"; stale: computed on weights {entry.digest[:12]}…, these are "
                    f"{digest[:12]}…")  # fmt: skip
    details = [("likelihood", entry.likelihood or UNRECORDED)]
    if entry.conditioning:
        details.append(("conditioned on", entry.conditioning))
    if entry.dims_note:
        details.append(("dimensions counted in bits/dim", entry.dims_note))
    if entry.images is not None:
        details.append(("images", f"{entry.images:,}"))
    if entry.k:
        details.append(("k", f"{entry.k:,} samples of q(z|x) per image"))
    seeds = [f"{what} {seed}"
             for seed, what in ((entry.binarisation_seed, "binarisation"),
                                (entry.sampling_seed, "sampling"))
             if seed is not None]  # fmt: skip
    if seeds:
        details.append(("seeds", ", ".join(seeds)))
    rows = _likelihood_rows(entry) + _probe_rows(entry)
    return HeldOutScores(rows, caption, details, stale)


def prior_view(ckpt: ServedModel) -> PriorView | None:
    """What the card says of a model's own prior; None for N(0, I), which needs no words."""
    prior = ckpt.prior
    if not isinstance(prior, GaussianMixture):
        return None
    images = ckpt.pseudo_inputs
    return PriorView(
        described=prior.described,
        kl_note=MIXTURE_KL_NOTE,
        pseudo_inputs_url=None if images is None else f"/api/models/{ckpt.name}/pseudo-inputs.png",
        components=prior.components,
    )


def kl_bars(kl: list[float]) -> list[KlBar]:
    """One bar per latent, most KL first (the explore page's slider order), scaled to the
    largest."""
    top = max(kl, default=0.0) or 1.0
    order = sorted(range(len(kl)), key=lambda d: -kl[d])
    return [
        KlBar(d, float(kl[d]), round(max(1.0, BAR_WIDTH * kl[d] / top), 1), kl[d] > ACTIVE_KL)
        for d in order
    ]


def named_latents(ckpt: ServedModel) -> list[NamedLatent]:
    """The latents the card names (`latent-explorer label`), in index order, with their KL."""
    kl = ckpt.kl
    d = ckpt.description
    return [
        NamedLatent(i, d.latent_name(i), float(kl[i]) if i < len(kl) else None)
        for i in range(d.latent_dim)
        if d.latent_name(i)
    ]


def parent(card: ModelCard, served: Mapping[str, str]) -> Parent | None:
    """What the run was initialised from; `served` maps weight digests to served model names."""
    init = card.initialised_from
    if init is None:
        return None
    digest = init.digest or ""
    return Parent(
        name=init.name or UNRECORDED,
        digest=digest or UNRECORDED,
        recipe=init.recipe or UNRECORDED,
        steps=init.steps,
        path=init.path,
        served_as=served.get(digest) if digest else None,
    )


def _flat(prefix: str, value: Any) -> list[tuple[str, str]]:
    """A settings dict as ("key.subkey", "value") rows."""
    if isinstance(value, Mapping):
        rows = []
        for k, v in value.items():
            rows += _flat(f"{prefix}.{k}" if prefix else str(k), v)
        return rows
    if isinstance(value, list):
        return [(prefix, ", ".join(str(v) for v in value))]
    return [(prefix, f"{value:g}" if isinstance(value, float) else str(value))]


def _summary(card: ModelCard) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if card.steps is not None:
        steps = f"{card.steps:,}"
        if card.target_steps and card.target_steps != card.steps:
            steps += f" of {card.target_steps:,} asked for (resumable)"
        rows.append(("steps", steps))
    for value, label in ((card.batch_size, "batch"), (card.learning_rate, "learning rate"),
                         (card.seed, "seed"), (card.world_size, "processes")):  # fmt: skip
        if value is not None:
            rows.append((label, f"{value:.3g}" if isinstance(value, float) else str(value)))
    if card.images_seen:
        rows.append(("images seen", f"{card.images_seen:,}"))
    rows.append(("wall time, all segments", duration(card.wall_time_s)))
    ev = card.eval
    if ev is not None and ev.recon_nll is not None:
        held = f"{ev.eval_images:,} held-out images" if ev.eval_images else "held out"
        text = f"−log p(x|z) {ev.recon_nll:.1f} nats"
        if ev.kl_total is not None:
            text += f", KL {ev.kl_total:.1f} nats, −ELBO {ev.neg_elbo or 0:.1f}"
        rows.append((f"evaluation ({held})", text))
    if card.active_latents is not None:
        rows.append(("latents above 0.1 nats", str(card.active_latents)))
    return rows


def _provenance(ckpt: ServedModel, card: ModelCard, dataset: str) -> list[tuple[str, str]]:
    rows = [("weights (sha256)", ckpt.digest), ("dataset", dataset)]
    if card.renamed_from is not None:
        renamed = card.renamed_from
        rows.append(("shipped before as", f"{renamed.name}: {renamed.why}"))
    if card.run_dir:
        rows.append(("resumable run state", card.run_dir))
    rows += imported_from(card)
    rows.append(("licence", licence(card)))
    if card.data_licence:
        rows.append(("training data", card.data_licence))
    return rows


def _repairs(card: ModelCard) -> list[str]:
    return [
        r if isinstance(r, str) else f"{r.date}: {r.what} (from {r.from_ or '?'})"
        for r in card.repaired
    ]


def card_view(ckpt: ServedModel, served: Mapping[str, str], dataset: str) -> CardView:
    """Everything the model page shows of `ckpt`'s card. `served` maps the weight digests of
    the served models to their names (to say which one a parent is); `dataset` names the data
    as people know it."""
    card = ckpt.card
    rows = segment_rows(card)
    settings = _flat("", card.objective)
    if card.denoising is not None:
        settings += _flat("denoising", card.denoising.to_json())
    if card.vaegan:
        settings += _flat("vaegan", card.vaegan)
    note, stale = _metrics_note(card, ckpt.name, ckpt.digest, ckpt.description.dataset)
    totals = device_totals(rows)
    return CardView(
        name=ckpt.name,
        recipe=card.recipe or ckpt.description.kind,
        settings=settings,
        summary=_summary(card),
        lead=lead(card, totals) or imported_lead(card),
        segments=rows,
        totals=totals,
        metrics=metric_rows(card),
        metrics_note=note,
        metrics_stale=stale,
        kl=kl_bars(ckpt.kl),
        kl_measured_on=ckpt.kl_measured_on,
        parent=parent(card, served),
        provenance=_provenance(ckpt, card, dataset),
        repairs=_repairs(card),
        names=named_latents(ckpt),
        held_out=held_out_scores(card, ckpt.digest),
        prior=prior_view(ckpt),
        reference_pending=needs_reference(ckpt, ground_truth_of(ckpt) is not None),
    )


# --- models trained elsewhere (latent-explorer import) --------------------------------------


def imported_from(card: ModelCard) -> list[tuple[str, str]]:
    """Where an imported model was trained (the card's "source"): repository and folder, commit,
    the sha256 of the file it was converted from, and the day; nothing for our own models."""
    source = card.source
    if source is None:
        return []
    if source.plugin is not None and not source.repository:  # served from code, not imported
        return [("served by", f"plugin {source.plugin} (its code, loaded at start-up)")]
    where = source.repository or UNRECORDED
    if source.url:
        where += f" ({source.url})"
    if source.folder:
        where += f", {source.folder}"
    rows = [("trained by", where), ("commit", source.commit or UNRECORDED)]
    if source.model_pt_sha256:
        rows.append(("weights as published (sha256 of model.pt)", source.model_pt_sha256))
    rows.append(("imported", source.imported or UNRECORDED))
    return rows


def licence(card: ModelCard) -> str:
    """The licence in a line: its name and copyright lines (the full notice stays in card.json
    and README.md), a note where none was found, or a plain string as the card states it."""
    stated = card.licence
    if not isinstance(stated, Licence):
        return stated or "none stated in the card"
    if not stated.text:
        return stated.note or "none stated in the card"
    holders = "; ".join(stated.copyright)
    return f"{stated.name or 'see the notice'}: {holders} (full notice in card.json and README.md)"


def imported_lead(card: ModelCard) -> str | None:
    """The first sentence for an imported model: "Trained 30 epochs × 64 by
    YannDubs/disentangling-vae, imported 2026-12-01"."""
    source = card.source
    if source is None:
        return None
    if source.plugin is not None and not source.repository:
        return f"Served by the plugin {source.plugin}: a model of the person's own code"
    out = f"Trained {card.epochs} epochs" if card.epochs else "Trained"
    if card.batch_size:
        out += f" × {card.batch_size}"
    by = source.repository or "another project"
    return f"{out} by {by}, imported {source.imported or UNRECORDED}"
