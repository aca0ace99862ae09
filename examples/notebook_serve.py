"""Look inside a VAE you just trained, from the notebook you trained it in (docs/python.md).

Each `# %%` is a notebook cell. In a notebook, `serve` returns at once and the last cell shows a
link; as a script it serves until Ctrl-C:

    PYTHONPATH=. python -m examples.notebook_serve
"""

# %% train a small VAE for a few hundred steps: the MLP of examples/mlp_vae on 28×28 dSprites
import sys

import torch
import torch.nn.functional as F

from examples.mlp_vae.model import MLPVAE
from examples.mlp_vae.train import images

STEPS, BETA = 500, 4.0
torch.manual_seed(0)
pool = images(20_000, seed=0)  # (20000, 1, 28, 28) in [0, 1]
model = MLPVAE()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for _ in range(STEPS):
    x = pool[torch.randint(len(pool), (128,))]
    posterior = model.encode(x)
    z = posterior.mean + posterior.std * torch.randn_like(posterior.mean)
    recon = F.binary_cross_entropy_with_logits(model.logits(z), x, reduction="sum") / len(x)
    loss = recon + BETA * posterior.kl().sum(dim=1).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"trained {STEPS} steps: −log p(x|z) {recon.item():.1f} nats")  # noqa: T201

# %% look inside it: the model object as it is, no file written
from latent_explorer import serve  # noqa: E402

in_notebook = "ipykernel" in sys.modules
explorer = serve(
    models={"my-mlp-vae": model},  # served as a copy of its weights, taken now
    data={},  # e.g. {"faces": "~/pictures/faces"}: a folder of images, beside the built-ins
    block=not in_notebook,  # a script serves until Ctrl-C; a notebook carries on
)
explorer  # noqa: B018 (a notebook shows the link here)

# %% training on changes nothing the explorer shows: serve again to see the new weights
# explorer.stop()
# explorer = serve(models={"my-mlp-vae": model})
