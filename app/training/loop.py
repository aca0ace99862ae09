"""The training loop: seeded data, a progress bar, periodic and on-signal checkpoints, exact resume,
and DistributedDataParallel when started under torchrun.

Every step's randomness (its batch of factors and its ε for z = μ + σ·ε) is drawn from
`np.random.default_rng((seed, rank, step))`, so a resumed run sees exactly the data and noise the
uninterrupted run would have seen, on any device, and each DDP rank draws its own data.
Batches are rendered ahead on background threads (app/training/stream.py) so the optimiser never
waits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from app.checkpoints import (
    WEIGHTS,
    CheckpointError,
    load_run,
    load_weights,
    save_checkpoint,
    save_run,
    weights_digest,
)
from app.checkpoints.card import Evaluation
from app.checkpoints.evaluation import held_out_figures
from app.data import Dataset, open_dataset
from app.data.corruption import MAX_LEVEL, NOISES
from app.models import VAE, ModelConfig
from app.models.elbo import ACTIVE_KL, reconstruction_nll
from app.models.objectives import (
    BetaELBO,
    BetaTCVAE,
    ControlledCapacity,
    Objective,
    Reconstruction,
)
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
from app.training.stream import prefetch, step_data

log = logging.getLogger(__name__)

EVAL_SEED = 2**31 - 1  # the held-out stream for the card's figures, never a training seed


def build_config(args: TrainArgs, dataset: Dataset) -> ModelConfig:
    if args.kind == "cvae" and not dataset.label_names:
        raise TrainingError(f"a cvae needs labels, and dataset {dataset.name} has none")
    objective = "reconstruction" if args.kind == "ae" else args.objective
    return ModelConfig(
        kind=args.kind,
        latent_dim=args.latents,
        beta=0.0 if args.kind == "ae" else args.beta,
        objective=objective,
        channels=dataset.channels,
        image_size=dataset.image_size,
        likelihood="bernoulli" if dataset.binary else "gaussian",
        label_names=tuple(dataset.label_names) if args.kind == "cvae" else (),
        dataset=dataset.name,
        factor_names=tuple(dataset.factor_names),
        gaussian_sigma=args.gaussian_sigma,
        architecture=args.architecture,
        hidden_dim=args.hidden,
    )


def build_objective(args: TrainArgs, dataset: Dataset) -> Objective:
    if args.kind == "ae":
        return Reconstruction()
    if args.objective == "beta":
        return BetaELBO(beta=args.beta, warmup_steps=args.kl_warmup)
    if args.objective == "capacity":
        return ControlledCapacity(
            gamma=args.gamma, capacity_max=args.capacity_max, capacity_steps=args.capacity_steps
        )
    if args.objective == "tc":
        return BetaTCVAE(beta=args.beta, dataset_size=len(dataset))
    raise TrainingError(f"unknown objective {args.objective!r}: use beta, capacity or tc")


# --- evaluation for the card --------------------------------------------------------------


def evaluate(model: VAE, dataset: Dataset, n: int, device: torch.device) -> Evaluation:
    """The card's held-out figures over `n` images of the held-out stream (EVAL_SEED)."""
    model.eval()

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        done, step = 0, 0
        while done < n:
            b = min(512, n - done)
            d = step_data(dataset, EVAL_SEED, 0, step, b, model.config.latent_dim)
            yield d.x.to(device), d.labels.to(device)
            done, step = done + b, step + 1

    return held_out_figures(model, batches())


# --- the loop -------------------------------------------------------------------------------


def train(args: TrainArgs) -> int:
    """Train (or resume) an AE, VAE, β-VAE, β-TCVAE, CVAE or DAE; returns the process exit code
    (0 done, 130/143 on a signal)."""
    claim_folders(args)  # before anything starts: never replace what this run did not make
    rank, world, local_rank = distributed()
    if world > 1:
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    device = choose_device(args, local_rank)
    main_process = rank == 0  # only rank 0 logs and writes (as nanoGPT's master_process)

    run_path = args.run_path
    record = RunRecord.begin(args.command, device)
    if args.resume:
        try:
            config, weights, opt_state, trainer = load_run(run_path)
        except CheckpointError as e:
            raise TrainingError(f"cannot resume: {e}") from e
        saved = trainer["args"]
        # the run's identity comes from the saved state; only the length and logistics may change
        for name in ("dataset", "kind", "beta", "objective", "latents", "batch_size", "seed",
                     "capacity_max", "capacity_steps", "gamma", "lr", "kl_warmup",
                     "denoise", "init_from", "architecture", "hidden"):  # fmt: skip
            if name in saved:
                setattr(args, name, saved[name])
        record = RunRecord.resume(trainer, args.command, device)
        model = VAE(config)
        try:
            load_weights(model, run_path / WEIGHTS, weights)
        except CheckpointError as e:
            raise TrainingError(f"cannot resume: {e}") from e
        dataset = open_dataset(args.dataset, architecture=config.architecture)
    else:
        dataset = open_dataset(args.dataset, architecture=args.architecture)
        config = build_config(args, dataset)
        torch.manual_seed(args.seed)  # the initial weights
        model = VAE(config)
        if args.init_from:
            record.initialised_from = initialise(model, Path(args.init_from))
    objective = build_objective(args, dataset)
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    if args.resume:
        optimizer.load_state_dict(opt_state)
    net: torch.nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None
        )
    step_fn = torch.compile(net) if args.compile else net

    start_step = record.start_step
    if start_step >= args.steps:
        if main_process:
            log.info("run already at step %d of %d: nothing to do", start_step, args.steps)
        return 0

    bar = tqdm(
        total=args.steps,
        initial=start_step,
        disable=not main_process,
        unit="step",
        dynamic_ncols=True,
        smoothing=0.1,
    )
    kl_ema: torch.Tensor | None = None
    t0 = time.monotonic()
    step = start_step
    replacing = args.overwrite  # the first save replaces another model's folder: keep nothing

    def card_and_save(final: bool) -> None:
        nonlocal replacing
        wall = record.elapsed_before + time.monotonic() - t0
        if main_process:
            save_run(run_path, model, optimizer, trainer_state(args, record, step=step, wall=wall))
            model.eval()
            figures = evaluate(model, dataset, args.eval_images if final else 1024, device)
            model.train()
            card = run_card(
                args,
                record,
                recipe=_recipe(config, objective, args.denoise),
                objective=objective.settings(),
                step=step,
                learning_rate=args.learning_rate,
                world=world,
                wall=wall,
                figures=figures,
            )
            if args.denoise:
                card = card.updated(denoising={"noises": list(NOISES), "max_level": MAX_LEVEL})
            if digests:
                card = card.updated(rank_weight_digests=digests)
            save_checkpoint(Path(args.out), model, card, replaces=replacing)
            replacing = False  # from now on the folder's card is this run's own

    digests: list[str] = []
    stop = StopFlag()
    model.train()
    with stop:
        for d in prefetch(dataset, args, rank, start_step, args.steps):
            x = d.x.to(device, non_blocking=True)
            target = x if d.target is d.x else d.target.to(device, non_blocking=True)
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            labels = d.labels.to(device) if config.kind == "cvae" else None
            eps = d.eps.to(device)
            decoded, mu, logvar, z = step_fn(x, labels, eps)
            nll = reconstruction_nll(decoded, target, config.likelihood, config.gaussian_sigma)
            terms = objective(nll, mu, logvar, z, step)
            optimizer.zero_grad(set_to_none=True)
            terms.loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)

            if step % args.log_every == 0 or step == args.steps:
                kl = terms.kl.detach().cpu()
                kl_ema = kl if kl_ema is None else 0.9 * kl_ema + 0.1 * kl
                entry = {
                    "step": step,
                    "loss": round(terms.loss.item(), 3),
                    "recon": round(terms.recon.item(), 3),
                    "kl": round(kl.sum().item(), 3),
                }
                record.history.append(entry)
                active = int((kl_ema > ACTIVE_KL).sum())
                bar.set_postfix(
                    loss=f"{entry['loss']:.1f}",
                    recon=f"{entry['recon']:.1f}",
                    kl=f"{entry['kl']:.2f}",
                    active=f"{active}/{config.latent_dim}" if config.stochastic else "-",
                )

            stop_now = stop.signum is not None
            if world > 1:  # every rank stops at the same step, or the next all-reduce hangs
                flag = torch.tensor([1.0 if stop_now else 0.0], device=device)
                dist.all_reduce(flag)
                stop_now = flag.item() > 0
            if stop_now:
                break
            if step % args.save_every == 0 and step < args.steps:
                card_and_save(final=False)
    bar.close()
    if world > 1:
        mine = weights_digest(model)
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, mine)
        digests = [str(g) for g in gathered]
    card_and_save(final=True)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    if stop.signum is not None:
        if main_process:
            log.warning(
                "stopped by signal %d at step %d; saved. Continue with --resume", stop.signum, step
            )
        return 128 + stop.signum
    return 0


def _recipe(config: ModelConfig, objective: Objective, denoise: bool = False) -> str:
    if denoise:
        inputs = "Gaussian noise, salt-and-pepper or masked blocks, one per image"
        return f"denoising {_recipe(config, objective)}; inputs corrupted by {inputs}"
    s = objective.settings()
    if config.kind == "ae":
        return "deterministic autoencoder (reconstruction loss only)"
    prefix = "CVAE, " if config.kind == "cvae" else ""
    if s["objective"] == "beta":
        recipe = "VAE, β=1 (negative ELBO)" if s["beta"] == 1 else f"β-VAE, β={s['beta']:g}"
        if s.get("kl_warmup_steps"):
            recipe += f", KL warm-up over the first {s['kl_warmup_steps']:,} steps"
        return prefix + recipe
    if s["objective"] == "capacity":
        return prefix + (
            f"controlled capacity, γ={s['gamma']:g}, C→{s['capacity_max']:g} nats "
            f"over {s['capacity_steps']} steps"
        )
    return prefix + f"β-TCVAE, β={s['beta']:g}"
