"""What the thinking needs from a chat model, and nothing about how it is reached.

`core/` talks to models only through `ChatModel`; the LLM layer's `LLMClient` implements it
over litellm (routing, cache, retries, ledger), and tests may pass an in-process fake. So
core never imports the LLM layer, and the LLM layer may import core.
"""

from __future__ import annotations

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
]
ROLES: tuple[Role, ...] = get_args(Role)
Messages = list[dict[str, str]]
T = TypeVar("T", bound=BaseModel)


class StructuredOutputError(RuntimeError):
    """The model kept answering with JSON that does not fit the schema."""


class ChatModel(Protocol):
    """A chat model addressed by role. `seed` is part of the request (and of any cache key),
    so the same call asked twice is the same call."""

    async def complete(
        self, role: Role, messages: Messages, *, seed: int, response_schema: dict | None = None
    ) -> str: ...

    async def structured(self, role: Role, messages: Messages, schema: type[T], *, seed: int) -> T:
        """JSON validated by `schema`; raises `StructuredOutputError` when it never validates."""
        ...
