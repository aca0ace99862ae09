"""An MLP VAE for 28×28 grey images (Kingma & Welling 2014, Appendix C: one hidden layer of
tanh units there, two of ReLU here), kept apart from latent-explorer's own networks: it reaches
the explorer only through the model interface.

    encode: x (B, 1, 28, 28) → 784 → 400 → 400 → μ, log σ² (B, 6)
    decode: z (B, 6) → 400 → 400 → 784 logits → sigmoid → pixel means (B, 1, 28, 28)
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from app.models.interface import ModelDescription, Posterior

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "mlp_vae.safetensors"  # written by `python -m examples.mlp_vae.train`
SIDE, LATENTS, HIDDEN = 28, 6, 400


class MLPVAE(nn.Module):
    name = "example-mlp-vae"  # the name the explorer serves it under

    def __init__(self, card: dict | None = None) -> None:
        super().__init__()
        pixels = SIDE * SIDE
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(pixels, HIDDEN), nn.ReLU(),
            nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2 * LATENTS),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(LATENTS, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
            nn.Linear(HIDDEN, pixels),
        )  # fmt: skip
        self.card = card or {}

    @property
    def description(self) -> ModelDescription:
        return ModelDescription(
            latent_dim=LATENTS,
            channels=1,
            height=SIDE,
            width=SIDE,
            kind="vae",
            likelihood="bernoulli",
            dataset="dsprites-28",  # dSprites area-resampled to 28×28: no ground-truth renderer
            beta=self.card.get("beta"),
            objective="beta",
            provenance={"example": "examples/mlp_vae"},
        )

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        mu, logvar = self.encoder(x).chunk(2, dim=1)  # (B, 6) each
        return Posterior(mu, logvar)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z)).view(-1, 1, SIDE, SIDE)  # (B, 1, 28, 28)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, 1, SIDE, SIDE)


def build() -> MLPVAE:
    """The plugin factory: the trained example, weights from safetensors (no pickle)."""
    import json

    card_file = WEIGHTS.with_suffix(".json")
    card = json.loads(card_file.read_text()) if card_file.exists() else {}
    model = MLPVAE(card)
    model.load_state_dict(load_file(str(WEIGHTS)))
    return model.eval()
