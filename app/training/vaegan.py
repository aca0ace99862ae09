"""Training a VAE-GAN (Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity
metric"): our VAE, whose decoder doubles as the generator of a GAN, and a discriminator whose
inner layer Dis_l is where reconstructions are compared with their inputs (app/models/gan.py has
the networks and the loss terms). Per the paper's Algorithm 1, each network's gradient is taken
from its own loss at the same point, then all of them step:

    encoder       ← β·L_prior + L_llike
    decoder       ← γ·L_llike − L_GAN        (its part of L_GAN non-saturating)
    discriminator ← −L_GAN                   (it maximises L_GAN)

The loop is app/training/loop.py's: the same TrainArgs, each step's batch and ε drawn from
(seed, rank, step) by the same render-ahead thread (so a VAE-GAN sees exactly the data, noise and
initial VAE weights of a plain VAE with its seed), the same signal handling and card evaluation.
The prior draws z_p come from their own stream of (seed, rank, step). With --init-from the VAE
starts from a trained checkpoint's weights (a β-VAE's, say), as a plain run does. What ships is the
VAE alone (kind "vae", objective "vaegan"), so the explorer loads it like any VAE; the
discriminator and both optimisers' states live only in the run folder, as safetensors + JSON.

The settings (VaeGanSettings, and whether the discriminator is spectrally normalised) come from
the CLI's VAE-GAN options (app/cli/train.py); a resumed run keeps the ones it started with.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from app.checkpoints import (
    TRAINER,
    CheckpointError,
    read_json,
    save_checkpoint,
)
from app.data import open_dataset
from app.models import VAE
from app.models.gan import Discriminator, DiscriminatorConfig, vaegan_terms
from app.models.objectives import BetaELBO
from app.training.args import TrainArgs
from app.training.common import (
    RunRecord,
    StopFlag,
    TrainingError,
    choose_device,
    claim_folders,
    distributed,
    initialise,
    run_card,
    trainer_state,
)
from app.training.loop import build_config, evaluate
from app.training.stream import prefetch
from app.training.vaegan_state import (
    DEFAULT_LR,
    OPTIMIZER_NAMES,
    VaeGanSettings,
    assemble,
    load_run,
    save_run,
)

log = logging.getLogger(__name__)

# z_p is drawn from np.random.default_rng((seed, rank, step, PRIOR_STREAM)): its own stream, so
# the batch and ε of (seed, rank, step) stay exactly those of a plain VAE run
PRIOR_STREAM = 1
EQUILIBRIUM = 0.68  # nats: Larsen et al.'s balance point for the discriminator's costs


def balance(real_cost: float, fake_cost: float, margin: float) -> tuple[bool, bool]:
    """(train the discriminator, give the decoder its GAN term) this step, from the
    discriminator's costs on real and on decoded images (Larsen et al.'s aegan.py)."""
    if margin <= 0:
        return True, True
    dis = not (real_cost < EQUILIBRIUM - margin or fake_cost < EQUILIBRIUM - margin)
    dec = not (real_cost > EQUILIBRIUM + margin or fake_cost > EQUILIBRIUM + margin)
    return (dis, dec) if dis or dec else (True, True)


# what a VAE-GAN cannot take: the objectives and options of plain training it does not implement
_NOT_FOR_VAEGAN = {
    "objective": "its loss is the VAE-GAN's own; --beta and --kl-warmup still weight its KL term",
    "denoise": "a denoising VAE-GAN is not implemented",
    "compile": "the VAE-GAN's three gradients are taken with torch.autograd.grad, uncompiled",
    "gamma": "--gamma is the controlled-capacity objective's weight; the VAE-GAN's γ is "
    "--gan-gamma",
    "capacity_max": "it belongs to the controlled-capacity objective",
    "capacity_steps": "it belongs to the controlled-capacity objective",
}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainArgs)}


def check_args(args: TrainArgs) -> None:
    """Refuse what a VAE-GAN run cannot do, naming the option and why."""
    _, world, _ = distributed()
    if world > 1:
        raise TrainingError(
            f"--kind vaegan trains in a single process, but this is one of {world} torchrun "
            "processes: start it with `latent-explorer train` instead"
        )
    for name, why in _NOT_FOR_VAEGAN.items():
        if getattr(args, name) != _DEFAULTS[name]:
            flag = "--" + name.replace("_", "-")
            raise TrainingError(f"{flag} does not apply to --kind vaegan: {why}")


def runs_as_vaegan(args: TrainArgs) -> bool:
    """Whether app.training.train runs `args` as a VAE-GAN: asked for, or resuming one's run."""
    return args.kind == "vaegan" or (args.resume and is_vaegan_run(args.run_path))


def is_vaegan_run(path: Path) -> bool:
    """Whether the run folder at `path` holds a VAE-GAN's training state."""
    try:
        trainer = read_json(Path(path) / TRAINER)
    except CheckpointError:
        return False
    return isinstance(trainer, dict) and "vaegan" in trainer


def prior_draws(seed: int, rank: int, step: int, batch: int, latents: int) -> torch.Tensor:
    """The step's z_p ~ N(0, I), (batch, latents), a pure function of (seed, rank, step)."""
    rng = np.random.default_rng((seed, rank, step, PRIOR_STREAM))
    return torch.from_numpy(rng.standard_normal((batch, latents), dtype=np.float32))


def recipe(
    settings: VaeGanSettings, discriminator: DiscriminatorConfig, beta: float, kl_warmup: int
) -> str:
    """The card's one-line recipe."""
    out = f"VAE-GAN (Larsen et al. 2016), γ={settings.gamma:g}"
    if beta != 1:
        out += f", β={beta:g}"
    if kl_warmup:
        out += f", KL warm-up over the first {kl_warmup:,} steps"
    if settings.pixel_weight:
        out += f", plus {settings.pixel_weight:g}× the VAE's pixel reconstruction term"
    if settings.balance_margin:
        out += f", D/G balance margin {settings.balance_margin:g}"
    if discriminator.spectral_norm:
        out += ", spectral normalisation in the discriminator (Miyato et al. 2018)"
    return out + f"; {OPTIMIZER_NAMES[settings.optimizer]}"


# --- the loop -------------------------------------------------------------------------------

# the run's identity comes from its saved state on --resume; only the length and logistics change
_IDENTITY = ("dataset", "kind", "beta", "objective", "latents", "batch_size", "seed", "lr",
             "kl_warmup", "gaussian_sigma", "init_from")  # fmt: skip


def train(
    args: TrainArgs,
    settings: VaeGanSettings | None = None,
    discriminator_config: DiscriminatorConfig | None = None,
) -> int:
    """Train (or resume) a VAE-GAN; returns the exit code (0 done, 130/143 on a signal).
    `discriminator_config` is the discriminator's architecture (default DiscriminatorConfig()),
    with its channels set to the dataset's. On --resume the settings and the discriminator are
    the run's own, whatever these say."""
    check_args(args)
    claim_folders(args)  # before anything starts: never replace what this run did not make
    device = choose_device(args)

    run_path = args.run_path
    lr = DEFAULT_LR if args.lr is None else args.lr
    record = RunRecord.begin(args.command, device)
    paused = {"discriminator": 0, "gan": 0}  # steps the balance held either side back
    if args.resume:
        run = load_run(run_path, lr, device, args.channels_last)
        saved = run.trainer["args"]
        for name in _IDENTITY:
            if name in saved:
                setattr(args, name, saved[name])
        lr = DEFAULT_LR if args.lr is None else args.lr  # the run's (its optimisers hold it)
        record = RunRecord.resume(run.trainer, args.command, device)  # its initialised_from too
        paused.update(run.trainer.get("paused_steps", {}))
        dataset = open_dataset(args.dataset)
    else:
        dataset = open_dataset(args.dataset)
        config = dataclasses.replace(
            build_config(dataclasses.replace(args, kind="vae"), dataset), objective="vaegan"
        )
        torch.manual_seed(args.seed)  # the VAE's initial weights are a plain VAE's with this seed
        vae = VAE(config)
        if args.init_from:
            record.initialised_from = initialise(vae, Path(args.init_from))
        dis_config = discriminator_config or DiscriminatorConfig()
        dis = Discriminator(dataclasses.replace(dis_config, channels=config.channels))
        run = assemble(vae, dis, settings or VaeGanSettings(), lr, device, args.channels_last)
    vae, dis, settings = run.vae, run.dis, run.settings
    kl_weight = BetaELBO(beta=args.beta, warmup_steps=args.kl_warmup).weight
    start_step = record.start_step

    if start_step >= args.steps:
        log.info("run already at step %d of %d: nothing to do", start_step, args.steps)
        return 0

    encoder = list(vae.encoder.parameters())
    decoder = list(vae.decoder.parameters())
    discriminator = list(dis.parameters())
    bar = tqdm(total=args.steps, initial=start_step, unit="step", dynamic_ncols=True,
               smoothing=0.1)  # fmt: skip
    t0 = time.monotonic()
    step = start_step
    replacing = args.overwrite  # the first save replaces another model's folder: keep nothing

    def card_and_save(final: bool) -> None:
        nonlocal replacing
        wall = record.elapsed_before + time.monotonic() - t0
        state = trainer_state(args, record, step=step, wall=wall)
        state["paused_steps"] = dict(paused)
        save_run(run_path, run, state)
        figures = evaluate(vae, dataset, args.eval_images if final else 1024, device)
        vae.train()
        card = run_card(
            args,
            record,
            recipe=recipe(settings, dis.config, args.beta, args.kl_warmup),
            objective={
                "objective": "vaegan",
                "beta": args.beta,
                "kl_warmup_steps": args.kl_warmup,
                **asdict(settings),
            },
            step=step,
            learning_rate=lr,
            world=1,
            wall=wall,
            figures=figures,
        )
        card = card.updated(
            vaegan={
                "discriminator": dis.config.to_json(),
                "optimizer": OPTIMIZER_NAMES[settings.optimizer],
                "prior_draws_per_step": args.batch_size,
                "paused_steps": dict(paused),
            }
        )
        save_checkpoint(Path(args.out), vae, card, replaces=replacing)
        replacing = False  # from now on the folder's card is this run's own

    def set_grads(loss: torch.Tensor, params: list[torch.nn.Parameter], keep: bool) -> None:
        for p, g in zip(params, torch.autograd.grad(loss, params, retain_graph=keep), strict=True):
            p.grad = g

    vae.train()
    dis.train()
    with StopFlag() as stop:
        for d in prefetch(dataset, args, 0, start_step, args.steps):
            x = d.x.to(device, non_blocking=True)
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            z_prior = prior_draws(args.seed, 0, d.step, args.batch_size, args.latents)
            terms = vaegan_terms(vae, dis, x, d.eps.to(device), z_prior.to(device))
            reconstruction = terms.feature_nll + settings.pixel_weight * terms.pixel_nll
            train_dis, fool = balance(
                terms.real_cost.item(), terms.fake_cost.item(), settings.balance_margin
            )
            # three gradients at the same point, then the steps (Larsen et al., Algorithm 1)
            set_grads(kl_weight(step) * terms.kl.sum() + reconstruction, encoder, keep=True)
            adversarial = terms.generator if fool else 0.0
            set_grads(settings.gamma * reconstruction + adversarial, decoder, keep=train_dis)
            run.opt_vae.step()
            if train_dis:
                set_grads(terms.discriminator, discriminator, keep=False)
                run.opt_dis.step()
            paused["discriminator"] += not train_dis
            paused["gan"] += not fool
            step += 1
            bar.update(1)

            if step % args.log_every == 0 or step == args.steps:
                kl = terms.kl.detach().sum().item()
                entry = {
                    "step": step,
                    "d_loss": round(terms.discriminator.item(), 4),
                    "g_loss": round(terms.generator.item(), 4),
                    "feature": round(terms.feature_nll.item(), 3),
                    "kl": round(kl, 3),
                    "recon": round(terms.pixel_nll.item(), 3),
                    # steps so far on which the balance paused either side
                    "paused_d": paused["discriminator"],
                    "paused_gan": paused["gan"],
                }
                record.history.append(entry)
                bar.set_postfix(D=f"{entry['d_loss']:.3f}", G=f"{entry['g_loss']:.3f}",
                                feat=f"{entry['feature']:.1f}", kl=f"{kl:.2f}")  # fmt: skip

            if stop.signum is not None:
                break
            if step % args.save_every == 0 and step < args.steps:
                card_and_save(final=False)
    bar.close()
    card_and_save(final=True)
    if stop.signum is not None:
        log.warning("stopped by signal %d at step %d; saved. Continue with --resume",
                    stop.signum, step)  # fmt: skip
        return 128 + stop.signum
    return 0
