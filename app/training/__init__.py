"""Training: the loops that make the models the explorer serves, and everything they need that
serving does not.

    args.py          TrainArgs: what a run is asked to do (the CLI's options)
    loop.py          the VAE family's loop: AE, VAE, β-VAE, β-TCVAE, controlled capacity, CVAE, DAE
    vaegan.py        the VAE-GAN's loop (Larsen et al. 2016) on the same data stream
    common.py        what both loops share: stop flag, device, which folders a run may write,
                     --init-from, the run's record
    stream.py        the data stream: each step's batch and noise from (seed, rank, step)
    vaegan_state.py  the VAE-GAN's run folder (discriminator, two optimisers)

`train` picks the loop: a VAE-GAN when asked for one or when resuming one's run folder.
Nothing under app/web imports this package (checked by the import contracts in pyproject.toml).
"""

from __future__ import annotations

from app.training import loop, vaegan
from app.training.args import TrainArgs
from app.training.common import TrainingError

__all__ = ["TrainArgs", "TrainingError", "train"]


def train(args: TrainArgs) -> int:
    """Train (or resume) the run `args` describes; returns the process exit code (0 done,
    130/143 on a signal)."""
    if vaegan.runs_as_vaegan(args):
        return vaegan.train(args)
    return loop.train(args)
