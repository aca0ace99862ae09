"""`latent-explorer train | serve | evaluate | import | label`: the one console script."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from app.data import DatasetError
from app.models import ConfigError

log = logging.getLogger(__name__)

# the options of --kind vaegan alone, by argparse dest: each sets a field of app.training.vaegan's
# VaeGanSettings, but spectral_norm, which is the discriminator's (DiscriminatorConfig)
_VAEGAN_SETTINGS = {
    "gan_gamma": "gamma",
    "pixel_weight": "pixel_weight",
    "balance_margin": "balance_margin",
    "gan_optimizer": "optimizer",
}
_VAEGAN_OPTIONS = (*_VAEGAN_SETTINGS, "spectral_norm")


def _non_negative(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0, got {text}")
    return value


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an AE, VAE, β-VAE, CVAE or VAE-GAN; resumable",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="checkpoint folder to write; a new run refuses one that is not empty, unless "
        "--overwrite",
    )
    p.add_argument(
        "--dataset",
        default="dsprites",
        help="'dsprites' or 'shapes3d' (procedural), a dSprites .npz, or a folder of images",
    )
    p.add_argument("--kind", choices=["ae", "vae", "cvae", "vaegan"], default="vae")
    p.add_argument("--beta", type=float, default=1.0, help="weight on the KL term (β=1: plain VAE)")
    p.add_argument(
        "--objective",
        choices=["beta", "capacity", "tc"],
        default="beta",
        help="beta: −ELBO with β·KL; capacity: γ·|KL−C| (Burgess et al. 2018); "
        "tc: β-TCVAE (Chen et al. 2018)",
    )
    p.add_argument("--latents", type=int, default=10)
    p.add_argument("--steps", type=int, default=10_000, help="total optimiser steps")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--lr", type=float, default=None, help="learning rate (default 5e-4·√(batch/64))"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir from its last saved step; refused where that run "
        "folder belongs to another checkpoint folder than --out",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="let a new run replace a checkpoint folder (--out) or run folder (--run-dir) that "
        "is not empty; without it, training refuses to start over either",
    )
    p.add_argument(
        "--run-dir",
        type=Path,
        default=argparse.SUPPRESS,  # TrainArgs' None: app.training.args.default_run_dir
        help="resumable state: optimiser, counters and a record of its --out (default: "
        "runs/NAME for an --out inside the working directory, so checkpoints/NAME → runs/NAME; "
        "for an --out outside it, runs/NAME beside it, so /elsewhere/NAME → "
        "/elsewhere/runs/NAME)",
    )
    p.add_argument("--save-every", type=int, default=1000, help="steps between checkpoints")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--capacity-max", type=float, default=25.0)
    p.add_argument("--capacity-steps", type=int, default=100_000)
    p.add_argument("--gamma", type=float, default=1000.0)
    p.add_argument(
        "--kl-warmup",
        type=int,
        default=0,
        help="steps over which the KL weight rises linearly from 0 to β",
    )
    p.add_argument(
        "--init-from",
        type=Path,
        default=None,
        metavar="CHECKPOINT",
        help="start from this checkpoint folder's weights (same network; a new objective, "
        "optimiser and step count); the card names it",
    )
    p.add_argument(
        "--gaussian-sigma",
        type=float,
        default=0.1,
        help="pixel σ of the Gaussian likelihood used for colour data (larger: blurrier, fewer "
        "latents, like a larger β)",
    )
    p.add_argument(
        "--denoise",
        action="store_true",
        help="a denoising model: inputs corrupted (Gaussian, salt-and-pepper or masked blocks), "
        "the clean image the target",
    )
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--render-workers",
        type=int,
        default=1,
        help="threads rendering batches ahead (the same data in the same order for any number; "
        "more keep a GPU fed)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument(
        "--eval-images", type=int, default=4096, help="held-out images for the card's figures"
    )
    _vaegan_options(p)


def _vaegan_options(p: argparse.ArgumentParser) -> None:
    """--kind vaegan's own options. Their default is SUPPRESS, so that the namespace holds only
    those given (a plain run refuses them); the defaults shown are VaeGanSettings'."""
    from app.training.vaegan import OPTIMIZER_NAMES, VaeGanSettings

    defaults = VaeGanSettings()
    g = p.add_argument_group(
        "VAE-GAN (--kind vaegan only; a resumed run keeps the settings it started with)"
    )
    g.add_argument(
        "--gan-gamma",
        type=_non_negative,
        default=argparse.SUPPRESS,
        metavar="FLOAT",
        help="γ: weight of the reconstruction terms against the GAN term in the decoder's loss "
        f"(Larsen et al. 2016) (default: {defaults.gamma:g})",
    )
    g.add_argument(
        "--pixel-weight",
        type=_non_negative,
        default=argparse.SUPPRESS,
        metavar="FLOAT",
        help="λ: weight of the pixel-space −log p(x|z) added to the discriminator-feature "
        f"reconstruction term; 0 is the paper's loss (default: {defaults.pixel_weight:g})",
    )
    g.add_argument(
        "--balance-margin",
        type=_non_negative,
        default=argparse.SUPPRESS,
        metavar="FLOAT",
        help="pause the discriminator while its cost is below 0.68 nats − margin, and the "
        "decoder's GAN term while it is above 0.68 + margin (Larsen et al.'s code); 0 turns "
        f"the rule off (default: {defaults.balance_margin:g})",
    )
    g.add_argument(
        "--spectral-norm",
        action="store_true",
        default=argparse.SUPPRESS,
        help="spectral normalisation of the discriminator's layers (Miyato et al. 2018), "
        "which keeps it from winning outright; usually with --balance-margin 0 "
        "(default: off)",
    )
    g.add_argument(
        "--gan-optimizer",
        choices=list(OPTIMIZER_NAMES),
        default=argparse.SUPPRESS,
        help="optimiser of all three networks: adam (β1=0.5, DCGAN's) or rmsprop (the "
        f"paper's) (default: {defaults.optimizer})",
    )


def _serve_parser(sub: argparse._SubParsersAction) -> None:
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


def _serve(ns: argparse.Namespace) -> int:
    from app.plugins import PluginError, load_plugin
    from app.server import serve

    for spec in ns.plugin:  # each is probed here first, so a mistake is one clear line
        try:
            load_plugin(spec)
        except PluginError as e:
            print(f"latent-explorer serve: error: {e}", file=sys.stderr)  # noqa: T201
            return 2
    return serve(
        host=ns.host, port=ns.port, checkpoints=ns.checkpoints, workers=ns.workers,
        plugins=tuple(ns.plugin),
    )  # fmt: skip


def _evaluate_parser(sub: argparse._SubParsersAction) -> None:
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


def _import_parser(sub: argparse._SubParsersAction) -> None:
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


def _import(ns: argparse.Namespace) -> int:
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


def _label_parser(sub: argparse._SubParsersAction) -> None:
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


def _label(ns: argparse.Namespace) -> int:
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


def _evaluate(ns: argparse.Namespace) -> int:
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


def _train(ns: argparse.Namespace) -> int:
    from app.models.gan import DiscriminatorConfig
    from app.training import TrainArgs, TrainingError, train, vaegan

    kwargs = {k: v for k, v in vars(ns).items() if k != "command"}
    gan = {k: kwargs.pop(k) for k in _VAEGAN_OPTIONS if k in kwargs}  # those given
    flags = ", ".join("--" + k.replace("_", "-") for k in gan)
    try:
        args = TrainArgs(**kwargs)
        if not vaegan.runs_as_vaegan(args):
            if gan:
                verb = "applies" if len(gan) == 1 else "apply"
                raise TrainingError(f"{flags} {verb} only to --kind vaegan")
            return train(args)
        if args.resume and gan:
            log.warning("%s ignored: a resumed run keeps the VAE-GAN settings it started with",
                        flags)  # fmt: skip
        settings = vaegan.VaeGanSettings(
            **{field: gan[k] for k, field in _VAEGAN_SETTINGS.items() if k in gan}
        )
        discriminator = DiscriminatorConfig(spectral_norm=gan.get("spectral_norm", False))
        return vaegan.train(args, settings, discriminator)
    except (TrainingError, DatasetError, ConfigError) as e:
        print(f"latent-explorer train: error: {e}", file=sys.stderr)  # noqa: T201
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="latent-explorer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _serve_parser(sub)
    _evaluate_parser(sub)
    _import_parser(sub)
    _label_parser(sub)
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if ns.command == "train":
        return _train(ns)
    if ns.command == "serve":
        return _serve(ns)
    if ns.command == "evaluate":
        return _evaluate(ns)
    if ns.command == "import":
        return _import(ns)
    if ns.command == "label":
        return _label(ns)
    return 2


if __name__ == "__main__":
    sys.exit(main())
