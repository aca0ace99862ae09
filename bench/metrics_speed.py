"""How long `latent-explorer evaluate` takes on this machine, for one checkpoint: MIG + active
units on 10,000 images (budget: under a minute on 2 CPU cores) and every metric with the default
settings, 3 evaluation seeds (budget: under 3 minutes). Nothing is written into the checkpoint.
Each figure is wall time and the process's CPU time (what it costs alone on one core, when
other work shares the machine).

--compare-dci also times DCI's classifier against disentanglement_lib's own on the same codes
(10,000 train / 5,000 test images): ours, ExtraTreesClassifier, against GradientBoostingClassifier
with sklearn's defaults — the figures quoted in `app.metrics.scores.dci` (the boosting takes
minutes).

    python bench/metrics_speed.py [checkpoints/dsprites-beta-vae] [--threads N] [--compare-dci]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from sklearn.ensemble import GradientBoostingClassifier

from app.checkpoints import load_checkpoint
from app.data.dsprites import sample_classes
from app.metrics import scores
from app.metrics.evaluate import EvaluationSettings, ImageEncoder, evaluate
from app.metrics.scores import importance_weighted_purity


def timed(label: str, fn):  # noqa: ANN001, ANN201
    """Wall time, and the CPU time of this process (all its threads): on a busy machine the
    CPU time is what the run would take alone on one core."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{label}: {seconds:.1f} s wall, {cpu:.1f} s CPU")
    return out, seconds


def compare_dci(path: str) -> None:
    ckpt = load_checkpoint(path)
    rng = np.random.default_rng(0)
    factors, factors_test = sample_classes(rng, 10_000), sample_classes(rng, 5_000)
    encode = ImageEncoder(ckpt)
    codes, codes_test = encode(factors), encode(factors_test)
    ours, _ = timed("DCI, ExtraTrees (ours)", lambda: scores.dci(codes, factors, codes_test,
                                                                   factors_test))  # fmt: skip

    def boosting() -> dict[str, float]:
        importance = np.zeros((codes.shape[1], factors.shape[1]))
        accuracy = []
        for f in range(factors.shape[1]):
            model = GradientBoostingClassifier().fit(codes, factors[:, f])
            importance[:, f] = np.abs(model.feature_importances_)
            accuracy.append(model.score(codes_test, factors_test[:, f]))
        return {"disentanglement": importance_weighted_purity(importance),
                "completeness": importance_weighted_purity(importance.T),
                "informativeness": float(np.mean(accuracy))}  # fmt: skip

    lib, _ = timed("DCI, GradientBoosting (disentanglement_lib)", boosting)
    for k in ("disentanglement", "completeness", "informativeness"):
        print(f"  {k:16s} ours {ours[k]:.3f}   library's classifier {lib[k]:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", nargs="?", default="checkpoints/dsprites-beta-vae")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--compare-dci", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.checkpoint}: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    ckpt = load_checkpoint(args.checkpoint)
    quick = EvaluationSettings(seeds=(0,), only=("mig", "active_latents"))
    timed("MIG + active units, 10,000 images, one seed", lambda: evaluate(ckpt, quick, False))
    full, seconds = timed("all metrics, default settings (3 seeds)",
                          lambda: evaluate(ckpt, EvaluationSettings(), False))  # fmt: skip
    for name, s in full["scores"].items():
        print(f"  {name:20s} {s['mean']:.3f} ± {s['std']:.3f}")
    if args.compare_dci:
        compare_dci(args.checkpoint)


if __name__ == "__main__":
    main()
