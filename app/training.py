"""The training loop: seeded data, a progress bar, periodic and on-signal checkpoints, exact resume,
and DistributedDataParallel when started under torchrun.

Every step's randomness (its batch of factors and its ε for z = μ + σ·ε) is drawn from
`np.random.default_rng((seed, rank, step))`, so a resumed run sees exactly the data and noise the
uninterrupted run would have seen, on any device, and each DDP rank draws its own data.
Batches are rendered ahead on background threads (app/batches.py) so the optimiser never waits.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from app.batches import prefetch, step_data
from app.checkpoints import (
    WEIGHTS,
    CheckpointError,
    load_checkpoint,
    load_run,
    load_weights,
    save_checkpoint,
    save_run,
    weights_digest,
)
from app.corruption import MAX_LEVEL, NOISES
from app.data import Dataset, open_dataset
from app.models import VAE, ModelConfig
from app.models.elbo import kl_per_dim, reconstruction_nll
from app.models.objectives import (
    BetaELBO,
    BetaTCVAE,
    ControlledCapacity,
    Objective,
    Reconstruction,
)

log = logging.getLogger(__name__)

ACTIVE_KL = 0.1  # nats: a latent whose mean KL is above this is "in use" (DESIGN.md)
EVAL_SEED = 2**31 - 1  # the held-out stream for the card's figures, never a training seed


@dataclass
class TrainArgs:
    out: Path
    dataset: str = "dsprites"
    kind: str = "vae"
    beta: float = 1.0
    objective: str = "beta"  # beta | capacity | tc (the AE always uses reconstruction alone)
    latents: int = 10
    steps: int = 10_000
    batch_size: int = 64
    lr: float | None = None  # default: 5e-4 at batch 64 (Burgess et al.), scaled by √(batch/64)
    seed: int = 0
    device: str = "cpu"
    resume: bool = False
    run_dir: Path | None = None  # default: runs/<name of --out>
    save_every: int = 1000
    log_every: int = 20
    capacity_max: float = 25.0
    capacity_steps: int = 100_000
    gamma: float = 1000.0
    kl_warmup: int = 0  # steps over which the KL weight rises from 0 to β (beta objective)
    denoise: bool = False  # inputs corrupted (app.corruption), the clean image the target
    # a checkpoint folder whose weights start this run (a new objective on a trained network);
    # the optimiser, the step count and the data stream start afresh
    init_from: Path | None = None
    # the Gaussian likelihood's fixed pixel σ (colour data): it sets how much a nat of KL costs
    # against reconstruction, like β does (σ = 0.1 makes β=4 a weak pressure on 12,288 values)
    gaussian_sigma: float = 0.1
    channels_last: bool = True
    compile: bool = False
    prefetch: int = 4
    # threads rendering batches ahead; each step's batch depends on (seed, rank, step) alone, so
    # any number gives the same data in the same order (more keep a GPU fed)
    render_workers: int = 1
    threads: int | None = None
    eval_images: int = 4096
    command: str = field(default_factory=lambda: shlex.join(["latent-explorer", *sys.argv[1:]]))

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else 5e-4 * (self.batch_size / 64) ** 0.5

    @property
    def run_path(self) -> Path:
        return self.run_dir if self.run_dir is not None else Path("runs") / Path(self.out).name


class TrainingError(Exception):
    """Training cannot start as asked, with a message that says why."""


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


@torch.no_grad()
def evaluate(model: VAE, dataset: Dataset, n: int, device: torch.device) -> dict[str, Any]:
    """Mean −log p(x|z), KL per latent and the negative ELBO on held-out images (z = μ for the
    reconstruction term, so the figure is the model's deterministic reconstruction)."""
    model.eval()
    cfg = model.config
    recon_sum, kl_sum, done = 0.0, torch.zeros(cfg.latent_dim, dtype=torch.float64), 0
    step = 0
    while done < n:
        b = min(512, n - done)
        d = step_data(dataset, EVAL_SEED, 0, step, b, cfg.latent_dim)
        x, labels = d.x.to(device), d.labels.to(device)
        decoded, mu, logvar, _ = model(x, labels if cfg.kind == "cvae" else None)
        recon_sum += reconstruction_nll(decoded, x, cfg.likelihood, cfg.gaussian_sigma).sum().item()
        if logvar is not None:
            kl = kl_per_dim(mu, logvar)
            kl_sum += kl.sum(0).double().cpu()
        done += b
        step += 1
    kl_mean = (kl_sum / done).tolist()
    recon = recon_sum / done
    out: dict[str, Any] = {"eval_images": done, "recon_nll": round(recon, 4)}
    if cfg.stochastic:
        out["kl_per_dim"] = [round(v, 4) for v in kl_mean]
        out["kl_total"] = round(sum(kl_mean), 4)
        out["neg_elbo"] = round(recon + sum(kl_mean), 4)
        out["active_latents"] = sum(v > ACTIVE_KL for v in kl_mean)
    return out


# --- the loop -------------------------------------------------------------------------------


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop saves and stops at the next step boundary."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._set)
        return self

    def _set(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment, or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def train(args: TrainArgs) -> int:
    """Train (or resume) a model; returns the process exit code (0 done, 130/143 on a signal)."""
    from app import vaegan  # imported here: app.vaegan builds on this module

    if vaegan.runs_as_vaegan(args):
        return vaegan.train(args)
    rank, world, local_rank = _distributed()
    if world > 1:
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("--device cuda was asked for, but this machine has no CUDA GPU")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    main_process = rank == 0  # only rank 0 logs and writes (as nanoGPT's master_process)

    run_path = args.run_path
    elapsed_before, start_step = 0.0, 0
    history: list[dict[str, Any]] = []
    commands = [args.command]
    initialised_from: dict[str, Any] | None = None
    if args.resume:
        try:
            config, weights, opt_state, trainer = load_run(run_path)
        except CheckpointError as e:
            raise TrainingError(f"cannot resume: {e}") from e
        saved = trainer["args"]
        # the run's identity comes from the saved state; only the length and logistics may change
        for name in ("dataset", "kind", "beta", "objective", "latents", "batch_size", "seed",
                     "capacity_max", "capacity_steps", "gamma", "lr", "kl_warmup",
                     "denoise", "init_from"):  # fmt: skip
            if name in saved:
                setattr(args, name, saved[name])
        commands = [*trainer.get("commands", [saved.get("command", "?")]), args.command]
        start_step = int(trainer["step"])
        elapsed_before = float(trainer.get("wall_time_s", 0.0))
        history = list(trainer.get("history", []))
        initialised_from = trainer.get("initialised_from")
        model = VAE(config)
        try:
            load_weights(model, run_path / WEIGHTS, weights)
        except CheckpointError as e:
            raise TrainingError(f"cannot resume: {e}") from e
        dataset = open_dataset(args.dataset)
    else:
        dataset = open_dataset(args.dataset)
        config = build_config(args, dataset)
        torch.manual_seed(args.seed)  # the initial weights
        model = VAE(config)
        if args.init_from:
            initialised_from = _initialise(model, Path(args.init_from))
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

    def card_and_save(final: bool) -> None:
        wall = elapsed_before + time.monotonic() - t0
        if main_process:
            trainer_state = {
                "step": step,
                "wall_time_s": round(wall, 1),
                "args": {
                    k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(args).items()
                },
                "history": history,
                "commands": commands,
                "initialised_from": initialised_from,
            }
            save_run(run_path, model, optimizer, trainer_state)
            model.eval()
            figures = evaluate(model, dataset, args.eval_images if final else 1024, device)
            model.train()
            card = {
                "name": Path(args.out).name,
                "command": commands[0],  # how the run began; resumptions follow in "commands"
                "commands": commands,
                "recipe": _recipe(config, objective, args.denoise),
                "objective": objective.settings(),
                "steps": step,
                "target_steps": args.steps,
                "batch_size": args.batch_size,
                "learning_rate": args.learning_rate,
                "images_seen": step * args.batch_size * world,
                "seed": args.seed,
                "world_size": world,
                "device": _device_name(device),
                "wall_time_s": round(wall, 1),
                "torch": torch.__version__,
                "final_train_loss": history[-1] if history else None,
                "eval": figures,
                "kl_per_dim": figures.get("kl_per_dim"),
                "active_latents": figures.get("active_latents"),
                "run_dir": str(run_path),
            }
            record_initialisation(card, initialised_from)
            if args.denoise:
                card["denoising"] = {"noises": list(NOISES), "max_level": MAX_LEVEL}
            if digests:
                card["rank_weight_digests"] = digests
            save_checkpoint(Path(args.out), model, card)

    digests: list[str] = []
    stop = _StopFlag()
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
                history.append(entry)
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


# the fields that fix the network's shape and meaning: a run may start from another's weights
# only when all of them agree (the objective, β and the schedule are what it may change)
_INIT_FIELDS = ("kind", "latent_dim", "channels", "image_size", "likelihood", "gaussian_sigma",
                "conv_channels", "hidden_dim", "label_names", "dataset")  # fmt: skip


def _initialise(model: VAE, source: Path) -> dict[str, Any]:
    """Load the weights of checkpoint folder `source` into `model`; → what the card records."""
    try:
        init = load_checkpoint(source)
    except CheckpointError as e:
        raise TrainingError(f"cannot initialise from {source}: {e}") from e
    differ = [
        f"{name} {getattr(init.config, name)!r} there, {getattr(model.config, name)!r} here"
        for name in _INIT_FIELDS
        if getattr(init.config, name) != getattr(model.config, name)
    ]
    if differ:
        raise TrainingError(
            f"cannot initialise from {source}: its network differs from this run's: "
            + "; ".join(differ)
        )
    model.load_state_dict(init.model.state_dict())
    return {
        "name": source.name,
        "path": str(source),
        "digest": init.digest,
        "recipe": init.card.get("recipe", "?"),
        "steps": int(init.card.get("steps", 0)),
    }


def record_initialisation(card: dict[str, Any], initialised_from: dict[str, Any] | None) -> None:
    """Say in the card what a run started from (`_initialise`'s record): a recipe suffix and the
    record itself. Nothing for a run that started from its seed."""
    if initialised_from:
        card["recipe"] = (
            f"{card['recipe']}; initialised from {initialised_from['name']} "
            f"({initialised_from['recipe']}, {initialised_from['steps']:,} steps)"
        )
        card["initialised_from"] = initialised_from


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


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
