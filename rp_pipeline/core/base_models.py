"""The base models training can start from (assets/models/base_models.yaml), with what each
needs: where its weights are, the longest sample it takes and which layers LoRA adapts. The
chat template is the model's own (TRL swaps in its training variant for the assistant-only
loss). A profile names one, or gives a model directory."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

EMBEDDED = "embedded"


class BaseModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(default=None, description="a local model directory (safetensors); None for embedded")
    max_length: int = Field(ge=32)
    lora_target_modules: str | list[str] = "all-linear"


def load_base_models(path: Path) -> dict[str, BaseModelSpec]:
    """The registry; a bad entry is an error naming the file, the model and the field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the base-model registry: {exc}") from exc
    models = {}
    for name, entry in raw.items():
        try:
            models[name] = BaseModelSpec.model_validate(entry)
        except ValidationError as exc:
            raise ValueError(f"{path}: base model {name!r}: {exc}") from exc
        if name != EMBEDDED and models[name].path is None:
            raise ValueError(f"{path}: base model {name!r}: path is required (a local model directory)")
    return models


def resolve_base_model(name_or_dir: str, registry: dict[str, BaseModelSpec], max_length: int) -> BaseModelSpec:
    """The spec of a registry name, or a plain spec for a model directory (LoRA on every
    linear layer). The profile's max_length must fit the model's."""
    spec = registry.get(name_or_dir)
    if spec is None:
        if not Path(name_or_dir).is_dir():
            known = ", ".join(sorted(registry))
            raise ValueError(
                f"training.base_model {name_or_dir!r} is neither a registered model ({known}) nor a directory"
            )
        spec = BaseModelSpec(path=name_or_dir, max_length=max_length)
    if max_length > spec.max_length:
        raise ValueError(
            f"training.max_length {max_length} is over {name_or_dir}'s max_length {spec.max_length} (base_models.yaml)"
        )
    return spec
