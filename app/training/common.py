"""What the two training loops (app/training/loop.py, app/training/vaegan.py) share: the stop flag,
the device, which folders a run may write (claim_folders), starting from another checkpoint's
weights, and the parts of the run state and the model card that do not depend on the objective, so
a plain run and a VAE-GAN run record themselves alike.

A run may be resumed on another machine (a few thousand steps on the CPU, the rest on a GPU), so
its RunRecord, and the card, keep one entry per segment (the steps, device, wall time and command
of each start or resumption), not only the device of the last one.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from app.checkpoints import (
    TRAINER,
    WEIGHTS,
    CheckpointError,
    ModelCard,
    load_checkpoint,
    read_card,
    read_json,
    read_tensors,
    recover,
)
from app.checkpoints.card import Evaluation, Parent
from app.models import VAE

if TYPE_CHECKING:
    from app.training.args import TrainArgs

log = logging.getLogger(__name__)


class TrainingError(Exception):
    """Training cannot start as asked, with a message that says why."""


class StopFlag:
    """Set by SIGINT/SIGTERM; a loop saves and stops at the next step boundary."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._set)
        return self

    def _set(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment, or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def choose_device(args: TrainArgs, local_rank: int = 0) -> torch.device:
    """The device `args` asks for (a clear error where there is no GPU), with its thread count."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device != "cuda":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for, but this machine has no CUDA GPU")
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    cores, threads = os.cpu_count() or 1, torch.get_num_threads()
    return f"cpu ({_count(cores, 'core')}, {_count(threads, 'thread')})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# --- which folders a run may write -----------------------------------------------------------


def claim_folders(args: TrainArgs) -> None:
    """Refuse, before any training work and with nothing written, a run that would replace what
    it did not make. A new run needs its checkpoint folder (--out) and run folder (--run-dir)
    missing or empty, or --overwrite; a --resume needs a run folder that belongs to --out
    (Ownership). --init-from is only read, never claimed."""
    out, run = Path(args.out), args.run_path
    if out.resolve() == run.resolve():
        raise TrainingError(
            f"--run-dir {run} is the checkpoint folder --out: give the run state its own folder"
        )
    for folder in (out, run):
        recover(folder)  # a save a crash interrupted leaves the previous folder as a backup
    if args.resume:
        if args.overwrite:
            raise TrainingError(
                "--overwrite starts a new run in place of an old one; it does not go with --resume"
            )
        trainer = _trainer(run)
        if trainer is None:
            _refuse_a_run_left_at_the_old_default(args)
            return  # the loop's loading says what is missing
        ownership = Ownership.of(trainer, run, out)
        if ownership.problem:
            raise TrainingError(f"cannot resume: {ownership.problem}")
        return

    taken = [p for p in (out, run) if _occupied(p)]
    if not taken:
        return
    if args.overwrite:
        if distributed()[0] == 0:
            for p in taken:
                log.warning("--overwrite: this run replaces %s", p)
        return
    problems, advice = [], []
    if out in taken:
        holds = "a checkpoint" if (out / WEIGHTS).exists() else "files"
        problems.append(f"{out} already holds {holds}")
    if run in taken:
        trainer = _trainer(run)
        if trainer is None:
            problems.append(f"{run} already holds files")
        else:
            ownership = Ownership.of(trainer, run, out)
            held = f"{run} already holds the run of {ownership.owner}{ownership.at}"
            if ownership.problem:
                held += f", not of {out}"
            else:
                advice.append("continue it with --resume")
            problems.append(held)
    if out in taken:
        advice.append("choose another --out")
    if run in taken and not advice:
        advice.append("give this run another --run-dir")
    replace = "both" if len(taken) == 2 else "it"
    raise TrainingError(
        "; ".join(problems)
        + ": "
        + ", ".join(advice)
        + f", or pass --overwrite to replace {replace}"
    )


def checkpoint_record(args: TrainArgs) -> dict[str, str]:
    """What trainer.json records of the checkpoint folder its run writes (--out): the absolute
    path, and the path from the run folder, which still holds when both move together (a clone
    of the repository in another place)."""
    out, run = Path(args.out).resolve(), args.run_path.resolve()
    return {"path": str(out), "from_run_dir": os.path.relpath(out, run)}


@dataclass
class Ownership:
    """Whose run a run folder holds, and whether it may go on writing checkpoint folder `out`."""

    owner: str  # the checkpoint folder it belongs to, as a person would write it
    at: str  # " (step N)"
    problem: str | None  # why it may not write `out`; None where it may

    @classmethod
    def of(cls, trainer: dict[str, Any], run: Path, out: Path) -> Ownership:
        """A run folder belongs to the checkpoint folder its trainer.json records
        (checkpoint_record); one saved before that record, to the --out it started with
        (args.out, relative to the working directory of the time: for runs/NAME, the folder
        holding runs/). A checkpoint folder that holds exactly the run's weights (both are saved
        together) is its own wherever it now lies (renamed with its run); one that holds other
        weights is not, unless its card names this run folder (a crash between the two saves)."""
        here, target = run.resolve(), out.resolve()
        at = f" (step {int(trainer.get('step', 0)):,})"
        record = trainer.get("checkpoint")
        if isinstance(record, dict) and "path" in record:
            moved_with_it = (here / str(record.get("from_run_dir") or record["path"])).resolve()
            places, owner = [moved_with_it, Path(record["path"])], _shown(moved_with_it)
        else:
            owner = str(trainer.get("args", {}).get("out", "an unrecorded checkpoint folder"))
            places = _anchored(Path(owner), here.parent.parent)
        if _same_weights(run, out):
            return cls(str(out), at, None)
        if not any(p.resolve() == target for p in places):
            why = (
                f"{run} holds the run of {owner}{at}, not of {out}: resume it with --out "
                f"{owner}, or give {out} its own --run-dir"
            )
            return cls(owner, at, why)
        if (out / WEIGHTS).exists() and not _card_names(out, here):
            why = (
                f"{out} holds weights that the run in {run}{at} did not save: give this run "
                "another --out"
            )
            return cls(owner, at, why)
        return cls(owner, at, None)


def _anchored(path: Path, root: Path) -> list[Path]:
    """Where a path a run wrote relative to the working directory of its time may lie: there,
    or in `root`."""
    return [path] if path.is_absolute() else [Path.cwd() / path, root / path]


def _card_names(out: Path, run: Path) -> bool:
    """Whether checkpoint folder `out`'s card says the run in folder `run` made it."""
    try:
        named = read_card(out).run_dir
    except CheckpointError:
        return False
    anchor = out.resolve().parent.parent
    return isinstance(named, str) and any(
        p.resolve() == run for p in _anchored(Path(named), anchor)
    )


def _refuse_a_run_left_at_the_old_default(args: TrainArgs) -> None:
    """Runs for an --out outside the working directory were kept in its runs/NAME before they
    moved beside their checkpoint (args.default_run_dir): name the old place where it holds
    this --out's run."""
    old = Path("runs") / Path(args.out).name
    if args.run_dir is not None or old.resolve() == args.run_path.resolve():
        return
    trainer = _trainer(old)
    if trainer is not None and Ownership.of(trainer, old, Path(args.out)).problem is None:
        raise TrainingError(
            f"cannot resume: {args.run_path} holds no run; {args.out}'s run is in {old}: "
            f"resume it with --run-dir {old}"
        )


def _occupied(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def _trainer(run: Path) -> dict[str, Any] | None:
    """The run folder's trainer.json, or None where there is none to read."""
    try:
        trainer = read_json(run / TRAINER)
    except (CheckpointError, OSError):
        return None
    return trainer if isinstance(trainer, dict) and "step" in trainer else None


def _same_weights(run: Path, out: Path) -> bool:
    try:
        a, b = read_tensors(run / WEIGHTS), read_tensors(out / WEIGHTS)
    except (CheckpointError, OSError):
        return False
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _shown(path: Path) -> str:
    """`path` relative to the working directory where it lies inside it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# --- starting from another checkpoint's weights ---------------------------------------------

# the fields that fix the network's shape and meaning: a run may start from another's weights
# only when all of them agree (the objective, β and the schedule are what it may change)
INIT_FIELDS = ("kind", "latent_dim", "channels", "image_size", "likelihood", "gaussian_sigma",
               "conv_channels", "hidden_dim", "label_names", "dataset",
               "architecture", "prior", "prior_components")  # fmt: skip


def initialise(model: VAE, source: Path) -> dict[str, Any]:
    """Load the weights of checkpoint folder `source` into `model`; → what the card records."""
    try:
        init = load_checkpoint(source)
    except CheckpointError as e:
        raise TrainingError(f"cannot initialise from {source}: {e}") from e
    differ = [
        f"{name} {getattr(init.config, name)!r} there, {getattr(model.config, name)!r} here"
        for name in INIT_FIELDS
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
        "recipe": init.card.recipe or "?",
        "steps": init.card.steps or 0,
    }


def initialised_recipe(recipe: str, initialised_from: dict[str, Any] | None) -> str:
    """The recipe, with what the run started from (`initialise`'s record) where it did not
    start from its seed."""
    if not initialised_from:
        return recipe
    init = Parent.model_validate(initialised_from)
    return f"{recipe}; initialised from {init.name} ({init.recipe}, {init.steps or 0:,} steps)"


# --- the run's record, carried from one segment to the next -----------------------------------

UNRECORDED = "not recorded"  # the device of steps taken before runs kept segments


@dataclass
class RunRecord:
    """What trainer.json carries from one segment of a run to the next (each start or
    --resume), and where this segment began: the commands so far, the step and wall time it
    starts from, the loss history (the loop appends to it), what the run was initialised from,
    and the earlier segments, each {"from_step", "to_step", "device", "wall_time_s", "command",
    "torch"}.
    A run saved before segments were kept gets one covering its earlier steps, device
    UNRECORDED."""

    command: str  # this segment's
    device: str  # this segment's, as device_name writes it
    commands: list[str]
    start_step: int = 0
    elapsed_before: float = 0.0  # seconds the earlier segments took
    history: list[dict[str, Any]] = field(default_factory=list)
    initialised_from: dict[str, Any] | None = None
    earlier: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def begin(cls, command: str, device: torch.device) -> RunRecord:
        return cls(command, device_name(device), [command])

    @classmethod
    def resume(cls, trainer: dict[str, Any], command: str, device: torch.device) -> RunRecord:
        """The record of a saved run's trainer.json, continued by `command` on `device`."""
        first = [trainer.get("args", {}).get("command", "?")]  # runs saved before "commands"
        start, elapsed = int(trainer["step"]), float(trainer.get("wall_time_s", 0.0))
        earlier = list(trainer.get("segments", []))
        if not earlier and start > 0:
            earlier = [{"from_step": 0, "to_step": start, "device": UNRECORDED,
                        "wall_time_s": round(elapsed, 1), "command": None,
                        "torch": UNRECORDED}]  # fmt: skip
        return cls(
            command,
            device_name(device),
            [*trainer.get("commands", first), command],
            start,
            elapsed,
            list(trainer.get("history", [])),
            trainer.get("initialised_from"),
            earlier,
        )

    def segments(self, step: int, wall: float) -> list[dict[str, Any]]:
        """All segments, this one ending at `step` after `wall` seconds of the whole run."""
        current = {
            "from_step": self.start_step,
            "to_step": step,
            "device": self.device,
            "wall_time_s": round(wall - self.elapsed_before, 1),
            "command": self.command,
            "torch": torch.__version__,
        }
        return [*self.earlier, current]


def describe_segments(segments: list[dict[str, Any]]) -> str:
    """Where a run's steps were taken, in words: "12,000 steps on cpu (…), 38,000 on cuda (…)",
    consecutive segments on one device counted together."""
    merged: list[tuple[str, int]] = []
    for s in segments:
        steps = int(s["to_step"]) - int(s["from_step"])
        if merged and merged[-1][0] == s["device"]:
            merged[-1] = (s["device"], merged[-1][1] + steps)
        else:
            merged.append((s["device"], steps))
    merged = [m for m in merged if m[1] > 0] or merged[-1:]
    parts = [
        f"{n:,} {'steps ' if i == 0 else ''}"
        + ("on a device not recorded" if d == UNRECORDED else f"on {d}")
        for i, (d, n) in enumerate(merged)
    ]
    return ", ".join(parts)


# --- what a loop saves ----------------------------------------------------------------------


def trainer_state(args: TrainArgs, record: RunRecord, *, step: int, wall: float) -> dict[str, Any]:
    """The run folder's trainer.json (a loop adds its own entries)."""
    return {
        "step": step,
        "wall_time_s": round(wall, 1),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(args).items()},
        "checkpoint": checkpoint_record(args),  # the folder this run writes: see claim_folders
        "history": record.history,
        "commands": record.commands,
        "initialised_from": record.initialised_from,
        "segments": record.segments(step, wall),
    }


def run_card(
    args: TrainArgs,
    record: RunRecord,
    *,
    recipe: str,
    objective: dict[str, Any],
    step: int,
    learning_rate: float,
    world: int,
    wall: float,
    figures: Evaluation,
) -> ModelCard:
    """The model card's fields that every kind of run has, in the order the card shows them."""
    commands, segments, history = record.commands, record.segments(step, wall), record.history
    card: dict[str, Any] = {
        "name": Path(args.out).name,
        "command": commands[0],  # how the run began; resumptions follow in "commands"
        "commands": commands,
        "recipe": initialised_recipe(recipe, record.initialised_from),
        "objective": objective,
        "steps": step,
        "target_steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": learning_rate,
        "images_seen": step * args.batch_size * world,
        "seed": args.seed,
        "world_size": world,
        "device": segments[-1]["device"],  # this segment's; "segments" has every one
        "segments": segments,
        "trained_on": describe_segments(segments),
        "wall_time_s": round(wall, 1),
        "torch": torch.__version__,
        "final_train_loss": history[-1] if history else None,
        "eval": figures.model_dump(mode="json", exclude_unset=True),
        "kl_per_dim": figures.kl_per_dim,
        "active_latents": figures.active_latents,
        "run_dir": str(args.run_path),
    }
    if record.initialised_from:
        card["initialised_from"] = record.initialised_from
    return ModelCard.from_json(card, args.out)
