"""`latent-explorer evaluate MODEL --set NAME_OR_PATH`: a model's scores on any data set (the
disentanglement metrics over its factor columns, a linear probe of each categorical column, the
ELBO and the importance-weighted bound on its held-out images), printed as a table. Nothing is
written into the card: the scores are kept in the cache folder, where a server finds them."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

WIDTH = 100


def evaluate_on_set(ns: argparse.Namespace) -> int:
    # heavy imports here, so `latent-explorer --help` stays quick
    from tqdm import tqdm

    from app.checkpoints import CheckpointError, load_checkpoint
    from app.data.sets import DatasetError, open_set
    from app.encodings import EncodingError
    from app.inference import prepare_for_serving
    from app.metrics.evaluate import EvaluationError
    from app.metrics.set_scores import SetScoreSettings
    from app.settings import Settings
    from app.studies.set_scores import compute_set_scores

    settings = Settings()
    cache_dir = ns.cache_dir or settings.cache_dir or Path(".cache")
    try:
        if ns.only:
            raise EvaluationError("--only is for a model's own ground truth, not --set")
        defaults = SetScoreSettings()
        s = SetScoreSettings(
            points=ns.points,
            test_points=ns.points // 2,
            held_out_share=defaults.held_out_share if ns.share is None else ns.share,
            k=defaults.k if ns.k is None else ns.k,
            likelihood_images=defaults.likelihood_images if ns.images is None else ns.images,
        )
        served = prepare_for_serving(load_checkpoint(ns.checkpoint).served())
        fashion_root = ns.data or settings.fashion_mnist_dir  # --data: Fashion-MNIST's files
        data = open_set(ns.on_set, fashion_root=fashion_root)
        with tqdm(total=1.0, disable=not ns.progress, dynamic_ncols=True,
                  bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix}") as bar:  # fmt: skip
            bar.set_description(f"{served.name} on {data.name}")

            def progress(fraction: float, what: str) -> None:
                bar.n = round(min(fraction, 1.0), 3)
                bar.set_postfix_str(what)

            result = compute_set_scores(served, data, cache_dir, s, progress)
    except (CheckpointError, DatasetError, EncodingError, EvaluationError) as e:
        print(f"latent-explorer evaluate: error: {e}", file=sys.stderr)  # noqa: T201
        return 2
    print(format_set_table(result))  # noqa: T201
    print(f"\nkept in {cache_dir / 'set-scores'} (nothing written into the card)")  # noqa: T201
    return 0


def format_set_table(result: dict[str, Any]) -> str:
    """compute_set_scores' result as plain text: the metrics with their settings, the probes,
    the likelihood."""
    scores, lik = result["scores"], result["likelihood"]
    dis = scores["disentanglement"]
    rows = [f"{result['model']} on {result['data']} ({result['images']:,} images)", ""]
    if dis.get("note"):
        rows += textwrap.wrap(dis["note"], WIDTH)
    if dis["scores"]:
        rows += [f"disentanglement over {', '.join(dis['scored_factors'])}:",
                 f"  {'score':22s}{'value':>8s}   per factor"]  # fmt: skip
        for key, s in dis["scores"].items():
            value = "–" if s["value"] is None else f"{s['value']:.3f}"
            per = ", ".join(
                f"{f} {'–' if v is None else f'{v:.3f}'}"
                for f, v in (s["per_factor"] or {}).items()
            )
            rows.append(f"  {key:22s}{value:>8s}   {per}")
    for f in dis["factors"]:
        rows.append(
            f"  factor {f['name']}: {f['how']}" + (f" — {f['skipped']}" if f["skipped"] else "")
        )
    for key, why in dis["left_out"].items():
        rows += textwrap.wrap(f"{key}: {why}", WIDTH, initial_indent="  ", subsequent_indent="    ")
    probes = scores["probes"]
    rows += ["", "linear probes from μ:"]
    for c in probes["columns"]:
        chance = f"chance {c['chance_majority']:.3f} (most common) / {c['chance_uniform']:.3f}"
        if c["skipped"]:
            rows.append(f"  {c['column']}: not probed — {c['skipped']}")
        else:
            rows.append(f"  {c['column']:20s} {c['mean']:.3f} ± {c['std']:.3f}   {chance}")
    if not probes["columns"]:
        rows.append("  no categorical column")
    rows += ["", f"{'':34s}{'nats (mean ± s.e.)':>22s}{'bits/dim':>12s}"]
    e = scores["encoding_elbo"]
    if e is not None:
        rows.append(f"{'ELBO at μ (the encoding)':34s}{e['mean']:>12.2f} ± {e['se']:<7.2f}"
                    f"{e['bits_per_dim']:>12.4f}")  # fmt: skip
    if lik is not None:
        b, el = lik["bound"], lik["elbo"]
        rows += [
            f"{'ELBO':34s}{el['mean']:>12.2f} ± {el['se']:<7.2f}{el['bits_per_dim']:>12.4f}",
            f"{'log p(x) ≥ L_k, k = ' + format(lik['k'], ','):34s}"
            f"{b['mean']:>12.2f} ± {b['se']:<7.2f}{b['bits_per_dim']:>12.4f}",
            f"  {lik['images']:,} images; {lik['likelihood']}",
        ]
    else:
        rows.append("no likelihood: an autoencoder has no posterior or prior")
    rows += ["", *textwrap.wrap(f"held out: {scores['held_out']}", WIDTH)]
    rows += ["", "settings:"]
    for key, s in dis["scores"].items():
        rows += textwrap.wrap(s["settings"], WIDTH, initial_indent=f"  {key}: ",
                              subsequent_indent="    ")  # fmt: skip
    rows += textwrap.wrap(probes["settings"], WIDTH, initial_indent="  probes: ",
                          subsequent_indent="    ")  # fmt: skip
    return "\n".join(rows)
