"""`latent-explorer train`: its options and the run it starts (the VAE family's loop, or the
VAE-GAN's)."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from app.data import DatasetError
from app.models import ConfigError
from app.training.args import DEFAULT_SAVE_EVERY, recorded_save_every

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


def add_parser(sub: argparse._SubParsersAction) -> None:
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
        help="'dsprites' or 'shapes3d' (procedural), 'fashion-mnist[:PATH]' (its train split), "
        "a dSprites .npz, or a folder of images",
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
    p.add_argument(
        "--arch",
        dest="architecture",
        choices=["conv", "mlp"],
        default="conv",
        help="conv: Burgess et al.'s convolutional stack (64 or 32 px); mlp: two dense hidden "
        "layers each way on the flattened image (Fashion-MNIST at 28×28)",
    )
    p.add_argument(
        "--hidden", type=int, default=256, help="units in each of the two dense hidden layers"
    )
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
    p.add_argument(
        "--save-every",
        type=int,
        default=argparse.SUPPRESS,  # TrainArgs' default, or on --resume the run's own
        help=f"steps between checkpoints (default: {DEFAULT_SAVE_EVERY}; a resumed run keeps "
        "the interval it was saved with unless this is given)",
    )
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


def run(ns: argparse.Namespace) -> int:
    from app.models.gan import DiscriminatorConfig
    from app.training import TrainArgs, TrainingError, train, vaegan

    kwargs = {k: v for k, v in vars(ns).items() if k != "command"}
    gan = {k: kwargs.pop(k) for k in _VAEGAN_OPTIONS if k in kwargs}  # those given
    flags = ", ".join("--" + k.replace("_", "-") for k in gan)
    try:
        args = TrainArgs(**kwargs)
        if args.resume and "save_every" not in kwargs:
            args.save_every = recorded_save_every(args.run_path) or args.save_every
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
