"""Train the example MLP VAE on dSprites drawn by latent-explorer's renderer and area-resampled
to 28×28, then write examples/mlp_vae/mlp_vae.safetensors and mlp_vae.json (its card).

    PYTHONPATH=. python -m examples.mlp_vae.train [--steps 6000] [--beta 4]
"""

from __future__ import annotations

import argparse
import datetime
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from app.data import dsprites
from examples.mlp_vae.model import MLPVAE, SIDE, WEIGHTS


def images(n: int, seed: int) -> torch.Tensor:
    """n random sprites, (n, 1, 28, 28) in [0, 1]: each 64×64 render averaged down."""
    classes = dsprites.sample_classes(np.random.default_rng(seed), n)
    out = []
    for start in range(0, n, 4096):
        x = torch.from_numpy(dsprites.render(classes[start : start + 4096])[:, None]).float()
        out.append(F.interpolate(x, size=(SIDE, SIDE), mode="area"))
    return torch.cat(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--beta", type=float, default=4.0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--pool", type=int, default=100_000, help="distinct images drawn once")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    t0 = time.monotonic()
    pool = images(a.pool, a.seed)
    model = MLPVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(a.seed)
    for step in range(1, a.steps + 1):
        x = pool[torch.randint(len(pool), (a.batch_size,), generator=g)]
        post = model.encode(x)
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        recon = F.binary_cross_entropy_with_logits(model.logits(z), x, reduction="sum") / len(x)
        kl = post.kl().sum(dim=1).mean()
        loss = recon + a.beta * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0:
            print(f"step {step}: −log p(x|z) {recon.item():.1f}, KL {kl.item():.2f} nats")  # noqa: T201
    with torch.no_grad():
        kl_per_dim = model.encode(images(2048, a.seed + 1)).kl().mean(dim=0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(WEIGHTS))
    card = {
        "name": MLPVAE.name,
        "recipe": f"β-VAE, β = {a.beta:g}, on dSprites area-resampled to 28×28",
        "beta": a.beta,
        "steps": a.steps,
        "batch_size": a.batch_size,
        "seed": a.seed,
        "trained": datetime.date.today().isoformat(),
        "device": "cpu",
        "wall_time_s": round(time.monotonic() - t0, 1),
        "command": "PYTHONPATH=. python -m examples.mlp_vae.train "
        f"--steps {a.steps} --beta {a.beta:g}",
        "final_loss": {"recon_nll": round(recon.item(), 2), "kl": round(kl.item(), 3)},
        "kl_per_dim": [round(float(v), 4) for v in kl_per_dim],
    }
    WEIGHTS.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
