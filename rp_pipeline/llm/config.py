"""The role -> model map. Switching a role to another provider is a YAML edit, never code.

Keys are never in the YAML: a model names the *environment variable* that holds its key.
Each role has a primary model and optional fallbacks, tried in order when the primary
still fails after its retries (the client routes them through a litellm Router).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rp_pipeline.core.chat import ROLES, Role
from rp_pipeline.core.languages import letters_outside
from rp_pipeline.llm.embedded import EMBEDDED_MODELS, SMALL

# Optional roles and the role whose model they use when a map leaves them out: the single-call
# dialogue writer is a long structured-JSON writer, as the persona writer is.
DEFAULT_ROLES: dict[Role, Role] = {"dialogue_writer": "persona_writer"}
# Roles a map may leave out, and then nothing does their work: without a `cleaner`, Chinese and
# Japanese endings are judged by the rules alone (core/cleaning/endings.py).
OPTIONAL_ROLES: frozenset[Role] = frozenset({"cleaner"})
EMBEDDED = SMALL.name
# In a string of `extra_body`: the letters of the scripts a reply's language is not written in.
OTHER_SCRIPTS = "$other_scripts"


class ModelConfig(BaseModel):
    """One model a role can be sent to, with its own sampling parameters."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        description='litellm model string, or a bundled local model: "embedded" (0.5B) or "embedded-1.5b"'
    )
    api_base: str | None = None
    api_key_env: str | None = Field(default=None, description="name of the env var holding the API key")
    temperature: float = Field(default=0.7, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int = Field(default=256, ge=1)
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="provider-specific request fields, e.g. a llama.cpp GBNF `grammar` that constrains "
        f"the reply format; {OTHER_SCRIPTS} in a string stands for the letters outside the reply's scripts",
    )

    @property
    def per_language(self) -> bool:
        return any(isinstance(v, str) and OTHER_SCRIPTS in v for v in self.extra_body.values())

    def body_for(self, language: str | None) -> dict[str, Any]:
        """`extra_body` as sent. `$other_scripts` becomes, for a reply in `language`, the GBNF
        character ranges of the letters of every script that language is not written in, so that a
        grammar's `[^...$other_scripts]` keeps the reply in its own script (asked to switch, the
        1.5B answered in the user's language on most tries whatever the prompt said); for a call
        that names no language, nothing."""
        spans = letters_outside(language) if language else []
        ranges = "".join(f"\\u{low:04X}-\\u{high:04X}" for low, high in spans)
        return {k: v.replace(OTHER_SCRIPTS, ranges) if isinstance(v, str) else v for k, v in self.extra_body.items()}


class RoleConfig(ModelConfig):
    structured_output: Literal["json_schema", "json_object_schema", "prompt_only"] = Field(
        default="json_schema",
        description="how a JSON schema is sent: OpenAI json_schema, llama.cpp json_object+schema, "
        "or only in the prompt (providers without constrained decoding); fallbacks get the same request",
    )
    fallbacks: list[ModelConfig] = Field(
        default_factory=list, description="models tried in order when the primary fails after its retries"
    )

    def model_post_init(self, __context: object) -> None:
        # the per-language body goes with the request, and so to every fallback that answers it
        if self.per_language and any(f.extra_body != self.extra_body for f in self.fallbacks):
            raise ValueError(
                f"extra_body names {OTHER_SCRIPTS}, so it is sent with each request and reaches the fallbacks "
                "too: give every fallback the same extra_body"
            )


class LLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: dict[Role, RoleConfig]
    max_concurrency: int = Field(default=8, ge=1)
    num_retries: int = Field(default=3, ge=0, description="per model, with exponential backoff, on 429/5xx/timeouts")
    timeout_s: float = Field(default=120, gt=0, description="per call")
    max_repairs: int = Field(default=2, ge=0, description="re-asks when structured output fails validation")
    breaker_failures: int = Field(
        default=5,
        ge=1,
        description="calls in a row to one provider that may fail after their retries and fallbacks before "
        "the client stops calling it (the circuit opens and the step fails saying why)",
    )

    def model_post_init(self, __context: object) -> None:
        missing = [r for r in ROLES if r not in self.roles and r not in DEFAULT_ROLES and r not in OPTIONAL_ROLES]
        if missing:
            raise ValueError(f"roles missing from the model map: {missing}")
        for role, default in DEFAULT_ROLES.items():
            self.roles.setdefault(role, self.roles[default])

    def with_role(self, role: Role, config: RoleConfig, **updates: object) -> LLMConfig:
        """A copy with one role replaced (evaluation and self-sampling change only the character)."""
        return self.model_copy(update={"roles": {**self.roles, role: config}, **updates})

    def only(self, role: Role) -> LLMConfig:
        """A copy where every role is `role`'s model: for a process that asks only that role,
        so that only its bundled model needs a server."""
        return self.model_copy(update={"roles": dict.fromkeys(self.roles, self.roles[role])})

    @property
    def embedded_models(self) -> set[str]:
        """The bundled local models the map names (each needs its llama.cpp server)."""
        return {m.model for r in self.roles.values() for m in (r, *r.fallbacks) if m.model in EMBEDDED_MODELS}


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
