"""A small MLP VAE on 28×28 dSprites, served with `latent-explorer serve --plugin
examples.mlp_vae:build`: a size (28×28) and an architecture (fully connected) that our own network
does not build."""

from examples.mlp_vae.model import MLPVAE, build

__all__ = ["MLPVAE", "build"]
