"""The README's denoising table: each shipped dSprites model given corrupted held-out sprites.

    python bench/denoise_table.py

Mean PSNR (dB) / SSIM against the clean image over 256 held-out sprites (seed 54321, corruption
seed 1), each model's output rounded to 8 bits, as the /denoise view shows them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.checkpoints import load_checkpoint  # noqa: E402
from app.data.corruption import corrupt  # noqa: E402
from app.data.dsprites import render, sample_classes  # noqa: E402
from app.studies.quality import psnr, ssim, to_8bit  # noqa: E402

MODELS = ("dsprites-dae", "dsprites-ae", "dsprites-vae", "dsprites-beta-vae")
CASES = (
    ("Gaussian, σ = 0.3", "gaussian", 0.3),
    ("salt-and-pepper, 20%", "salt_pepper", 0.2),
    ("random grey blocks, 25%", "mask", 0.25),
    ("none (clean input)", None, 0.0),
)


def score(out: torch.Tensor, clean: torch.Tensor) -> str:
    return f"{float(psnr(out, clean).mean()):.1f} / {float(ssim(out, clean).mean()):.2f}"


def main() -> None:
    torch.set_num_threads(1)
    clean_np = render(sample_classes(np.random.default_rng(54321), 256))[:, None]
    clean = torch.from_numpy(clean_np.astype(np.float32))
    models = {name: load_checkpoint(ROOT / "checkpoints" / name).model.eval() for name in MODELS}
    header = ["corruption", "the corrupted input", *(f"`{n}`" for n in MODELS)]
    print("| " + " | ".join(header) + " |")  # noqa: T201
    print("|" + "---|" * len(header))  # noqa: T201
    for title, noise, level in CASES:
        if noise is None:
            given, before = clean, "–"
        else:
            noisy = corrupt(clean_np.astype(np.float32), noise, level, np.random.default_rng(1))
            given = torch.from_numpy(noisy)
            before = score(to_8bit(given), clean)
        cells = [title, before]
        for model in models.values():
            with torch.no_grad():
                out = torch.sigmoid(model(given)[0])
            cells.append(score(to_8bit(out), clean))
        print("| " + " | ".join(cells) + " |")  # noqa: T201


if __name__ == "__main__":
    main()
