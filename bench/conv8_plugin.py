"""An 8-latent convolutional VAE for 64×64 grey images, served as a plugin for the paint bench
(`--plugin bench.conv8_plugin:build`): the network a person brings with their own code (four
stride-2 convolutions of 32, 32, 64, 64 channels each way, as the β-VAE paper's), with random
weights: the bench times decoding and painting, not what it decodes to."""

from __future__ import annotations

import torch
from torch import nn

from app.models.interface import ModelDescription, Posterior

LATENTS = 8


class ConvVAE8(nn.Module):
    name = "my-conv-vae"

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        chans = (1, 32, 32, 64, 64)
        down = [
            layer
            for a, b in zip(chans, chans[1:], strict=False)
            for layer in (nn.Conv2d(a, b, 4, 2, 1), nn.ReLU())
        ]
        self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(64 * 4 * 4, 2 * LATENTS))
        up = [
            layer
            for a, b in zip(chans[::-1], chans[::-1][1:], strict=False)
            for layer in (nn.ConvTranspose2d(a, b, 4, 2, 1), nn.ReLU())
        ][:-1]  # logits out
        self.decoder = nn.Sequential(
            nn.Linear(LATENTS, 64 * 4 * 4), nn.Unflatten(1, (64, 4, 4)), *up
        )
        self.description = ModelDescription(latent_dim=LATENTS, channels=1, height=64, width=64)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Posterior:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return Posterior(mu, logvar.clamp(-8, 4))

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))


def build() -> ConvVAE8:
    return ConvVAE8().eval()
