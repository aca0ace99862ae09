"""Evaluate a checkpoint: active units and every disentanglement metric on fresh images of its
dataset's ground truth (app.data.ground_truth), over a few evaluation seeds, written into the
model's card.json under "metrics".

Each evaluation seed draws its own factor classes from `SeedSequence(EVALUATION_ENTROPY,
spawn_key=(seed,))`, a stream that cannot be any of training's `default_rng((seed, rank, step))`:
the images are new draws from the renderer, never the training batches, and the same seed always
gives the same images and the same numbers. Every code is the posterior mean μ (the AE's code),
and every factor counts (all five of dSprites', shape included). Settings shown beside each score
say the rest.
"""

from __future__ import annotations

import logging
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from tqdm import tqdm

from app.checkpoints import CARD, ModelCard, load_checkpoint
from app.checkpoints.card import Metrics
from app.checkpoints.card_file import update_card
from app.checkpoints.served import ServedModel
from app.data.ground_truth import GroundTruth, ground_truth
from app.metrics import reference, scores
from app.metrics.names import METRICS
from app.models.elbo import ACTIVE_KL
from app.models.priors import prior_kl

log = logging.getLogger(__name__)

# Scores under the papers' names are computed as disentanglement_lib computes them
# (app/metrics/reference.py); our faster variants keep names of their own (app/metrics/names.py)
DCI = ("disentanglement", "completeness", "informativeness")
REFERENCE_DCI = {f"dci_{k}" for k in DCI}
FAST_DCI = {f"dci_et_{k}" for k in DCI}
# The evaluation stream's entropy: 24 bytes (six 32-bit words) where training's streams are
# three small words (seed, rank, step), so no training batch can ever be drawn here.
EVALUATION_ENTROPY = int.from_bytes(b"latent-explorer evaluate", "big")
ENCODE_BATCH = 500  # images rendered and encoded at a time
TEST_SETS = REFERENCE_DCI | FAST_DCI | {"sap", "sap_tree", "explicitness"}


class EvaluationError(Exception):
    """A checkpoint that cannot be evaluated as asked, with a message that says why."""


@dataclass(frozen=True)
class EvaluationSettings:
    """How much to draw per evaluation seed. The defaults follow disentanglement_lib's (10,000
    train / 5,000 test points, 64 images per β-VAE/FactorVAE point) except the β-VAE and
    FactorVAE point counts: the library's 15,000 points of 128 (or 64) images are 2.9 M images
    per seed, ~30 min on our 2-core machine; ours are 106,000, as a budget of 3 minutes for all
    metrics of a model allows (`evaluate --library-sizes` takes the library's). The library's
    DCI, its gradient boosting ~6 min per seed here, runs on the first seed only."""

    seeds: tuple[int, ...] = (0, 1, 2)
    points: int = 10_000  # images for MIG, active units, modularity and the classifiers' training
    test_points: int = 5_000  # held-out images for DCI, SAP and explicitness
    bins: int = 20  # histogram bins per latent for the mutual information (MIG, modularity)
    beta_vae_points: tuple[int, int] = (300, 150)  # train, eval (library: 10,000, 5,000)
    factor_vae_votes: tuple[int, int] = (500, 250)  # train, eval (library: 10,000, 5,000)
    pairs: int = 64  # image pairs per β-VAE point, images per FactorVAE vote (library: 64)
    only: tuple[str, ...] = field(default=METRICS)  # which scores to compute

    def __post_init__(self) -> None:
        unknown = [m for m in self.only if m not in METRICS]
        if unknown or not self.only:
            raise EvaluationError(
                f"unknown metric {', '.join(unknown) or '(none given)'}: choose from "
                + ", ".join(METRICS)
            )
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise EvaluationError(f"seeds must be one or more integers ≥ 0, got {self.seeds}")
        if self.points < 100 or self.test_points < 50:
            raise EvaluationError("points must be ≥ 100 and test points ≥ 50")
        if min(*self.beta_vae_points, *self.factor_vae_votes) < 1 or self.pairs < 2:
            raise EvaluationError("β-VAE points and FactorVAE votes must be ≥ 1, pairs ≥ 2")


# --- encoding fresh images ------------------------------------------------------------------


def require_ground_truth(ckpt: ServedModel) -> GroundTruth:
    """The ground truth of the model's training data, or EvaluationError saying there is none."""
    cfg = ckpt.description
    truth = ground_truth(cfg.dataset)
    if truth is None:
        raise EvaluationError(
            f"{ckpt.name}: the model was trained on {cfg.dataset!r}, whose images have no known "
            "factors; the metrics need a dataset drawn from ground-truth factors (dSprites)"
        )
    if cfg.factor_names and tuple(cfg.factor_names) != truth.factor_names:
        raise EvaluationError(
            f"{ckpt.name}: factors {list(cfg.factor_names)} are not {truth.name}'s "
            f"{list(truth.factor_names)}"
        )
    if cfg.shape != truth.shape:
        raise EvaluationError(
            f"{ckpt.name}: the model takes {'×'.join(map(str, cfg.shape))} images, {truth.name} "
            f"has {'×'.join(map(str, truth.shape))}"
        )
    return truth


class ImageEncoder:
    """Render factor classes with the model's ground truth and encode them to μ, in batches,
    counting images on a progress bar if given one. The next batch is rendered on a second thread
    while this one is encoded (numpy releases the GIL). A CVAE's encoder is given each image's
    true label factor (dSprites: its shape).

    `channels_last=True` switches the model to channels-last layout in place: ~1.2× faster
    convolutions on CPU, the same results to float rounding — for the evaluate CLI, not for a
    served model, whose decoded bytes must not change."""

    def __init__(
        self, ckpt: ServedModel, bar: tqdm | None = None, *, channels_last: bool = False,
        batch_size: int = ENCODE_BATCH,
    ) -> None:  # fmt: skip
        self.truth = require_ground_truth(ckpt)
        self.model = ckpt.model
        self.prior = ckpt.prior
        if channels_last and isinstance(self.model, torch.nn.Module):
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.channels_last, self.batch_size = channels_last, batch_size
        self.cvae, self.bar = ckpt.description.kind == "cvae", bar

    def __call__(self, classes: np.ndarray) -> np.ndarray:
        """(N, K) classes → μ (N, D) float64."""
        return self.encode(classes)[0]

    @torch.inference_mode()
    def encode(self, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, K) classes → μ (N, D) float64 and each image's KL per latent (N, D) float64
        (None for the AE, which has no posterior)."""
        n = self.batch_size
        chunks = [classes[i : i + n] for i in range(0, len(classes), n)]
        mus, kls = [], []
        with ThreadPoolExecutor(max_workers=1) as renderer:
            ahead = renderer.submit(self.truth.render, chunks[0])
            for k, c in enumerate(chunks):
                images = ahead.result()
                if k + 1 < len(chunks):
                    ahead = renderer.submit(self.truth.render, chunks[k + 1])
                x = torch.from_numpy(images)  # (B, C, H, W)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                label = c[:, self.truth.label_factor]
                labels = torch.from_numpy(label) if self.cvae else None
                posterior = self.model.encode(x, labels)  # (B, D); no log σ² for the AE
                if posterior.logvar is not None:
                    kl = prior_kl(posterior.mean, posterior.logvar, self.prior)
                    kls.append(kl.per_latent.double().numpy())
                mus.append(posterior.mean.double().numpy())
                if self.bar is not None:
                    self.bar.update(len(c))
        return np.concatenate(mus), (np.concatenate(kls) if kls else None)


# --- one seed -------------------------------------------------------------------------------


def _images_per_seed(s: EvaluationSettings) -> int:
    n = s.points + (s.test_points if TEST_SETS & set(s.only) else 0)
    if "beta_vae" in s.only:
        n += sum(s.beta_vae_points) * s.pairs * 2
    if "factor_vae" in s.only:
        n += sum(s.factor_vae_votes) * s.pairs + s.points  # and its variance estimate
    return n


def one_seed(
    ckpt: ServedModel, encode: ImageEncoder, seed: int, s: EvaluationSettings,
    stage: Callable[[str], None], first: bool = True,
) -> tuple[dict[str, float], np.ndarray]:  # fmt: skip
    """→ ({score name: value}, MI matrix (D, K) in nats) for one evaluation seed; the library's
    DCI only when it is the `first` seed."""
    # separate streams per use, so `only` never changes the images another score sees
    pool_seq, test_seq, beta_seq, factor_seq, fit_seq = np.random.SeedSequence(
        EVALUATION_ENTROPY, spawn_key=(seed,)
    ).spawn(5)
    want, out = set(s.only), {}
    stage("images")
    sample_classes = encode.truth.sample_classes
    factors = sample_classes(np.random.default_rng(pool_seq), s.points)
    codes, kl = encode.encode(factors)
    if want & TEST_SETS:
        factors_test = sample_classes(np.random.default_rng(test_seq), s.test_points)
        codes_test = encode(factors_test)
    if "active_latents" in want and kl is not None:
        out["active_latents"] = float((kl.mean(axis=0) > ACTIVE_KL).sum())
    mig = scores.mig(codes, factors, s.bins)
    if "mig" in want:
        out["mig"] = cast(float, mig["mig"])
    if "modularity" in want:
        out["modularity"] = reference.modularity(codes, factors, s.bins)
    if "explicitness" in want:
        stage("explicitness")
        out["explicitness"] = reference.explicitness(codes, factors, codes_test, factors_test)[
            "explicitness"
        ]
    fit_seed = int(fit_seq.generate_state(1)[0])
    if want & FAST_DCI:
        stage("DCI (extra trees)")
        dci = scores.dci(codes, factors, codes_test, factors_test, seed=fit_seed)
        out |= {f"dci_et_{k}": cast(float, dci[k]) for k in DCI if f"dci_et_{k}" in want}
    if want & REFERENCE_DCI and first:

        def boosting(k: int, n: int) -> None:
            stage(f"DCI (gradient boosting), factor {k + 1} of {n}")

        gbt = reference.dci(codes, factors, codes_test, factors_test,
                            np.random.RandomState(fit_seed), boosting)  # fmt: skip
        out |= {f"dci_{k}": cast(float, gbt[k]) for k in DCI if f"dci_{k}" in want}
    if "sap" in want:
        stage("SAP")
        out["sap"] = cast(float, reference.sap(codes, factors, codes_test, factors_test)["sap"])
    if "sap_tree" in want:
        stage("SAP (tree)")
        tree = scores.sap(codes, factors, codes_test, factors_test)
        out["sap_tree"] = cast(float, tree["sap"])
    sizes = encode.truth.factor_sizes
    if "beta_vae" in want:
        stage("β-VAE score")
        n_train, n_eval = s.beta_vae_points
        beta = reference.beta_vae(encode, sizes, _random_state(beta_seq), s.pairs, n_train,
                                  n_eval)  # fmt: skip
        out["beta_vae"] = beta["eval_accuracy"]
    if "factor_vae" in want:
        stage("FactorVAE score")
        n_train, n_eval = s.factor_vae_votes
        fvae = reference.factor_vae(encode, sizes, _random_state(factor_seq), s.pairs, n_train,
                                    n_eval, s.points)  # fmt: skip
        out["factor_vae"] = float(fvae["eval_accuracy"])
    return out, np.asarray(mig["mi_matrix"])


def _random_state(seq: np.random.SeedSequence) -> np.random.RandomState:
    """The library's kind of random state (its scores draw with one), from an evaluation
    stream."""
    return np.random.RandomState(int(seq.generate_state(1)[0]))


# --- settings, said once per score ----------------------------------------------------------


def describe(ckpt: ServedModel, s: EvaluationSettings) -> dict[str, str]:
    """score name → the estimator choices behind it, in words (shown beside every score)."""
    truth = require_ground_truth(ckpt)
    code = "code = posterior mean μ" if ckpt.description.stochastic else "code = the AE's code"
    if ckpt.description.kind == "cvae":
        code += f" (encoder given the true {truth.factor_names[truth.label_factor]} label)"
    train, test = f"{s.points:,}", f"{s.test_points:,}"
    k = len(truth.factor_names)
    factors = f"{k} factors" + (", shape included" if "shape" in truth.factor_names else "")
    # chance of guessing a factor's class, averaged over factors (DCI informativeness), and of
    # naming the fixed factor (β-VAE, FactorVAE)
    chance_accuracy = float(np.mean([1 / n for n in truth.factor_sizes]))
    chance_factor = f"{1 / k:.2g}"
    split = f"{train} train / {test} test images"
    mi = f"{s.bins}-bin histogram of each latent over its own range, MI in nats"
    first = f"seed {s.seeds[0]} only (~6 min on 2 cores)"
    gbt = (f"{split}, {first}; per factor GradientBoostingClassifier (sklearn's defaults, as "
           "disentanglement_lib), impurity importances")  # fmt: skip
    et = (f"{split}; per factor ExtraTreesClassifier(50 trees, all latents at every split, "
          "min leaf 0.5%) in place of the library's gradient boosting, ~150× faster; impurity "
          "importances")  # fmt: skip
    b_train, b_eval = s.beta_vae_points
    f_train, f_eval = s.factor_vae_votes
    library = "drawn in disentanglement_lib's order"
    out = {
        "active_latents": f"latents whose mean KL(q(z|x) ‖ N(0, I)) over {train} images is "
        f"above {ACTIVE_KL} nats"
        if ckpt.prior.kind == "normal"
        else f"latents whose mean KL of q(z_d|x) against the mixture prior's marginal over "
        f"{train} images is above {ACTIVE_KL} nats",
        "mig": f"{train} images; {code}; {mi}; top-two gap ÷ factor entropy, mean over {factors}",
        "beta_vae": f"{b_train} train / {b_eval} eval points (library: 10,000 / 5,000), {library}, "
        f"each the mean |Δμ| over {s.pairs} image pairs sharing one factor; LogisticRegression "
        f"(sklearn's defaults); eval accuracy, chance {chance_factor}; {code}; {factors}",
        "factor_vae": f"{f_train} train / {f_eval} eval votes (library: 10,000 / 5,000), "
        f"{library}, of {s.pairs} images with one factor fixed; each latent's variance over "
        f"{train} images, latents of std < 0.05 pruned; majority vote; eval accuracy, chance "
        f"{chance_factor}; {code}; {factors}",
        "sap": f"{split}; per latent and factor LinearSVC(C=0.01, balanced class weights) on that "
        f"latent alone, plain test accuracy (an unrelated latent scores chance); top-two gap per "
        f"factor, mean over {factors}; {code}",
        "sap_tree": f"{split}; per latent and factor a DecisionTreeClassifier(min leaf 1%) on "
        "that latent alone, chance-adjusted balanced test accuracy (0 chance, 1 perfect) in place "
        f"of the library's LinearSVC and plain accuracy; top-two gap per factor, mean over "
        f"{factors}; {code}",
        "modularity": f"{train} images; {mi}; per latent 1 − spread of its MI² over factors, "
        f"mean over latents; {code}; {factors}",
        "explicitness": f"{split}; latents standardised; per factor LogisticRegression "
        f"(sklearn's defaults), macro ROC AUC over its values on the test images, mean over "
        f"{factors}; {code}",
    }
    chance = f"chance {chance_accuracy:.3f}"
    for prefix, how in (("dci", gbt), ("dci_et", et)):
        rows = "importance-weighted 1 − entropy of each latent's importances over factors"
        columns = "importance-weighted 1 − entropy of each factor's importances over latents"
        out[f"{prefix}_disentanglement"] = f"{how}; {rows}; {code}; {factors}"
        out[f"{prefix}_completeness"] = f"{how}; {columns}; {code}; {factors}"
        out[f"{prefix}_informativeness"] = f"{how}; mean test accuracy, {chance}; {code}; {factors}"
    return out


# --- the whole evaluation -------------------------------------------------------------------


def evaluate(
    ckpt: ServedModel, settings: EvaluationSettings | None = None, progress: bool = True
) -> dict[str, Any]:
    """Every asked-for score over the settings' seeds → the card's "metrics" entry (mean, sample
    std and per-seed values of each score, with its settings). The AE has no posterior and so no
    KL: active_latents is left out of its scores (a variance threshold would only measure the
    AE's arbitrary code scale)."""
    s = settings or EvaluationSettings()
    truth = require_ground_truth(ckpt)
    t0 = time.monotonic()
    per_seed: list[dict[str, float]] = []
    mi_matrices = []
    total = _images_per_seed(s) * len(s.seeds)
    with tqdm(total=total, unit="img", unit_scale=True, disable=not progress,
              dynamic_ncols=True, desc=ckpt.name) as bar:  # fmt: skip
        encode = ImageEncoder(ckpt, bar, channels_last=True)
        for i, seed in enumerate(s.seeds):

            def stage(what: str, i: int = i, seed: int = seed) -> None:
                bar.set_postfix_str(f"seed {seed} ({i + 1}/{len(s.seeds)}): {what}")

            values, mi = one_seed(ckpt, encode, seed, s, stage, first=i == 0)
            per_seed.append(values)
            mi_matrices.append(mi)
    settings_text = describe(ckpt, s)
    results: dict[str, Any] = {}
    for name in METRICS:
        if name not in per_seed[0]:
            continue
        v = np.array([d[name] for d in per_seed if name in d])  # the library's DCI: one seed
        results[name] = {
            "mean": round(float(v.mean()), 4),
            "std": round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 4),
            "values": [round(float(x), 4) for x in v],
            "settings": settings_text[name],
        }
    return {
        "step": ckpt.card.steps,
        "digest": ckpt.digest,
        "seeds": list(s.seeds),
        "factors": list(truth.factor_names),
        "scores": results,
        "mi_matrix": np.round(np.mean(mi_matrices, axis=0), 4).tolist(),
        "wall_time_s": round(time.monotonic() - t0, 1),
    }


def write_metrics(path: Path, metrics: dict[str, Any]) -> ModelCard:
    """Put `metrics` into path/card.json atomically (temp file beside it, fsync, rename), leaving
    the weights and config.json alone. Scores from an earlier run on the same weights, seeds and
    factors that this run did not recompute (`--only`) are kept. → the card as written."""

    def merge(card: ModelCard) -> ModelCard:
        new = Metrics.model_validate(metrics)
        old = card.metrics
        if old is not None and (old.digest, old.seeds, old.factors) == (
            new.digest, new.seeds, new.factors,
        ):  # fmt: skip
            scores = {**old.scores, **new.scores}
            new.scores = {k: scores[k] for k in METRICS if k in scores}
        return card.updated(metrics=new)

    return update_card(Path(path), merge)


def evaluate_checkpoint(
    path: str | Path, settings: EvaluationSettings | None = None, progress: bool = True
) -> dict[str, Any]:
    """Load the checkpoint at `path`, evaluate it and write the results into its card.json.
    Raises CheckpointError for a folder that cannot be loaded, EvaluationError for a model that
    cannot be evaluated or whose weights a training run replaced meanwhile."""
    return score_into_card(
        path, lambda served: evaluate(served, settings, progress), write_metrics, "metrics"
    )


def score_into_card(
    path: str | Path,
    score: Callable[[ServedModel], dict[str, Any]],
    write: Callable[[Path, dict[str, Any]], Any],
    what: str,
) -> dict[str, Any]:
    """Load the checkpoint at `path`, `score` it (a dict with the weights' "digest"), and
    `write` the result into its card, unless a training run saved other weights over it
    meanwhile (then nothing is written: an EvaluationError says to evaluate again)."""
    ckpt = load_checkpoint(path)
    result = score(ckpt.served())
    if load_checkpoint(path).digest != result["digest"]:
        raise EvaluationError(
            f"{path}: the weights changed while they were scored (a training run saved over "
            "them); nothing was written — evaluate again"
        )
    write(Path(path), result)
    log.info("wrote %s for %s into %s", what, ckpt.name, Path(path) / CARD)
    return result


def format_table(name: str, metrics: dict[str, Any]) -> str:
    """The card's "metrics" entry as a plain-text table: mean ± std and per-seed values of each
    score, then each score's settings."""
    seeds, factors = ", ".join(map(str, metrics["seeds"])), ", ".join(metrics["factors"])
    head = (f"{name} · step {metrics.get('step')} · seeds {seeds} · factors {factors} · "
            f"{metrics['wall_time_s']:.0f} s")  # fmt: skip
    rows = [head, "", f"{'score':22s}{'mean ± std':>18s}   per seed"]
    for key, s in metrics["scores"].items():
        fmt = "{:.1f}" if key == "active_latents" else "{:.3f}"
        mean_std = f"{fmt.format(s['mean'])} ± {fmt.format(s['std'])}"
        rows.append(f"{key:22s}{mean_std:>18s}   {', '.join(fmt.format(v) for v in s['values'])}")
    rows += ["", "settings:"]
    for key, s in metrics["scores"].items():
        rows += textwrap.wrap(s["settings"], width=100, initial_indent=f"  {key}: ",
                              subsequent_indent="    ")  # fmt: skip
    return "\n".join(rows)
