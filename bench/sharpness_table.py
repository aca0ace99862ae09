"""The README's VAE vs VAE-GAN table: the plain colour-shapes β-VAE against the VAE-GAN.

    python bench/sharpness_table.py [A B]   # default: shapes-beta4-vae shapes-vaegan

(`shapes-beta4-vae` is the β-VAE the VAE-GAN was trained on from.)

On 512 held-out colour-shapes scenes (seed 2718, not the training stream) and 512 prior draws
z ~ N(0, I) (seed 0): PSNR and SSIM of the reconstructions (z = μ) against the input, and the
gradient energy (app.studies.quality.gradient_energy) of reconstructions and of samples, all on
8-bit images as the /sharpness view shows them, beside the dataset images' own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.checkpoints import load_checkpoint  # noqa: E402
from app.data import open_dataset  # noqa: E402
from app.inference import decode_latents, encode_images, sample_prior  # noqa: E402
from app.studies.quality import gradient_energy, psnr, ssim, to_8bit  # noqa: E402

N = 512


def main() -> None:
    torch.set_num_threads(1)
    names = sys.argv[1:3] if len(sys.argv) >= 3 else ["shapes-beta4-vae", "shapes-vaegan"]
    batch = open_dataset("shapes3d").sample(np.random.default_rng(2718), N)
    x = to_8bit(torch.from_numpy(batch.images).float() / 255.0)
    data_energy = float(gradient_energy(x).mean())
    print(f"dataset images: gradient energy {data_energy:.4f}\n")
    print("| model | steps | PSNR | SSIM | gradient energy: reconstructions | samples |")
    print("|---|---|---|---|---|---|")
    for name in names:
        ckpt = load_checkpoint(ROOT / "checkpoints" / name)
        recon = torch.cat([to_8bit(encode_images(ckpt, c).reconstruction) for c in x.split(128)])
        z = sample_prior(ckpt.config.latent_dim, N, seed=0)
        samples = torch.cat([to_8bit(decode_latents(ckpt, c)) for c in z.split(128)])
        r_energy = float(gradient_energy(recon).mean())
        print(
            f"| `{name}` | {ckpt.card.steps or 0:,} | {float(psnr(recon, x).mean()):.1f} dB "
            f"| {float(ssim(recon, x).mean()):.3f} "
            f"| {r_energy:.4f} ({100 * r_energy / data_energy:.0f}% of the data's) "
            f"| {float(gradient_energy(samples).mean()):.4f} |"
        )


if __name__ == "__main__":
    main()
