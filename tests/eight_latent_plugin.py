"""The plugin a new user writes from docs/plugins.md: their own 8-latent VAE of 64×64 grey
images, with no data set, served with `--plugin`. `served_plugin` writes it as a module in a
folder, puts the folder on the import path and gives the Settings that serve it."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.settings import Settings

NAME = "my-conv-vae"
SOURCE = """
import torch
from app.models.interface import ModelDescription, Posterior

class Model(torch.nn.Module):
    name = "my-conv-vae"

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.enc = torch.nn.Linear(64 * 64, 16)
        self.dec = torch.nn.Linear(8, 64 * 64)
        self.description = ModelDescription(latent_dim=8, channels=1, height=64, width=64)

    def encode(self, x, labels=None):
        h = self.enc(x.flatten(1))
        return Posterior(h[:, :8], h[:, 8:].clamp(-5, 2))

    def decode(self, z, labels=None):
        return torch.sigmoid(self.dec(z)).view(-1, 1, 64, 64)

MODEL = Model()

def build():
    return MODEL
"""


@contextmanager
def served_plugin(folder: Path, module: str) -> Iterator[tuple[Settings, object]]:
    """Settings serving the shipped checkpoints and the plugin (as `module`), and the model
    object the server holds."""
    (folder / f"{module}.py").write_text(textwrap.dedent(SOURCE))
    sys.path.insert(0, str(folder))
    try:
        settings = Settings(plugins=(f"{module}:build",), cache_dir=folder / "cache")
        __import__(module)
        yield settings, sys.modules[module].MODEL
    finally:
        sys.path.remove(str(folder))
