"""Judge a model on its dataset's test split, as likelihood models are judged, and write the
result into its card.json under "test_split" (`latent-explorer evaluate` on a Fashion-MNIST
model). On the test images (the first `images` of them where asked, in the split's order):

- the ELBO of each image, E_q[log p(x|z)] − KL(q(z|x) ‖ N(0, I)): the KL in closed form, the
  reconstruction term averaged over ELBO_SAMPLES draws of q(z|x) (independent of the bound's);
- the importance-weighted bound L_k ≤ log p(x) (app.metrics.likelihood; Burda et al. 2016) with
  k samples per image, in nats and bits per dimension, with its standard error over images;
- a CVAE is scored as log p(x | c), c the image's own class, and its encoder is given it too;
- a linear probe: how well a logistic regression reads the class from μ of the grey test images,
  5-fold stratified cross-validation, beside the same probe on the raw pixels.

The likelihood is the model's own: Bernoulli on the split binarised once with a fixed seed
(TestSplit.binarised), the bits the scores are always computed on, where training drew fresh
bits every batch. An autoencoder has no posterior and no prior, so no likelihood: only its
probe is computed.
"""

from __future__ import annotations

import datetime
import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits  # scikit-learn's own dependency
from tqdm import tqdm

from app.checkpoints.card import ModelCard
from app.checkpoints.card_file import update_card
from app.checkpoints.served import ServedModel
from app.data.base import DatasetError
from app.data.fashion_mnist import SIDE as FASHION_MNIST_SIDE
from app.data.fashion_mnist import TEST_BINARISATION_SEED
from app.data.test_split import DATASETS, TestSplit, has_test_split, test_split
from app.metrics.evaluate import EvaluationError, score_into_card
from app.metrics.likelihood import (
    bits_per_dim,
    importance_weighted_bound,
    log_likelihood_given_z,
)
from app.models.interface import LatentModel
from app.models.priors import prior_kl, prior_of

log = logging.getLogger(__name__)

CARD_KEY = "test_split"  # where the card keeps these scores
DEFAULT_K = 1_000  # samples of q(z|x) per image for L_k, as Burda et al. 2016 report
ELBO_SAMPLES = 32  # draws of q(z|x) per image for E_q[log p(x|z)]: ~3% of the bound's cost
SAMPLING_SEED = 0  # the bound's z come from this torch generator, the ELBO's from the next
PROBE_FOLDS = 5
# L2 strength of both probes, as C = PROBE_C_TIMES_N / (training images): the same penalty per
# image whatever the subset (scikit-learn's C weighs the summed loss, so a fixed C would
# regularise 100 images 100 times harder than 10,000). On 8,000 standardised pixel vectors of
# Fashion-MNIST's test split C = 1 overfits: held-out accuracy 0.780, against 0.814 at C = 0.1
# and 0.830 at C = 0.01 (measured on one 8,000 / 2,000 split); a weak baseline would flatter μ.
PROBE_C_TIMES_N = 80.0  # C = 0.01 on the 8,000 training images of a fold of the whole split
# The probe on μ (10 or so features) is cheap enough to choose its own C in each outer fold, by
# an inner 3-fold cross-validation over this grid: the fixed pixel C above regularises 10
# standardised features far too hard (fashion-vae: 0.735 at C = 0.01, ~0.76 at C = 1)
PROBE_C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
PROBE_MAX_ITER = 2_000
NATIVE_SIDE = {"fashion-mnist": FASHION_MNIST_SIDE}  # the data's own side, before any padding
BATCH = 32  # images scored per step of the progress bar
ENCODE_BATCH = 500


def require_test_split(ckpt: ServedModel, root: Path) -> TestSplit:
    """The test split of the model's dataset at the model's size, or EvaluationError saying why
    there is none or why it cannot be read."""
    d = ckpt.description
    if not has_test_split(d.dataset):
        have = ", ".join(sorted(DATASETS))
        raise EvaluationError(
            f"{ckpt.name}: the model was trained on {d.dataset!r}, which has no test split here "
            f"(only {have} has one) to judge its likelihood on"
        )
    try:
        split = test_split(d.dataset, d.image_size, Path(root))
    except DatasetError as e:
        raise EvaluationError(f"{ckpt.name}: {e}") from e
    assert split is not None
    if split.images.shape[1:] != d.shape:
        raise EvaluationError(
            f"{ckpt.name}: the model takes {'×'.join(map(str, d.shape))} images, "
            f"{split.name}'s test split is {'×'.join(map(str, split.images.shape[1:]))}"
        )
    return split


# --- the likelihood --------------------------------------------------------------------------


@torch.inference_mode()
def elbo_terms(
    model: LatentModel,
    x: torch.Tensor,
    samples: int,
    generator: torch.Generator,
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(E_q[log p(x|z)] estimated from `samples` draws of q(z|x), KL(q(z|x) ‖ p(z)) against the
    model's prior: in closed form for N(0, I), else by Monte Carlo with fixed draws
    (app.models.priors.prior_kl)) for each image of x (B, C, H, W) → two (B,) float64 tensors,
    nats; the ELBO is their difference."""
    posterior = model.encode(x, labels)
    b, dim = posterior.mean.shape
    kl = prior_kl(posterior.mean, posterior.logvar, prior_of(model)).total.double()  # (B,)
    eps = torch.randn(b, samples, dim, generator=generator)
    z = posterior.mean[:, None] + posterior.std[:, None] * eps  # (B, S, D)
    target = x.repeat_interleave(samples, 0)  # (B·S, C, H, W), image-major like z
    lab = None if labels is None else labels.repeat_interleave(samples)
    log_px_z = log_likelihood_given_z(model, target, z.reshape(b * samples, dim), lab)
    return log_px_z.double().view(b, samples).mean(1), kl


def likelihood_scores(
    model: LatentModel,
    x: torch.Tensor,
    k: int,
    labels: torch.Tensor | None = None,
    bar: tqdm | None = None,
    elbo_samples: int = ELBO_SAMPLES,
    seed: int = SAMPLING_SEED,
) -> dict[str, np.ndarray]:
    """Per image of x (N, C, H, W): "reconstruction" E_q[log p(x|z)], "kl", "elbo" (their
    difference) and "bound" L_k, float64 nats each, BATCH images at a time (counted on `bar`).
    The bound's z come from a generator seeded `seed`, the ELBO's from one seeded `seed + 1`."""
    if not model.description.stochastic:
        raise EvaluationError("an autoencoder has no posterior: its likelihood has no bound")
    bound_gen = torch.Generator().manual_seed(seed)
    elbo_gen = torch.Generator().manual_seed(seed + 1)
    recon, kl, bound = [], [], []
    for start in range(0, len(x), BATCH):
        xb = x[start : start + BATCH]
        lb = None if labels is None else labels[start : start + BATCH]
        r, q = elbo_terms(model, xb, elbo_samples, elbo_gen, lb)
        recon.append(r.numpy())
        kl.append(q.numpy())
        # one image per decode pass: 41 ms per image at k = 1,000 with 1, 2 or 4 images per
        # pass alike (measured with 2 threads on our loaded 2-core machine): no batching across
        # images
        bound.append(importance_weighted_bound(model, xb, k, bound_gen, lb).numpy())
        if bar is not None:
            bar.update(len(xb))
    out = {"reconstruction": np.concatenate(recon), "kl": np.concatenate(kl)}
    return out | {"elbo": out["reconstruction"] - out["kl"], "bound": np.concatenate(bound)}


def likelihood_named(likelihood: str, gaussian_sigma: float) -> str:
    """The likelihood the scores are under, in words."""
    if likelihood == "bernoulli":
        return (f"Bernoulli on binarised pixels (test split binarised once, seed "
                f"{TEST_BINARISATION_SEED}; training binarised each batch afresh)")  # fmt: skip
    return (f"Gaussian with fixed σ = {gaussian_sigma:g} on grey levels in [0, 1] (a density: "
            "not comparable with Bernoulli figures)")  # fmt: skip


def dims_counted(model_side: int, native_side: int, channels: int) -> tuple[int, str]:
    """The pixels bits/dim divides by, and why: the data's own, also for a model that scores
    the image padded with black."""
    dims = channels * native_side * native_side
    if model_side == native_side:
        return dims, f"{dims:,}: the {native_side}×{native_side} pixels the model scores"
    pad = channels * model_side * model_side - dims
    return dims, (
        f"{dims:,}, the data's {native_side}×{native_side} pixels: the model scores the image "
        f"padded to {model_side}×{model_side}, whose {pad:,} border pixels are always 0; summing "
        "the border out can only raise the probability, so the bound is also one on log p of "
        f"the {native_side}×{native_side} image"
    )


# --- the linear probe ------------------------------------------------------------------------


def linear_probe(
    features: np.ndarray, labels: np.ndarray, folds: int = PROBE_FOLDS, seed: int = 0,
    choose_c: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Held-out accuracy of a logistic regression (L2, C = PROBE_C_TIMES_N / training images,
    or with `choose_c` C picked from PROBE_C_GRID by a 3-fold cross-validation inside each
    training fold) on standardised `features` (N, F) predicting `labels` (N,), in `folds`-fold
    stratified cross-validation (shuffled with `seed`) → {"mean", "std" (over folds), "values",
    "converged" (every fold's fit), and with `choose_c` "chosen_c" per fold}."""
    counts = np.bincount(labels)
    present = counts[counts > 0]
    if len(present) < 2 or present.min() < folds:
        raise EvaluationError(
            f"the probe's {folds}-fold cross-validation needs at least {folds} images of each "
            f"class present and two classes; these images have {sorted(present.tolist())} per "
            "class: score more images"
        )
    x = np.asarray(features, dtype=np.float32)  # half the work of float64, the same accuracy
    accuracies, converged, chosen = [], True, []
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, labels)
    # One thread: scikit-learn's OpenMP threads spin-wait when the cores are shared, and on our
    # 2-core machine under load one pixel fit took 13.5 s with one thread, 92 s with two.
    with threadpool_limits(limits=1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        for train, test in splits:
            model: LogisticRegression | LogisticRegressionCV
            if choose_c:
                inner = StratifiedKFold(3, shuffle=True, random_state=seed)
                model = LogisticRegressionCV(
                    Cs=list(PROBE_C_GRID), cv=inner, max_iter=PROBE_MAX_ITER
                )
            else:
                model = LogisticRegression(C=PROBE_C_TIMES_N / len(train), max_iter=PROBE_MAX_ITER)
            probe = make_pipeline(StandardScaler(), model)
            probe.fit(x[train], labels[train])
            accuracies.append(float(probe.score(x[test], labels[test])))
            if choose_c:
                chosen.append(float(model.C_[0]))
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    v = np.array(accuracies)
    out = {"mean": round(float(v.mean()), 4), "std": round(float(v.std(ddof=1)), 4),
           "values": [round(a, 4) for a in accuracies], "converged": converged}  # fmt: skip
    if choose_c:
        out["chosen_c"] = chosen
    return out


@torch.inference_mode()
def posterior_means(model: LatentModel, x: torch.Tensor, labels: torch.Tensor | None) -> np.ndarray:
    """μ (N, D) of images x, ENCODE_BATCH at a time (a CVAE's encoder given `labels`)."""
    out = []
    for s in range(0, len(x), ENCODE_BATCH):
        lb = None if labels is None else labels[s : s + ENCODE_BATCH]
        out.append(model.encode(x[s : s + ENCODE_BATCH], lb).mean.double().numpy())
    return np.concatenate(out)


# --- the whole judgement ---------------------------------------------------------------------


def _standard_error(values: np.ndarray) -> float:
    """The standard error of the mean over images (0 for one image)."""
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def _mean_se(values: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(values.mean()), 4), "se": round(_standard_error(values), 4)}


def _likelihood_entry(
    likelihood: str, gaussian_sigma: float, per_image: dict[str, np.ndarray], k: int, dims: int
) -> dict[str, Any]:
    bound, elbo = per_image["bound"], per_image["elbo"]

    def bpd(nats: float) -> float:
        return round(float(bits_per_dim(torch.tensor(nats, dtype=torch.float64), dims)), 5)

    return {
        "likelihood": likelihood_named(likelihood, gaussian_sigma),
        "binarisation_seed": TEST_BINARISATION_SEED if likelihood == "bernoulli" else None,
        "sampling_seed": SAMPLING_SEED,
        "k": k,
        "dims": dims,
        "elbo": {
            **_mean_se(elbo),
            "bits_per_dim": bpd(elbo.mean()),
            "reconstruction": round(float(per_image["reconstruction"].mean()), 4),
            "kl": round(float(per_image["kl"].mean()), 4),
            "estimator": f"E_q[log p(x|z)] averaged over {ELBO_SAMPLES} draws of q(z|x) per "
            f"image (torch generator seeded {SAMPLING_SEED + 1}), minus the KL in closed form",
        },
        "bound": {
            **_mean_se(bound),
            "bits_per_dim": bpd(bound.mean()),
            "bits_per_dim_se": round(_standard_error(bound) / (dims * math.log(2)), 5),
            "estimator": f"importance-weighted bound L_k (Burda et al. 2016), k = {k:,} draws "
            f"of q(z|x) per image (torch generator seeded {SAMPLING_SEED}); standard error over "
            "images",
        },
    }


def score_test_split(
    ckpt: ServedModel,
    root: Path,
    k: int = DEFAULT_K,
    images: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Every score of the module docstring on the first `images` test images (all by default)
    → the card's "test_split" entry (docs/metrics.md lists its fields)."""
    if k < 1:
        raise EvaluationError(f"k must be at least 1, got {k}")
    split = require_test_split(ckpt, root)
    total = len(split)
    n = total if images is None else images
    if not 1 <= n <= total:
        raise EvaluationError(f"images must be in 1..{total:,} (the test split's size), got {n}")
    d = ckpt.description
    cvae = d.kind == "cvae"
    t0 = time.monotonic()
    classes = split.labels[:n].astype(np.int64)
    labels = torch.from_numpy(classes) if cvae else None
    grey = torch.from_numpy(split.images[:n]).float() / 255.0  # (N, C, S, S)
    dims, dims_note = dims_counted(d.image_size, NATIVE_SIDE[d.dataset], d.channels)
    entry: dict[str, Any] = {
        "dataset": split.name,
        "split": "test",
        "images": n,
        "split_size": total,
        "subset": f"all {total:,}" if n == total else f"the first {n:,} of {total:,}",
        "step": ckpt.card.steps,
        "digest": ckpt.digest,
    }
    with tqdm(total=n if d.stochastic else 0, unit="img", disable=not progress,
              dynamic_ncols=True, desc=ckpt.name) as bar:  # fmt: skip
        if d.stochastic:
            bar.set_postfix_str(f"ELBO and L_k, k = {k:,}")
            scored = grey
            if d.likelihood == "bernoulli":
                scored = torch.from_numpy(split.binarised[:n]).float()
            per_image = likelihood_scores(ckpt.model, scored, k, labels, bar)
            entry |= _likelihood_entry(d.likelihood, d.gaussian_sigma, per_image, k, dims)
            entry["dims_note"] = dims_note
        else:
            entry["likelihood"] = "none: an autoencoder has no posterior or prior to score with"
        if cvae:
            entry["conditioning"] = (
                "each image's own class c: the scores are of log p(x | c), and μ is encoded "
                "given c (so a CVAE's μ need not hold the class: a low probe accuracy is what "
                "its conditioning aims for)"
            )
        bar.set_postfix_str("linear probes")
        mu = posterior_means(ckpt.model, grey, labels)
        entry["probe"] = linear_probe(mu, classes, choose_c=True)
        entry["probe_pixels"] = linear_probe(grey.flatten(1).numpy(), classes)
    entry["probe_settings"] = (
        "logistic regression (L2; on μ, C chosen in each fold by an inner 3-fold "
        f"cross-validation from {', '.join(f'{c:g}' for c in PROBE_C_GRID)}; on the pixels, "
        f"C = {PROBE_C_TIMES_N:g} / training images, "
        f"≈ {PROBE_C_TIMES_N / (n - n // PROBE_FOLDS):.3g} here, the best of 1, 0.1 and 0.01 on "
        "one split of the whole test set; lbfgs, at most "
        f"{PROBE_MAX_ITER:,} iterations) on standardised features, {PROBE_FOLDS}-fold "
        "stratified cross-validation (shuffled, seed 0; the same folds for both); held-out "
        "accuracy, mean ± std over folds; "
        f"features: μ of the grey test images, and their {grey[0].numel():,} raw grey pixels; "
        f"chance {1 / len(split.label_names):.2f}"
    )
    entry["chance"] = round(1 / len(split.label_names), 4)
    entry["torch_threads"] = torch.get_num_threads()
    entry["wall_time_s"] = round(time.monotonic() - t0, 1)
    entry["date"] = datetime.datetime.now(datetime.UTC).date().isoformat()
    return entry


def write_test_scores(path: Path, entry: dict[str, Any]) -> ModelCard:
    """Put `entry` into path/card.json under "test_split" (app.checkpoints.card_file), every
    other field as it was. → the card as written."""
    return update_card(Path(path), lambda card: card.updated(**{CARD_KEY: entry}))


def evaluate_test_split(
    path: str | Path,
    root: Path,
    k: int = DEFAULT_K,
    images: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Load the checkpoint at `path`, judge it on its test split (read from `root`) and write
    the scores into its card.json. Raises CheckpointError for a folder that cannot be loaded,
    EvaluationError for a model that cannot be judged so or whose weights changed meanwhile."""
    return score_into_card(
        path,
        lambda served: score_test_split(served, root, k, images, progress),
        write_test_scores,
        "test-split scores",
    )


def format_test_table(name: str, entry: dict[str, Any]) -> str:
    """The card's "test_split" entry as a short plain-text table."""
    head = (f"{name} · step {entry.get('step')} · {entry['dataset']} test split, "
            f"{entry['subset']} images · {entry['wall_time_s']:.0f} s")  # fmt: skip
    rows = [head, f"likelihood: {entry['likelihood']}"]
    if entry.get("conditioning"):
        rows.append(f"conditioned on: {entry['conditioning']}")
    if "bound" in entry:
        b, e = entry["bound"], entry["elbo"]
        rows += [
            "",
            f"{'':28s}{'nats (mean ± s.e.)':>22s}{'bits/dim':>12s}",
            f"{'ELBO':28s}{e['mean']:>12.2f} ± {e['se']:<7.2f}{e['bits_per_dim']:>12.4f}",
            f"{'log p(x) ≥ L_k, k = ' + format(entry['k'], ','):28s}"
            f"{b['mean']:>12.2f} ± {b['se']:<7.2f}{b['bits_per_dim']:>12.4f}",
            f"  ELBO = E_q log p(x|z) {e['reconstruction']:.2f} − KL {e['kl']:.2f}; "
            f"bits/dim over {entry['dims']:,} dims",
        ]
    p, q = entry["probe"], entry["probe_pixels"]
    rows += [
        "",
        f"linear probe of the class: μ {p['mean']:.3f} ± {p['std']:.3f}, raw pixels "
        f"{q['mean']:.3f} ± {q['std']:.3f} (chance {entry['chance']:.2f})",
    ]
    return "\n".join(rows)
