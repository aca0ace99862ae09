"""What the explore and compare pages put on screen first: which model, which z, and the range
of each latent's slider.

A VAE's latents live in its N(0, I) prior, so its sliders span ±3 (the β-VAE paper's
traversals). An AE has no prior: its codes lie wherever training put them (the shipped dSprites
AE's reach about ±18), so ±3 would leave most of the slider's track changing nothing. Its sliders
span its own codes over data instead: the 1st to 99th percentile of μ, per latent, over the
held-out images the card's figures come from (`eval.code_percentiles`, written by training), or
for a card without them over dataset images drawn with a fixed seed, once per model weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from app import inference
from app.checkpoints.served import ServedModel
from app.inference import (
    DatasetError,
    InferenceError,
    UnknownDataSet,
    dataset_images_of,
    ground_truth_of,
)
from app.settings import Settings
from app.studies.cache import SharedResults
from app.web.deps import DataPick

PRIOR_RANGE = 3.0  # a VAE's sliders span ±3σ of the prior, as the β-VAE paper's traversals do
PRIOR_STEP = 0.05
CODE_PERCENTILES = (1.0, 99.0)  # an AE's sliders: where 98% of its codes over data lie
CODE_IMAGES = 512  # dataset images encoded when the card lacks them (under a second, once)
CODE_SEED = 20261201  # not a training or evaluation stream
MAX_POSITIONS = 121  # slider positions an AE's step is chosen for (a VAE's ±3 / 0.05 has 121)


@dataclass(frozen=True)
class SliderRange:
    lo: float
    hi: float
    step: float

    @property
    def positions(self) -> int:
        return round((self.hi - self.lo) / self.step) + 1

    def clamp(self, v: float) -> float:
        return min(self.hi, max(self.lo, v))


PRIOR = SliderRange(-PRIOR_RANGE, PRIOR_RANGE, PRIOR_STEP)


def code_range(lo: float, hi: float) -> SliderRange:
    """[lo, hi] widened to whole steps of hundredths, with at most MAX_POSITIONS positions: the
    page writes z with two decimals, and a sweep strip's tiles must land on the slider's own
    positions for the drag to paint from it."""
    lo_h, hi_h = math.floor(lo * 100), math.ceil(hi * 100)
    step_h = max(round(PRIOR_STEP * 100), math.ceil((hi_h - lo_h) / (MAX_POSITIONS - 1)))
    lo_h = math.floor(lo_h / step_h) * step_h
    hi_h = math.ceil(hi_h / step_h) * step_h
    return SliderRange(lo_h / 100, hi_h / 100, step_h / 100)


_computed: SharedResults[list[SliderRange]] = SharedResults(size=64)


def slider_ranges(ckpt: ServedModel) -> list[SliderRange]:
    """One range per latent: the prior's ±3 for a VAE with N(0, I); for one that owns another
    prior (a VampPrior), the 1st to 99th percentile of that prior's marginal on each latent,
    within ±MAX_ABS_CODE (the widest a model with its own prior accepts: deps.latent_limit); an
    AE's own codes over data (falling back to ±3 when its data cannot be drawn)."""
    prior = ckpt.prior if ckpt.description.stochastic else None
    if prior is not None and prior.kind != "normal":
        lo, hi = prior.marginal_quantiles([p / 100 for p in CODE_PERCENTILES]).tolist()
        limit = Settings.model_fields["max_abs_code"].default
        return [code_range(max(a, -limit), min(b, limit)) for a, b in zip(lo, hi, strict=True)]
    if ckpt.description.kind != "ae" or ground_truth_of(ckpt) is None:
        return [PRIOR] * ckpt.description.latent_dim
    recorded = ckpt.card.code_percentiles
    d = ckpt.description.latent_dim
    if recorded is not None and len(recorded.lo) == len(recorded.hi) == d:
        return [code_range(a, b) for a, b in zip(recorded.lo, recorded.hi, strict=True)]
    # concurrent first requests compute it once
    return _computed.get((ckpt.name, ckpt.digest), lambda: _code_ranges(ckpt))


def _code_ranges(ckpt: ServedModel) -> list[SliderRange]:
    truth = ground_truth_of(ckpt)
    assert truth is not None
    classes = truth.sample_classes(np.random.default_rng(CODE_SEED), CODE_IMAGES)
    x = torch.from_numpy(truth.render(classes))
    with torch.inference_mode():
        mu = ckpt.model.encode(x).mean  # an AE: no label, no spread
    lo, hi = np.percentile(mu.numpy(), CODE_PERCENTILES, axis=0)  # (D,) each
    return [code_range(float(a), float(b)) for a, b in zip(lo, hi, strict=True)]


def shared_ranges(ckpts: list[ServedModel], limit: float | None = None) -> list[SliderRange]:
    """One set of sliders driving several models: each latent's range covers every model's,
    within `limit` (the smallest of the models' own: an AE's codes reach past where a VAE
    takes values, and a slider must never send a model a value it refuses)."""
    per_model = [slider_ranges(c) for c in ckpts]
    out = []
    for ranges in zip(*per_model, strict=True):
        lo, hi = min(r.lo for r in ranges), max(r.hi for r in ranges)
        if len(set(ranges)) == 1:
            out.append(ranges[0])
            continue
        if limit is None:
            out.append(code_range(lo, hi))
            continue
        shared = code_range(max(lo, -limit), min(hi, limit))
        # code_range widens to whole steps: a step back inside where that passed the limit
        inner_lo = shared.lo + shared.step if shared.lo < -limit else shared.lo
        inner_hi = shared.hi - shared.step if shared.hi > limit else shared.hi
        shared = SliderRange(round(inner_lo, 2), round(inner_hi, 2), shared.step)
        out.append(shared)
    return out


def slider_rows(
    ckpts: list[ServedModel], z: list[float], ranges: list[SliderRange]
) -> list[dict[str, Any]]:
    """One row per latent, in the first model's order (most KL first), with its range, a KL
    bar per model and its name (slider_name)."""
    per_model = []
    for ckpt in ckpts:
        kl: list[float | None] = [*ckpt.kl] or [None] * ckpt.description.latent_dim
        top = max((k for k in kl if k is not None), default=0.0) or 1.0
        per_model.append([
            {"kl": k, "bar": 0 if k is None else max(2, round(100 * k / top)),
             "active": k is None or k > 0.1}
            for k in kl
        ])  # fmt: skip
    return [
        {"dim": d, "value": z[d], "range": ranges[d], "bars": [bars[d] for bars in per_model],
         "active": any(bars[d]["active"] for bars in per_model),
         "name": slider_name([c.description.latent_name(d) for c in ckpts])}
        for d in inference.latent_order(ckpts[0])
    ]  # fmt: skip


def slider_name(names: list[str]) -> str:
    """What a slider is called besides z_i, from each model's name for its latent ("" where
    unnamed): the name where every model gives the same one; else each model's own, left then
    right ("left: hair colour · right: skin colour"), since one slider moves both models and
    neither name is the truth for the other."""
    if len(set(names)) == 1:
        return names[0]
    sides = ("left", "right") if len(names) == 2 else [f"model {k + 1}" for k in range(len(names))]
    return " · ".join(f"{side}: {n}" for side, n in zip(sides, names, strict=True) if n)


def landing_model(registry: Mapping[str, ServedModel], settings: Settings) -> str:
    """The model `/` opens on: the one the settings name (the disentangled dSprites model by
    default); if it is not served, the served model with the best MIG on its card; else the
    first."""
    if settings.default_model in registry:
        return settings.default_model

    def mig(name: str) -> float:
        metrics = registry[name].card.metrics
        score = metrics.scores.get("mig") if metrics is not None else None
        return score.mean if score is not None else -1.0

    return max(registry, key=mig)  # max keeps the first of equals: alphabetical order


@dataclass(frozen=True)
class Start:
    """Where a page starts when its URL names no z: a dataset image, encoded."""

    z: list[float]
    index: int | None  # the dataset image, None when the model has none to draw
    description: str  # what the image is, in words ("ellipse, scale 3/6, ...", "ankle boot")
    label: int | None
    noun: str = ""  # what one of its dataset's images is called ("Fashion-MNIST test image")


def landing_start(ckpt: ServedModel, settings: Settings, data: DataPick | None = None) -> Start:
    """The model's code of a typical dataset image (each factor at the middle of its range; a
    test split's first image; unless the settings name an image): the first picture is the
    model's reconstruction of a real sprite or garment, and every active latent's slider
    moves it. From z = 0 where the model has no dataset images or they are not installed."""
    sets, name = (data.sets, data.name) if data is not None else (None, None)
    try:
        images = dataset_images_of(ckpt, settings.fashion_mnist_dir, sets, name)
    except (DatasetError, UnknownDataSet):
        images = None  # the explore page says how to install them
    if images is None:
        return Start([0.0] * ckpt.description.latent_dim, None, "", None)
    if settings.landing_image is not None and 0 <= settings.landing_image < images.n_images:
        index = settings.landing_image
    else:
        index = images.default_index
    try:
        label = images.label(index) if ckpt.description.kind == "cvae" else None
        x = torch.from_numpy(images.image(index))[None]
    except InferenceError:  # a set without the CVAE's classes, an unreadable image
        return Start([0.0] * ckpt.description.latent_dim, None, "", None)
    mu = inference.encode_images(ckpt, x, label).mu[0]
    ranges = slider_ranges(ckpt)
    z = [round(r.clamp(v), 2) for r, v in zip(ranges, mu.tolist(), strict=True)]
    return Start(z, index, images.describe(index), label, images.noun)
