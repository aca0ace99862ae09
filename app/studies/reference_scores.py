"""disentanglement_lib's scores of a served model, computed in the server's background.

A model of ground-truth data whose card lacks the library's DCI (an import, a run not yet
evaluated) gets it here: MIG, DCI by gradient boosting, SAP, modularity and explicitness, as
`latent-explorer evaluate` computes them on its first evaluation seed — the same images, the same
random state for the boosted trees, so the same numbers evaluate writes for seed 0. The boosting
takes minutes (~6 on 2 cores for dSprites), so it runs one model at a time on the background
thread that scores data sets (app/studies/score_jobs.py), never in a request, and is kept in the
cache folder by the weights' digest: a restarted server finds it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.checkpoints.served import ServedModel
from app.data.sets.record import digest_of
from app.metrics.evaluate import EvaluationSettings, ImageEncoder, describe, one_seed
from app.metrics.names import LABELS
from app.studies.score_jobs import FORMAT, PartStatus, Progress
from app.studies.set_scores import score_jobs

# the library's scores, in the order the card shows them (the β-VAE and FactorVAE scores are
# left to `evaluate`: half an hour each at the library's sizes)
REFERENCE = ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap",
             "modularity", "explicitness")  # fmt: skip
SEED = 0  # evaluate's first seed: the seed its library DCI is computed on
MISSING = "dci_disentanglement"  # a card without it is scored here


@dataclass(frozen=True)
class ReferenceSettings:
    points: int = 10_000
    test_points: int = 5_000

    def evaluation(self) -> EvaluationSettings:
        return EvaluationSettings(seeds=(SEED,), points=self.points,
                                  test_points=self.test_points, only=REFERENCE)  # fmt: skip


def needs_reference(ckpt: ServedModel, has_ground_truth: bool) -> bool:
    """Whether the server should compute the library's scores: a model of ground-truth data
    whose card (on these weights) lacks them."""
    metrics = ckpt.card.metrics
    on_card = metrics is not None and metrics.digest == ckpt.digest and MISSING in metrics.scores
    return has_ground_truth and not on_card


def reference_key(ckpt: ServedModel, s: ReferenceSettings) -> str:
    return digest_of([f"reference-scores-v{FORMAT}", ckpt.digest, ckpt.description.dataset,
                      str(s.points), str(s.test_points)])[:32]  # fmt: skip


# evaluate's stage names → how far along the computation is (the boosting is most of it)
_BOOSTING = re.compile(r"DCI \(gradient boosting\), factor (\d+) of (\d+)")


def _fraction(stage: str) -> float:
    found = _BOOSTING.search(stage)
    if found:
        k, n = int(found.group(1)), int(found.group(2))
        return 0.1 + 0.85 * (k - 1) / n
    return {"images": 0.0, "explicitness": 0.05, "SAP": 0.95}.get(stage, 0.0)


def compute(ckpt: ServedModel, s: ReferenceSettings, progress: Progress) -> dict[str, Any]:
    """The library's scores on evaluate's first seed → {"scores": name → {"value",
    "settings"}, "seed", "points", "test_points"}."""
    settings = s.evaluation()
    encode = ImageEncoder(ckpt)

    def stage(what: str) -> None:
        progress(_fraction(what), what)

    values, _ = one_seed(ckpt, encode, SEED, settings, stage, first=True)
    words = describe(ckpt, settings)
    return {
        "scores": {
            k: {"value": round(values[k], 4), "label": LABELS[k], "settings": words[k]}
            for k in REFERENCE
            if k in values
        },  # fmt: skip
        "seed": SEED,
        "points": s.points,
        "test_points": s.test_points,
    }


def reference_scores(
    ckpt: ServedModel, cache_dir: Path | None, s: ReferenceSettings | None = None
) -> PartStatus:
    """Where the library's scores of `ckpt` stand, starting them where nobody computes them
    yet; never computes while the caller waits."""
    s = s or ReferenceSettings()
    jobs = score_jobs(cache_dir)
    return jobs.request(reference_key(ckpt, s), lambda progress: compute(ckpt, s, progress))
