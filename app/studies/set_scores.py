"""A served model's scores on a served data set (app.metrics.set_scores), as the pages and the
CLI ask for them, in two parts, each computed once and kept:

    scores      from the set's kept encoding (μ, KL and −log p(x | z = μ) per image): the
                disentanglement metrics over its factor columns, a linear probe of each
                categorical column, and the ELBO read at μ on the held-out images; seconds;
    likelihood  the held-out images fitted and encoded again: the ELBO and the importance-
                weighted bound L_k, k draws of q(z|x) per image; 0.5-0.7 s an image of a 64×64 conv
                model at k = 1,000 on one thread.

The held-out images are the set's test split where it has one, else a seeded share of its
images (`SetScoreSettings.held_out_share`), "held out" only in that nothing here trained on
them: the model may have been trained on these very images elsewhere.

A server computes each part in the background (app.studies.score_jobs: one at a time, a
request answered at once with where it stands); each is kept as JSON under
`<cache_dir>/set-scores/<key>.json`, the key a digest of the set's encoding key (the weights
digest, the set's content digest, the fitting, a CVAE's class column), the part, and the
settings it depends on.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.checkpoints.served import ServedModel
from app.data.sets import SPLITS, ImageSet
from app.data.sets.record import digest_of
from app.encodings import DataEncoding, encode_set
from app.encodings.cache import class_labels
from app.metrics import set_scores as m
from app.metrics.evaluate import EvaluationError
from app.metrics.set_scores import Progress, SetScoreSettings
from app.metrics.test_scores import ELBO_SAMPLES, SAMPLING_SEED
from app.studies.score_jobs import FORMAT, PartStatus, ScoreJobs, read_part, write_part
from app.studies.set_encodings import encoding_jobs, encoding_status, progress_text

READ_BATCH = 256  # images fitted at a time for the likelihood: a multiple of its 32
PART_FIELDS = {
    "scores": ("points", "test_points", "bins", "seed", "held_out_share", "probe_images"),
    "likelihood": ("seed", "held_out_share", "k", "likelihood_images"),
}


# --- which images ------------------------------------------------------------------------------


def held_out_rows(
    image_set: ImageSet, usable: np.ndarray, s: SetScoreSettings
) -> tuple[np.ndarray, str]:
    """The images scored as held out, ascending, and which they are in words: the set's test
    split where it has one, else a seeded share of its images (all at a share of 1)."""
    trained_elsewhere = "the model may have been trained on these images elsewhere"
    split = image_set.split
    if split is not None and (split == SPLITS.index("test")).any():
        rows = np.flatnonzero(usable & (split == SPLITS.index("test")))
        return rows, (
            f"the set's test split ({len(rows):,} images encoded): held out if the model was "
            f"trained on this set's train split; {trained_elsewhere}"
        )
    candidates = np.flatnonzero(usable)
    if s.held_out_share >= 1:
        return candidates, (
            f"all {len(candidates):,} encoded images (the set has no test split), held out "
            f"only in that nothing here trained on them; {trained_elsewhere}"
        )
    n = max(1, round(s.held_out_share * len(candidates)))
    rows = np.sort(np.random.default_rng(s.seed).choice(candidates, n, replace=False))
    return rows, (
        f"a seeded {s.held_out_share:.0%} of its images (seed {s.seed}: {n:,} of "
        f"{len(candidates):,} encoded; the set has no test split), held out only in that "
        f"nothing here trained on them; {trained_elsewhere}"
    )


def at_most(rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`rows` where there are at most n, else a seeded n of them, ascending."""
    if len(rows) <= n:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, n, replace=False))


def code_words(model: ServedModel, enc: DataEncoding) -> str:
    d = model.description
    code = "code = posterior mean μ" if d.stochastic else "code = the AE's code"
    if enc.meta.label_column:
        code += f" (encoder given each image's class from column {enc.meta.label_column})"
    return code


def dims_of(model: ServedModel, image_set: ImageSet, row: int) -> tuple[int, str]:
    """The pixels bits/dim divides by, and why: the model's input, or the image's own pixels
    where it is padded to the model's side (the border is always 0: test_scores.dims_counted)."""
    d = model.description
    fitting = image_set.fitting_for(d.channels, d.image_size)
    model_dims = d.channels * d.image_size**2
    if fitting.method != "pad":
        return (
            model_dims,
            f"{model_dims:,}: the {d.image_size}×{d.image_size} pixels the model scores",
        )
    w, h, _ = image_set.inspect(row)
    dims = d.channels * w * h
    return dims, (
        f"{dims:,}, the images' own {w}×{h} pixels: the model scores them padded to "
        f"{d.image_size}×{d.image_size}, whose border pixels are always 0, so the bound is also "
        f"one on log p of the {w}×{h} image"
    )


# --- the two parts -----------------------------------------------------------------------------


def scores_part(
    model: ServedModel, image_set: ImageSet, enc: DataEncoding, s: SetScoreSettings,
    progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    """What the encoding gives: the disentanglement metrics over the set's factor columns, a
    probe of each categorical column and the ELBO at μ on the held-out images."""
    t0 = time.monotonic()
    usable = np.asarray(enc.ok, dtype=bool)
    mu = np.asarray(enc.mu, dtype=np.float64)
    factors = [m.factor_classes(c) for c in image_set.factors]

    def stage(start: float, width: float) -> Progress | None:
        if progress is None:
            return None
        return lambda fraction, what: progress(start + width * fraction, what)

    if factors:
        dis = m.disentanglement(mu, usable, factors, s, code_words(model, enc), stage(0, 0.7))
        dis["note"] = None
    else:
        attributes = ", ".join(c.name for c in image_set.columns)
        which = (
            f"its columns ({attributes}) are attributes, none listed as a factor"
            if attributes
            else "it has no columns"
        )
        note = (
            f"no generating factors to score: data set {image_set.name} has none ({which}; a "
            "dataset.json lists factors under 'factors'), so the disentanglement metrics do not "
            "apply"
        )
        dis = {"factors": [], "scores": {}, "left_out": dict(m.LEFT_OUT), "mi_matrix": None,
               "train": 0, "test": 0, "note": note}  # fmt: skip
    rows, which = held_out_rows(image_set, usable, s)
    probed = at_most(rows, s.probe_images, s.seed)
    probes = m.column_probes(mu, probed, image_set.columns, s.seed, stage(0.7, 0.3))
    conditioned = None
    if enc.meta.label_column:
        conditioned = (
            f"a CVAE's μ is encoded given each image's class (column {enc.meta.label_column}), "
            "so it need not hold the class: a low accuracy there is what the conditioning aims for"
        )
    elbo = None
    if model.description.stochastic and len(rows):
        dims, dims_note = dims_of(model, image_set, int(rows[0]))
        kl = m.encoding_kl(model.prior, enc.mu[rows], enc.logvar[rows], enc.kl[rows])
        values = m.encoding_elbo(enc.nll[rows], kl)
        elbo = m.estimate(
            values,
            dims,
            f"−log p(x | z = μ) − KL(q(z|x) ‖ p(z)), p(z) {model.prior.described}, per image from "
            "the kept encoding: the reconstruction term at the posterior mean, "
            "not averaged over q(z|x), on the images as fitted (grey levels for "
            "a Bernoulli model: a cross-entropy, not the probability of bits)",
        )
        elbo |= {"images": len(rows), "dims_note": dims_note,
                 "reconstruction": round(float(-enc.nll[rows].astype(np.float64).mean()), 4),
                 "kl": round(float(kl.mean()), 4)}  # fmt: skip
    return {
        "disentanglement": dis,
        "probes": {
            "images": len(probed),
            "rows": which if len(probed) == len(rows) else f"a seeded {len(probed):,} of {which}",
            "settings": m.PROBE_SETTINGS,
            "columns": probes,
            "note": conditioned,
        },
        "encoding_elbo": elbo,
        "held_out": which,
        "wall_time_s": round(time.monotonic() - t0, 1),
    }


def likelihood_part(
    model: ServedModel, image_set: ImageSet, enc: DataEncoding, s: SetScoreSettings,
    progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The held-out images fitted again and scored: the ELBO and L_k with standard errors."""
    d = model.description
    if not d.stochastic:
        raise EvaluationError(f"model {model.name} is an autoencoder: no posterior, no bound")
    t0 = time.monotonic()
    rows, which = held_out_rows(image_set, np.asarray(enc.ok, dtype=bool), s)
    if not len(rows):
        raise EvaluationError(f"data set {image_set.name} has no held-out image to score")
    scored = at_most(rows, s.likelihood_images, s.seed)
    which = which if len(scored) == len(rows) else f"a seeded {len(scored):,} of {which}"
    rows = scored
    labels = None
    if enc.meta.label_column:
        labels = class_labels(model, image_set, enc.meta.label_column)[1]
    fitting = image_set.fitting_for(d.channels, d.image_size)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for start in range(0, len(rows), READ_BATCH):
            chunk = rows[start : start + READ_BATCH]
            x, _ = image_set.fitted(chunk, fitting)
            yield x, None if labels is None else labels[chunk]

    per = m.likelihood(model.model, batches(), s.k, len(rows), progress)
    dims, dims_note = dims_of(model, image_set, int(rows[0]))
    return {
        "images": len(rows),
        "rows": which,
        "likelihood": m.likelihood_named(d.likelihood, d.gaussian_sigma),
        "k": s.k,
        "dims": dims,
        "dims_note": dims_note,
        "elbo": m.estimate(per["elbo"], dims, f"E_q[log p(x|z)] averaged over {ELBO_SAMPLES} "
                           f"draws of q(z|x) per image (torch generator seeded "
                           f"{SAMPLING_SEED + 1}), minus the KL in closed form"),
        "bound": m.estimate(per["bound"], dims, f"importance-weighted bound L_k (Burda et al. "
                            f"2016), k = {s.k:,} draws of q(z|x) per image (torch generator "
                            f"seeded {SAMPLING_SEED}); standard error over images"),
        "reconstruction": round(float(per["reconstruction"].mean()), 4),
        "kl": round(float(per["kl"].mean()), 4),
        "conditioning": None if labels is None else (
            f"each image's own class from column {enc.meta.label_column}: the scores are of "
            "log p(x | c)"),
        "wall_time_s": round(time.monotonic() - t0, 1),
    }  # fmt: skip


PARTS: dict[str, Callable[..., dict[str, Any]]] = {
    "scores": scores_part,
    "likelihood": likelihood_part,
}


def part_key(enc: DataEncoding, part: str, s: SetScoreSettings) -> str:
    """What a part's file is named by: the set's encoding key (weights digest, set content
    digest, fitting, a CVAE's class column), the part, and the settings it depends on."""
    enc_key = enc.meta.key
    fields = s.fields()
    settings = json.dumps({f: fields[f] for f in PART_FIELDS[part]}, sort_keys=True)
    return digest_of([f"set-scores-v{FORMAT}", enc_key, part, settings])[:32]


_jobs: dict[Path | None, ScoreJobs] = {}
_jobs_lock = threading.Lock()


def score_jobs(cache_dir: Path | None) -> ScoreJobs:
    """This process's background scorer for one cache folder (None: the encodings' temporary
    folder, which lives as long as the process)."""
    with _jobs_lock:
        if cache_dir not in _jobs:
            _jobs[cache_dir] = ScoreJobs(encoding_jobs(cache_dir).cache_dir)
        return _jobs[cache_dir]


@dataclass(frozen=True)
class SetScores:
    """Where a model's scores on a set stand: its encoding, then the two parts."""

    model: str
    data: str
    images: int
    encoding: PartStatus
    scores: PartStatus
    likelihood: PartStatus

    @property
    def done(self) -> bool:
        return all(p.state in ("done", "none", "failed") for p in (self.scores, self.likelihood))


def set_scores(
    model: ServedModel, image_set: ImageSet, cache_dir: Path | None, s: SetScoreSettings
) -> SetScores:
    """Where the scores of `model` on `image_set` stand, starting what nobody computes yet (the
    encoding first, then both parts); never computes while the caller waits. An
    EvaluationError in one line where the set cannot be encoded for the model (a CVAE and a
    set without its classes)."""
    status = encoding_status(model, image_set, cache_dir)
    if status.state == "failed":
        raise EvaluationError(status.reason)
    waiting = PartStatus("queued", detail="waits for the set's encoding")
    if status.encoding is None:
        encoding = PartStatus(status.state, status.fraction, progress_text(image_set, status))
        return SetScores(model.name, image_set.name, len(image_set), encoding, waiting, waiting)
    enc = status.encoding
    jobs = score_jobs(cache_dir)
    parts = {}
    for part in ("scores", "likelihood"):
        if part == "likelihood" and not model.description.stochastic:
            parts[part] = PartStatus("none", detail="an autoencoder has no posterior or prior: "
                                     "no likelihood to bound")  # fmt: skip
            continue
        compute = functools.partial(PARTS[part], model, image_set, enc, s)
        parts[part] = jobs.request(part_key(enc, part, s), compute)
    done = PartStatus("done", 1.0, f"{enc.meta.n - enc.meta.unreadable:,} images encoded")
    return SetScores(model.name, image_set.name, len(image_set), done, parts["scores"],
                     parts["likelihood"])  # fmt: skip


def compute_set_scores(
    model: ServedModel, image_set: ImageSet, cache_dir: Path, s: SetScoreSettings,
    progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Both parts now (the encoding first where it is not kept), read where kept and kept
    where computed, for the CLI and the tests → {"scores": ..., "likelihood": ... or None}."""
    enc = encode_set(model, image_set, cache_dir)
    out: dict[str, Any] = {"model": model.name, "data": image_set.name, "images": len(image_set)}
    for part in ("scores", "likelihood"):
        if part == "likelihood" and not model.description.stochastic:
            out[part] = None
            continue
        key = part_key(enc, part, s)
        found = read_part(cache_dir, key)
        if found is None:
            found = PARTS[part](model, image_set, enc, s, progress)
            write_part(cache_dir, key, found)
        out[part] = found
    return out
