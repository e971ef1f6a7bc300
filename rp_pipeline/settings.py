"""Process-level settings from the environment (RP_*). Secrets are never settings: API keys
are read by the LLM layer from the variables the model map names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rp_pipeline.core.storage import Location, location, work_dir

REPO_ROOT = Path(__file__).resolve().parent.parent

#: A local path, or an fsspec URL on object storage (s3://bucket/rp, gs://…, memory://…).
LocationSetting = Annotated[Location, PlainValidator(location), PlainSerializer(str)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RP_")

    # Asset values, lineage segments and corpus exports: local or object storage.
    data_dir: LocationSetting = REPO_ROOT / "data"
    # What must stay local (a disk or a mounted volume): the LLM response cache (SQLite), the
    # embedded model servers' files, training inputs and outputs, evaluation files. Default:
    # data_dir itself when it is local; required when it is not.
    work_dir: Path | None = None
    assets_dir: Path = REPO_ROOT / "assets"
    profile: str = "demo"
    llm_config: Path | None = None  # default: assets/models/embedded.yaml
    launcher_config: Path | None = None  # where training runs (docker/launchers/*.yaml); default: a subprocess

    @model_validator(mode="after")
    def _remote_data_needs_a_work_dir(self) -> Settings:
        work_dir(self.data_dir, self.work_dir)  # raises when settings load, not in the middle of a run
        return self

    @property
    def local_dir(self) -> Path:
        return work_dir(self.data_dir, self.work_dir)

    @property
    def llm_config_path(self) -> Path:
        return self.llm_config or self.assets_dir / "models" / "embedded.yaml"
