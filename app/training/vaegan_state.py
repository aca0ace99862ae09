"""A VAE-GAN run's settings and its run folder (app/training/vaegan.py is the loop that trains it):
both networks, both optimisers and the counters, saved as safetensors + JSON in one atomic folder
swap, and loaded back so a resumed run continues exactly where it stopped."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from app.checkpoints import (
    CONFIG,
    OPTIMIZER,
    TRAINER,
    WEIGHTS,
    CheckpointError,
    flatten_optimizer,
    load_weights,
    read_config,
    read_json,
    read_tensors,
    recover,
    unflatten_optimizer,
    write_folder_atomically,
    write_json,
)
from app.models import VAE, ConfigError
from app.models.gan import Discriminator, DiscriminatorConfig
from app.training.common import TrainingError

DISCRIMINATOR_WEIGHTS = "discriminator.safetensors"
DISCRIMINATOR_OPTIMIZER = "discriminator-optimizer.safetensors"
# Larsen et al. train with RMSProp at 3e-4; Adam with β1 = 0.5 is DCGAN's (Radford et al. 2016)
# stable choice for GANs, and was better on our data (docs/notes-vaegan.md)
DEFAULT_LR = 3e-4
ADAM_BETAS = (0.5, 0.999)
OPTIMIZER_NAMES = {"adam": "Adam (β1=0.5)", "rmsprop": "RMSProp"}


@dataclass(frozen=True)
class VaeGanSettings:
    # γ weighs L_llike against the GAN term in the decoder's loss (Larsen et al. §2.3). Their
    # code uses 1e-5 to 5e-5 (recon_vs_gan_weight) with a batch-normalised discriminator; ours
    # has none, so its feature scale differs and the value was measured anew on our data
    gamma: float = 1e-2
    # weight on the pixel-space −log p(x|z) (the plain VAE's reconstruction term, with the
    # model's likelihood), added to L_llike. Larsen et al. use none; without it our decoders
    # drifted to checkerboard textures within 250 steps (docs/notes-vaegan.md)
    pixel_weight: float = 1.0
    # Larsen et al.'s code (aegan.py, GradientDescent: margin 0.35 around 0.68 ≈ log 2 nats)
    # pauses the discriminator while its cost on real or on decoded images is below
    # 0.68 − margin (it wins by too much), and the decoder's GAN term while one is above
    # 0.68 + margin (it loses by too much); 0 turns this off, as is usual with a spectrally
    # normalised discriminator (DiscriminatorConfig.spectral_norm), which cannot win outright
    balance_margin: float = 0.35
    optimizer: str = "adam"  # adam (β1 = 0.5) or rmsprop (the paper's), for all three networks

    def __post_init__(self) -> None:
        for name in ("gamma", "pixel_weight", "balance_margin"):
            if not getattr(self, name) >= 0:  # NaN too
                raise TrainingError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.optimizer not in OPTIMIZER_NAMES:
            raise TrainingError(
                f"optimizer must be one of {', '.join(OPTIMIZER_NAMES)}, got {self.optimizer!r}"
            )


def make_optimizer(
    params: list[torch.nn.Parameter], settings: VaeGanSettings, lr: float
) -> torch.optim.Optimizer:
    if settings.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=ADAM_BETAS)


# --- the run folder -------------------------------------------------------------------------


@dataclass
class VaeGanRun:
    """Everything that makes a VAE-GAN run continue exactly where it stopped."""

    vae: VAE
    dis: Discriminator
    opt_vae: torch.optim.Optimizer
    opt_dis: torch.optim.Optimizer
    settings: VaeGanSettings
    trainer: dict[str, Any] = field(default_factory=dict)


def save_run(path: Path, run: VaeGanRun, trainer: dict[str, Any]) -> None:
    """Both networks, both optimisers and the counters, in one atomic folder swap."""
    vae_opt, vae_meta = flatten_optimizer(run.opt_vae.state_dict())
    dis_opt, dis_meta = flatten_optimizer(run.opt_dis.state_dict())

    def tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}

    def write(tmp: Path) -> None:
        save_file(tensors(run.vae), str(tmp / WEIGHTS))
        save_file(tensors(run.dis), str(tmp / DISCRIMINATOR_WEIGHTS))
        save_file(vae_opt, str(tmp / OPTIMIZER))
        save_file(dis_opt, str(tmp / DISCRIMINATOR_OPTIMIZER))
        write_json(tmp / CONFIG, run.vae.config.to_json())
        write_json(tmp / TRAINER, {
            **trainer,
            "vaegan": asdict(run.settings),
            "discriminator": run.dis.config.to_json(),
            "optimizers": {"vae": vae_meta, "discriminator": dis_meta},
        })  # fmt: skip

    write_folder_atomically(Path(path), write)


def assemble(
    vae: VAE, dis: Discriminator, settings: VaeGanSettings, lr: float, device: torch.device,
    channels_last: bool,
) -> VaeGanRun:  # fmt: skip
    """Both networks on the device, then their optimisers (whose state follows the parameters)."""
    for net in (vae, dis):
        net.to(device)
        if channels_last:
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt_vae = make_optimizer(list(vae.parameters()), settings, lr)
    opt_dis = make_optimizer(list(dis.parameters()), settings, lr)
    return VaeGanRun(vae, dis, opt_vae, opt_dis, settings)


def load_run(path: Path, lr: float, device: torch.device, channels_last: bool) -> VaeGanRun:
    """A run folder written by save_run, back into networks and optimisers; TrainingError if it
    is missing, not a VAE-GAN's, or damaged."""
    path = Path(path)
    recover(path)
    try:
        if not path.is_dir():
            raise CheckpointError(f"{path}: no run to resume (the folder does not exist)")
        trainer = read_json(path / TRAINER)
        if not isinstance(trainer, dict) or "vaegan" not in trainer:
            raise CheckpointError(
                f"{path} is not a VAE-GAN run (it has no discriminator): resume it without "
                "--kind vaegan"
            )
        vae = VAE(read_config(path))
        dis = Discriminator(DiscriminatorConfig.from_json(trainer["discriminator"]))
        load_weights(vae, path / WEIGHTS)
        load_weights(dis, path / DISCRIMINATOR_WEIGHTS)
        run = assemble(vae, dis, VaeGanSettings(**trainer["vaegan"]), lr, device, channels_last)
        metas = trainer.pop("optimizers")
        states = {
            OPTIMIZER: (run.opt_vae, metas["vae"]),
            DISCRIMINATOR_OPTIMIZER: (run.opt_dis, metas["discriminator"]),
        }
        for file, (opt, meta) in states.items():
            opt.load_state_dict(unflatten_optimizer(read_tensors(path / file), meta))
    except (CheckpointError, ConfigError, KeyError, TypeError, ValueError) as e:
        raise TrainingError(f"cannot resume: {e}") from e
    run.trainer = trainer
    return run
