"""How long an AutoencoderKL takes to decode one image through the explorer (its latent scaled,
decoded image by image, clamped), on one core as the server decodes and on all of them: the
shipped `shapes-autoencoder-kl` at its 64×64 and, the network being convolutional, at 256×256
(4×32×32 latents); and a network built to Stable Diffusion's published VAE config with random
weights (none can be downloaded here) at 256×256 and 512×512.

    python bench/autoencoder_kl_speed.py [--repeats 20] [--no-sd]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.checkpoints.diffusers_folder import load_autoencoder_kl  # noqa: E402
from app.models.autoencoder_kl import (  # noqa: E402
    SD_VAE_CONFIG,
    AutoencoderKLConfig,
    AutoencoderKLModel,
    build_network,
)
from app.models.interface import ModelDescription  # noqa: E402
from app.settings import PROJECT_ROOT  # noqa: E402

SHIPPED = PROJECT_ROOT / "checkpoints" / "shapes-autoencoder-kl"


def timed(model, repeats: int) -> tuple[float, float]:
    """(median, p95) milliseconds of one decode of a fresh z ~ N(0, I)."""
    d = model.description.latent_dim
    times = []
    with torch.inference_mode():
        model.decode(torch.randn(1, d))  # warm
        for _ in range(repeats):
            z = torch.randn(1, d)
            t0 = time.perf_counter()
            model.decode(z)
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def at_side(network, config: AutoencoderKLConfig, side: int) -> AutoencoderKLModel:
    shape = config.latent_shape(side)
    description = ModelDescription(latent_dim=math.prod(shape), channels=config.in_channels,
                                   height=side, width=side, latent_shape=shape)  # fmt: skip
    return AutoencoderKLModel(network, config, description).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--no-sd", action="store_true", help="skip the Stable Diffusion-shaped VAE")
    a = ap.parse_args()
    cases = []
    served = load_autoencoder_kl(SHIPPED)
    network, config = served.model.network, served.model.config
    cases += [
        (f"{SHIPPED.name} {s}×{s}", at_side(network, config, s), a.repeats) for s in (64, 256)
    ]
    if not a.no_sd:
        sd = AutoencoderKLConfig.from_json(SD_VAE_CONFIG)
        torch.manual_seed(0)
        sd_network = build_network(sd).eval()
        cases += [(f"SD-shaped, random {s}×{s}", at_side(sd_network, sd, s), r)
                  for s, r in ((256, 5), (512, 2))]  # fmt: skip
    cores = torch.get_num_threads()
    for name, model, repeats in cases:
        model.to(memory_format=torch.channels_last)  # as the server prepares a model
        for threads in (1, cores):
            torch.set_num_threads(threads)
            median, p95 = timed(model, repeats)
            shape = "×".join(map(str, model.description.latent_shape))
            print(f"{name:32s} latent {shape:8s} {threads} thread(s): one decode "  # noqa: T201
                  f"median {median:8.1f} ms  p95 {p95:8.1f} ms  ({repeats} decodes)")  # fmt: skip
        torch.set_num_threads(cores)


if __name__ == "__main__":
    main()
