"""What a training run is asked to do: the command line's options, as the loops read them."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from app.checkpoints import TRAINER, CheckpointError, read_json

DEFAULT_SAVE_EVERY = 1000  # steps between checkpoints of a new run


@dataclass
class TrainArgs:
    out: Path
    dataset: str = "dsprites"
    kind: str = "vae"
    beta: float = 1.0
    objective: str = "beta"  # beta | capacity | tc (the AE always uses reconstruction alone)
    latents: int = 10
    architecture: str = "conv"  # conv (Burgess et al.'s stack) or mlp (dense, any image side)
    hidden: int = 256  # units in each of the two dense hidden layers
    steps: int = 10_000
    batch_size: int = 64
    lr: float | None = None  # default: 5e-4 at batch 64 (Burgess et al.), scaled by √(batch/64)
    seed: int = 0
    device: str = "cpu"
    resume: bool = False
    run_dir: Path | None = None  # default: default_run_dir(out)
    # a new run may replace an existing checkpoint folder and run folder (common.claim_folders)
    overwrite: bool = False
    # `train --resume` without --save-every keeps the run's own (recorded_save_every)
    save_every: int = DEFAULT_SAVE_EVERY
    log_every: int = 20
    capacity_max: float = 25.0
    capacity_steps: int = 100_000
    gamma: float = 1000.0
    kl_warmup: int = 0  # steps over which the KL weight rises from 0 to β (beta objective)
    denoise: bool = False  # inputs corrupted (app.data.corruption), the clean image the target
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
        return self.run_dir if self.run_dir is not None else default_run_dir(Path(self.out))


def default_run_dir(out: Path) -> Path:
    """Where a run keeps its resumable state unless told (--run-dir): runs/NAME for an --out
    inside the working directory (checkpoints/NAME → runs/NAME, as this repository keeps them);
    for an --out outside it, runs/NAME in the folder that holds it (/elsewhere/NAME →
    /elsewhere/runs/NAME), so a checkpoint written elsewhere never takes over this folder's
    runs/NAME. Two --out inside the working directory with one name would share runs/NAME:
    the run folder records whose it is, and training refuses the other (common.claim_folders)."""
    out = Path(out)
    if out.resolve().is_relative_to(Path.cwd().resolve()):
        return Path("runs") / out.name
    return out.parent / "runs" / out.name


def recorded_save_every(run: Path) -> int | None:
    """The save interval run folder `run` was last saved with (its trainer.json's args), or None
    where there is none to read: the loop then says what is wrong with the run folder."""
    try:
        trainer = read_json(Path(run) / TRAINER)
    except (CheckpointError, OSError):
        return None
    saved = trainer.get("args") if isinstance(trainer, dict) else None
    every = saved.get("save_every") if isinstance(saved, dict) else None
    return every if isinstance(every, int) and not isinstance(every, bool) and every > 0 else None
