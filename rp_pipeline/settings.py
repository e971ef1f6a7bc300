"""Process-level settings from the environment (RP_*). Secrets are never settings: API keys
are read by the LLM layer from the variables the model map names."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RP_")

    data_dir: Path = REPO_ROOT / "data"
    assets_dir: Path = REPO_ROOT / "assets"
    profile: str = "demo"
    llm_config: Path | None = None  # default: assets/models/embedded.yaml
    launcher_config: Path | None = None  # where training runs (docker/launchers/*.yaml); default: a subprocess

    @property
    def llm_config_path(self) -> Path:
        return self.llm_config or self.assets_dir / "models" / "embedded.yaml"
