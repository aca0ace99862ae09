"""The VAE family (networks, ELBO pieces, objectives) and its config."""

from app.models.config import ConfigError, ModelConfig
from app.models.vae import VAE

__all__ = ["VAE", "ConfigError", "ModelConfig"]
