"""`latent-explorer serve | evaluate | import | label`: the commands that serve, score, bring in
and name models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the explorer on the checkpoints folder",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="folder of checkpoint folders (default: settings / ./checkpoints)",
    )
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE:FACTORY",
        help="also serve the model that package.module:factory() returns (your own PyTorch "
        "code keeping the model interface; see docs/plugins.md); repeatable",
    )


def serve(ns: argparse.Namespace) -> int:
    from app import server
    from app.plugins import PluginError, load_plugin

    for spec in ns.plugin:  # each is probed here first, so a mistake is one clear line
        try:
            load_plugin(spec)
        except PluginError as e:
            print(f"latent-explorer serve: error: {e}", file=sys.stderr)  # noqa: T201
            return 2
    return server.serve(
        host=ns.host, port=ns.port, checkpoints=ns.checkpoints, workers=ns.workers,
        plugins=tuple(ns.plugin),
    )  # fmt: skip


def evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="disentanglement metrics of a dSprites model, written into its card.json",
        description="Active units, MIG, β-VAE and FactorVAE scores, DCI, SAP, modularity and "
        "explicitness on freshly rendered dSprites (fixed evaluation seeds), as mean ± std over "
        "seeds, each with its settings; the results go into the checkpoint's card.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint folder, e.g. checkpoints/NAME")
    p.add_argument("--seeds", type=int, default=3, help="evaluation seeds 0..N-1")
    p.add_argument(
        "--points", type=int, default=10_000, help="images per seed (and half as many held out)"
    )
    p.add_argument(
        "--only",
        default=None,
        help="comma-separated scores to compute (default all): active_latents, mig, beta_vae, "
        "factor_vae, dci_disentanglement, dci_completeness, dci_informativeness, sap, "
        "modularity, explicitness",
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def evaluate(ns: argparse.Namespace) -> int:
    from app.checkpoints import CheckpointError
    from app.metrics.evaluate import (
        METRICS,
        EvaluationError,
        EvaluationSettings,
        evaluate_checkpoint,
        format_table,
    )

    try:
        if ns.seeds < 1:
            raise EvaluationError(f"--seeds must be at least 1, got {ns.seeds}")
        only = tuple(m.strip() for m in ns.only.split(",") if m.strip()) if ns.only else METRICS
        settings = EvaluationSettings(
            seeds=tuple(range(ns.seeds)),
            points=ns.points,
            test_points=ns.points // 2,
            only=only,
        )
        if ns.threads:
            import torch

            torch.set_num_threads(ns.threads)
        metrics = evaluate_checkpoint(ns.checkpoint, settings, progress=ns.progress)
    except (CheckpointError, EvaluationError) as e:
        print(f"latent-explorer evaluate: error: {e}", file=sys.stderr)  # noqa: T201
        return 2
    print(format_table(ns.checkpoint.name, metrics))  # noqa: T201
    print(f"\nwrote the metrics into {ns.checkpoint / 'card.json'}")  # noqa: T201
    return 0


def import_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="convert a model made elsewhere into a checkpoint folder",
        description="Convert a model trained by another project into a checkpoint folder "
        "(model.safetensors, config.json, card.json, README.md), once; its card records where it "
        "came from and its licence.",
    )
    formats = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    d = formats.add_parser(
        "disentangling-vae",
        help="a results/NAME folder of YannDubs/disentangling-vae",
        description="A results/NAME folder of YannDubs/disentangling-vae (model.pt, specs.json; "
        "the repository's LICENSE two levels up): its Burgess network becomes ours, model.pt "
        "read with PyTorch's weights-only loader, every tensor checked.",
    )
    d.add_argument("src", type=Path, metavar="SRC", help="the results/NAME folder")
    d.add_argument(
        "--out",
        type=Path,
        default=None,
        help="checkpoint folder to write, refused if it exists (default: checkpoints/NAME)",
    )
    d.add_argument(
        "--name",
        default=None,
        help="the model's name (default: disvae-<loss>-<dataset> from specs.json, e.g. "
        "disvae-btcvae-celeba; with --out, its folder's name)",
    )
    d.add_argument(
        "--commit",
        default=None,
        help="the repository commit SRC comes from, recorded in the card (default: unknown)",
    )


def import_model(ns: argparse.Namespace) -> int:
    import shlex

    from app.importers import ModelImportError
    from app.importers.disentangling_vae import import_disentangling_vae

    given = [(f"--{k}", getattr(ns, k)) for k in ("out", "name", "commit")]
    command = shlex.join(["latent-explorer", "import", ns.format, str(ns.src)]
                         + [str(v) for kv in given if kv[1] is not None for v in kv])  # fmt: skip
    try:
        ckpt = import_disentangling_vae(
            ns.src, ns.out, name=ns.name, commit=ns.commit, command=command
        )
    except ModelImportError as e:
        print(f"latent-explorer import: error: {e}", file=sys.stderr)  # noqa: T201
        return 2
    cfg, card = ckpt.config, ckpt.card
    print(f"wrote {ckpt.path}: {cfg.latent_dim} latents, {cfg.channels}×{cfg.image_size}×"  # noqa: T201
          f"{cfg.image_size}, {cfg.dataset}; {card['recipe']}")  # fmt: skip
    if card.get("kl_per_dim"):
        kl = ", ".join(f"{v:.2f}" for v in card["kl_per_dim"])
        print(f"mean KL per latent on {card['eval']['eval_images']:,} images: {kl}")  # noqa: T201
    return 0


def label_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "label",
        help="name a model's latents (shown beside its sliders and traversals)",
        description="Name latents in a checkpoint's card.json: INDEX=NAME names one (at most 40 "
        "characters, no control characters, < or >), INDEX= removes its name; with no "
        "assignments, print the names. The card is rewritten atomically, nothing else in the "
        "folder changes; a running server shows the names once restarted.",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint folder, e.g. checkpoints/NAME")
    p.add_argument("assignments", nargs="*", metavar="INDEX=NAME", help='e.g. 3="skin colour"')
    p.add_argument("--clear", action="store_true", help="remove every name first")


def label(ns: argparse.Namespace) -> int:
    from app.latent_names import LatentNameError, label_latents, read_names

    try:
        if ns.assignments or ns.clear:
            latent_dim, names = label_latents(ns.checkpoint, ns.assignments, clear=ns.clear)
        else:
            latent_dim, names = read_names(ns.checkpoint)
    except LatentNameError as e:
        print(f"latent-explorer label: error: {e}", file=sys.stderr)  # noqa: T201
        return 2
    print(f"{ns.checkpoint}: {len(names)} of {latent_dim} latents named")  # noqa: T201
    for i, name in names.items():
        print(f"  z{i}  {name}")  # noqa: T201
    return 0
