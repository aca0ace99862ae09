"""One settings object: paths and limits, each overridable by an environment variable
(`LATENT_EXPLORER_<NAME>`, e.g. `LATENT_EXPLORER_CHECKPOINTS_DIR=/srv/models`)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LATENT_EXPLORER_")

    checkpoints_dir: Path = PROJECT_ROOT / "checkpoints"
    static_dir: Path = PROJECT_ROOT / "static"
    templates_dir: Path = PROJECT_ROOT / "templates"
