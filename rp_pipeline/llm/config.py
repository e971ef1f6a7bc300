"""The role -> model map. Switching a role to another provider is a YAML edit, never code.

Keys are never in the YAML: a role names the *environment variable* that holds its key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

ROLES = (
    "character",
    "user_agent",
    "scene_agent",
    "moderator",
    "topic_writer",
    "persona_writer",
    "judge",
)
Role = Literal[
    "character", "user_agent", "scene_agent", "moderator", "topic_writer", "persona_writer", "judge"
]
EMBEDDED = "embedded"


class RoleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description='litellm model string, or "embedded" for the bundled local model')
    api_base: str | None = None
    api_key_env: str | None = Field(None, description="name of the env var holding the API key")
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int = Field(256, ge=1)
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="provider-specific request fields, e.g. a llama.cpp GBNF `grammar` that constrains the reply format",
    )
    structured_output: Literal["json_schema", "json_object_schema", "prompt_only"] = Field(
        "json_schema",
        description="how a JSON schema is sent: OpenAI json_schema, llama.cpp json_object+schema, "
        "or only in the prompt (providers without constrained decoding)",
    )


class LLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: dict[Role, RoleConfig]
    max_concurrency: int = Field(8, ge=1)
    num_retries: int = Field(3, ge=0)
    timeout_s: float = Field(120, gt=0)
    max_repairs: int = Field(2, ge=0, description="re-asks when structured output fails validation")

    def model_post_init(self, __context: object) -> None:
        missing = [r for r in ROLES if r not in self.roles]
        if missing:
            raise ValueError(f"roles missing from the model map: {missing}")

    def with_role(self, role: Role, config: RoleConfig, **updates: object) -> LLMConfig:
        """A copy with one role replaced (evaluation and self-sampling change only the character)."""
        return self.model_copy(update={"roles": {**self.roles, role: config}, **updates})

    @property
    def uses_embedded(self) -> bool:
        return any(r.model == EMBEDDED for r in self.roles.values())


def load_llm_config(path: str | Path) -> LLMConfig:
    """Read a model map; a bad file is an error that names the file and the field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read model map: {exc}") from exc
    try:
        return LLMConfig.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{path}: invalid model map:\n{exc}") from exc
