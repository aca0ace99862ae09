"""Train a small diffusers AutoencoderKL on the colour scenes (`latent-explorer train-kl`), saved
as diffusers saves one (config.json + diffusion_pytorch_model.safetensors) with our card.json:
the spatial-latent model the explorer ships, small enough to decode a 64×64 image in ~6 ms on one
core.

The loss is a VAE's −ELBO with a Gaussian likelihood of σ = 0.1 per pixel value (as our colour
models use) and β = 1, over the whole latent image; Stable Diffusion's own VAE was trained with
L1 + LPIPS + a patch GAN and a KL weight of 1e-6 instead, which this does not try to copy. After
training, `scaling_factor` is set as Rombach et al. set theirs (1/0.18215): one over the standard
deviation of the posterior means over 1,024 training images, so that z = latent · scaling_factor
has unit variance and N(0, I) samples land where the data's latents do.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from app.checkpoints.card import ModelCard
from app.checkpoints.files import write_folder_atomically
from app.checkpoints.markdown import autoencoder_kl_markdown
from app.data.shapes3d import ProceduralShapes3D
from app.models.autoencoder_kl import AutoencoderKLConfig, build_network
from app.training.common import device_name

SIGMA = 0.1
EVAL_IMAGES = 1024  # held-out scenes the card's figures are measured on
CONFIG = AutoencoderKLConfig(
    block_out_channels=(16, 32, 32, 64),  # 64×64 → 8×8 latents, as Stable Diffusion's 1/8
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=64,
    scaling_factor=1.0,  # set from the data after training
)


DESCRIPTION = (
    "Train a small diffusers AutoencoderKL on the colour scenes (shapes3d, drawn here) and save "
    "it as diffusers does (config.json, diffusion_pytorch_model.safetensors) with a card.json."
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-kl", help="train a small AutoencoderKL (a spatial latent)", description=DESCRIPTION
    )
    add_arguments(p)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="folder to write, refused if it exists")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--images", type=int, default=8192, help="scenes drawn once and trained on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--eval-images", type=int, default=EVAL_IMAGES, help="held-out scenes the card's eval uses"
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")


def neg_elbo(network: Any, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """(mean −ELBO, mean reconstruction NLL, mean KL) per image, in nats, for x in [0, 1]."""
    moments = network._encode(x * 2 - 1)  # noqa: SLF001
    mean, logvar = moments.chunk(2, dim=1)
    logvar = logvar.clamp(-30.0, 20.0)
    eps = torch.randn(mean.shape, generator=generator)
    z = mean + torch.exp(0.5 * logvar) * eps
    recon = (network.decode(z).sample / 2 + 0.5).clamp(0, 1)  # clamped as it is served
    nll = (0.5 * ((x - recon) / SIGMA) ** 2 + math.log(SIGMA * math.sqrt(2 * math.pi))).flatten(1)
    kl = (0.5 * (mean**2 + logvar.exp() - 1 - logvar)).flatten(1)
    return (nll.sum(1) + kl.sum(1)).mean(), nll.sum(1).mean(), kl.sum(1).mean()


@dataclass(frozen=True)
class HeldOut:
    """The card's `eval` of a model trained here (app.checkpoints.card.Evaluation's fields)."""

    eval_images: int
    recon_nll: float
    kl_per_dim: list[float]
    kl_total: float
    neg_elbo: float
    active_latents: int
    seed: int
    images: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@torch.inference_mode()
def held_out(network: Any, images: torch.Tensor, seed: int, scaling: float) -> HeldOut:
    """The card's `eval`: mean reconstruction NLL at z = μ, KL per latent value and −ELBO over
    `images` (scenes drawn apart from the training ones), and how many latent values carry
    more than ACTIVE_KL nats. The KL is that of the served z = latent · scaling against
    N(0, I), as the explorer measures it."""
    from app.models.elbo import ACTIVE_KL

    nll, kl = torch.zeros((), dtype=torch.float64), None
    for x in images.split(128):
        mean, logvar = network._encode(x * 2 - 1).chunk(2, dim=1)  # noqa: SLF001
        logvar = logvar.clamp(-30.0, 20.0)
        recon = (network.decode(mean).sample / 2 + 0.5).clamp(0, 1)
        mean, logvar = mean * scaling, logvar + 2 * math.log(scaling)
        nll += (0.5 * ((x - recon) / SIGMA) ** 2 + math.log(SIGMA * math.sqrt(2 * math.pi))).sum()
        part = (0.5 * (mean**2 + logvar.exp() - 1 - logvar)).flatten(1).double().sum(0)
        kl = part if kl is None else kl + part
    assert kl is not None
    n = len(images)
    per_dim = (kl / n).tolist()
    return HeldOut(
        eval_images=n,
        recon_nll=round(float(nll) / n, 2),
        kl_per_dim=[round(v, 4) for v in per_dim],
        kl_total=round(sum(per_dim), 2),
        neg_elbo=round(float(nll) / n + sum(per_dim), 2),
        active_latents=sum(v > ACTIVE_KL for v in per_dim),
        seed=seed,
        images="shapes3d scenes drawn by latent-explorer from numpy.random.default_rng(seed), "
        "apart from the training ones",
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="latent-explorer train-kl", description=DESCRIPTION)
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    if args.out.exists():
        print(f"train-kl: error: {args.out} exists: refusing to replace it", file=sys.stderr)  # noqa: T201
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    data = ProceduralShapes3D()
    images = torch.from_numpy(data.sample(rng, args.images).images).float() / 255
    network = build_network(CONFIG).train()
    opt = torch.optim.Adam(network.parameters(), lr=args.lr)
    # cosine decay to 1% of the rate: a late step of the full rate can undo the run (seen: one
    # batch at step 2,500 of a constant-rate run took the held-out −ELBO from −15.9k to −10.5k)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps, eta_min=args.lr / 100)
    generator = torch.Generator().manual_seed(args.seed)
    history: list[dict[str, float]] = []
    bar = tqdm(range(args.steps), desc="train-kl", unit="step")
    for step in bar:
        batch = images[torch.from_numpy(rng.integers(0, len(images), args.batch_size))]
        loss, nll, kl = neg_elbo(network, batch, generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        if step % 50 == 0 or step == args.steps - 1:
            bar.set_postfix(loss=f"{loss.item():.0f}", kl=f"{kl.item():.1f}")
            history.append(
                {"step": step + 1, "neg_elbo": round(loss.item(), 2),
                 "recon_nll": round(nll.item(), 2), "kl": round(kl.item(), 2)}
            )  # fmt: skip
    network.eval()
    with torch.inference_mode():
        means = torch.cat([network._encode(x * 2 - 1).chunk(2, dim=1)[0]  # noqa: SLF001
                           for x in images[:1024].split(128)])  # fmt: skip
        scaling = 1.0 / float(means.std())
    network.register_to_config(scaling_factor=round(scaling, 5))
    eval_seed = args.seed + 1
    held = (
        torch.from_numpy(
            data.sample(np.random.default_rng(eval_seed), args.eval_images).images
        ).float()
        / 255
    )
    evaluation = held_out(network, held, eval_seed, round(scaling, 5))
    command = shlex.join(
        ["latent-explorer", "train-kl", "--out", str(args.out), "--steps", str(args.steps),
         "--batch-size", str(args.batch_size), "--lr", str(args.lr),
         "--images", str(args.images), "--seed", str(args.seed)]
        + (["--eval-images", str(args.eval_images)] if args.eval_images != EVAL_IMAGES else [])
    )  # fmt: skip
    wall = round(time.time() - started, 1)
    card = {
        "name": args.out.name,
        "command": command,
        "commands": [command],
        "recipe": "diffusers AutoencoderKL, 4 blocks (16, 32, 32, 64 channels), 4 latent channels "
        "at 1/8 the side; −ELBO with a Gaussian likelihood (σ = 0.1) and β = 1; Adam, the rate "
        "decayed by a cosine to 1% over the run",
        "objective": {
            "objective": "beta",
            "beta": 1.0,
            "likelihood": "gaussian",
            "gaussian_sigma": SIGMA,
            "scaling_factor": round(scaling, 5),
        },  # fmt: skip
        "dataset": "shapes3d",
        "steps": args.steps,
        "target_steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "seed": args.seed,
        "device": device_name(torch.device("cpu")),
        "torch": torch.__version__,
        "segments": [
            {
                "from_step": 0,
                "to_step": args.steps,
                "device": device_name(torch.device("cpu")),
                "wall_time_s": wall,
                "command": command,
                "torch": torch.__version__,
            }
        ],  # fmt: skip
        "wall_time_s": wall,
        "trained": datetime.now(UTC).date().isoformat(),
        "train_images": args.images,
        "final_train_loss": history[-1],
        "eval": evaluation.to_json(),
        "kl_per_dim": evaluation.kl_per_dim,
        "active_latents": evaluation.active_latents,
        "history": history,
    }

    checked = ModelCard.from_json(card, args.out)  # as loading will read it
    readme = autoencoder_kl_markdown(checked, CONFIG.latent_shape(CONFIG.sample_size), 64)

    def write(tmp: Path) -> None:
        network.save_pretrained(str(tmp), safe_serialization=True)
        (tmp / "card.json").write_text(json.dumps(card, indent=2) + "\n")
        (tmp / "README.md").write_text(readme)

    write_folder_atomically(args.out, write)
    print(  # noqa: T201
        f"wrote {args.out}: {args.steps} steps in {wall} s, held-out −ELBO "
        f"{evaluation.neg_elbo} nats ({evaluation.active_latents} of "
        f"{len(evaluation.kl_per_dim)} latent values in use), scaling_factor {scaling:.5f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
