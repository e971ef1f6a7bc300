"""What the thinking needs from a chat model, and nothing about how it is reached.

`core/` talks to models only through `ChatModel`; the LLM layer's `LLMClient` implements it
over litellm (routing, cache, retries, ledger), and tests may pass an in-process fake. So
core never imports the LLM layer, and the LLM layer may import core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar, get_args

from pydantic import BaseModel

Role = Literal[
    "character",
    "user_agent",
    "scene_agent",
    "moderator",
    "topic_writer",
    "persona_writer",
    "judge",
    "dialogue_writer",
    "cleaner",  # optional: reads whether a reply's last clause is finished (core/cleaning/endings)
]
ROLES: tuple[Role, ...] = get_args(Role)
Messages = list[dict[str, str]]
T = TypeVar("T", bound=BaseModel)


class StructuredOutputError(RuntimeError):
    """The model kept answering with JSON that does not fit the schema."""


class LLMCallFailed(RuntimeError):
    """One request got no answer after its retries and fallbacks (rate limit, server error,
    timeout). The item it was for ends with a recorded reason and the rest of the batch goes
    on; nothing was cached, so a re-run asks again."""


class ProviderUnavailable(RuntimeError):
    """A role's provider failed call after call (the client's circuit breaker opened). Stages
    let this through: the step fails with this message instead of spinning through retries."""


@dataclass(frozen=True)
class Completion:
    """A model's answer. `finish_reason` is the provider's ("stop", "length", ...), or None when
    unknown (an answer cached before it was recorded); "length" means the answer was cut."""

    text: str
    finish_reason: str | None = None
    # The likeliest first tokens and their probabilities, most likely first, when asked for
    # (`top_logprobs`); empty otherwise.
    next_tokens: tuple[tuple[str, float], ...] = ()

    @property
    def cut(self) -> bool:
        """Stopped on the token limit: the text ends wherever the limit fell, mid-word or mid-tag."""
        return self.finish_reason == "length"


class ChatModel(Protocol):
    """A chat model addressed by role. `seed` is part of the request (and of any cache key),
    so the same call asked twice is the same call."""

    async def complete(
        self,
        role: Role,
        messages: Messages,
        *,
        seed: int,
        response_schema: dict | None = None,
        top_logprobs: int = 0,
        language: str | None = None,
    ) -> Completion:
        """`top_logprobs` > 0 asks for that many alternatives of the first token (`next_tokens`).
        `language`: the language the reply must be in, for a model map that constrains it."""
        ...

    async def structured(self, role: Role, messages: Messages, schema: type[T], *, seed: int) -> T:
        """JSON validated by `schema`; raises `StructuredOutputError` when it never validates."""
        ...
