"""Every LLM call in the pipeline goes through `LLMClient`: one place for routing by role,
caching, concurrency, retries, structured output and the call ledger.

litellm is imported lazily so the Dagster code location loads without it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from rp_pipeline.core.ids import content_hash
from rp_pipeline.llm.cache import ResponseCache
from rp_pipeline.llm.config import EMBEDDED, LLMConfig, Role, RoleConfig

T = TypeVar("T", bound=BaseModel)
Messages = list[dict[str, str]]


@dataclass(frozen=True)
class CallRecord:
    """One ledger line. Carries no prompt text and no key: it goes to lineage as is."""

    role: str
    model: str
    prompt_hash: str
    cache_hit: bool
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    ok: bool = True
    error: str | None = None


class StructuredOutputError(RuntimeError):
    """The model kept answering with JSON that does not fit the schema."""


class LLMClient:
    def __init__(
        self,
        config: LLMConfig,
        cache: ResponseCache | None = None,
        embedded_api_base: str | None = None,
        embedded_model: str = "embedded",
    ):
        if config.uses_embedded and not embedded_api_base:
            raise ValueError("the model map uses the embedded model but no embedded server is running")
        self.config = config
        self.cache = cache
        self.embedded_api_base = embedded_api_base
        self.embedded_model = embedded_model  # names the served GGUF: part of every cache key
        self.calls: list[CallRecord] = []
        self._semaphore: asyncio.Semaphore | None = None

    # -- public API --------------------------------------------------------------------

    def run(self, awaitable: Awaitable[Any]) -> Any:
        """Run a batch of calls from synchronous code (an asset body)."""
        self._semaphore = None  # a semaphore belongs to one event loop
        return asyncio.run(_as_coroutine(awaitable))

    def routed_model(self, role: Role) -> str:
        """The litellm model string a role is sent to (what the ledger records)."""
        cfg = self.config.roles[role]
        return f"openai/{self.embedded_model}" if cfg.model == EMBEDDED else cfg.model

    async def complete(
        self, role: Role, messages: Messages, *, seed: int, response_schema: dict | None = None
    ) -> str:
        cfg = self.config.roles[role]
        params = _sampling_params(cfg, seed, response_schema)
        model = self.routed_model(role)
        key = content_hash({"model": model, "messages": messages, "params": params}, length=40)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.calls.append(CallRecord(role, model, key, True, 0, 0, 0.0, 0.0))
            return hit["text"]
        async with self._limit():
            text = await self._call_provider(role, cfg, model, messages, params, key)
        if self.cache is not None:
            self.cache.put(key, {"text": text})
        return text

    async def structured(self, role: Role, messages: Messages, schema: type[T], *, seed: int) -> T:
        """JSON output validated by `schema`, re-asking with the error up to `max_repairs` times."""
        json_schema = schema.model_json_schema()
        history = list(messages)
        history[-1] = {
            **history[-1],
            "content": history[-1]["content"]
            + "\n\nReply with only a JSON object matching this schema:\n"
            + json.dumps(json_schema, ensure_ascii=False),
        }
        error = ""
        for attempt in range(self.config.max_repairs + 1):
            text = await self.complete(role, history, seed=seed + attempt, response_schema=json_schema)
            try:
                return schema.model_validate_json(_strip_fences(text))
            except ValidationError as exc:
                error = str(exc)
                history = history + [
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": f"That JSON is invalid:\n{error}\nReply again with only the corrected JSON object."},
                ]
        raise StructuredOutputError(
            f"role {role!r} returned invalid {schema.__name__} after "
            f"{self.config.max_repairs + 1} attempts: {error}"
        )

    # -- internals ---------------------------------------------------------------------

    def _limit(self) -> asyncio.Semaphore:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
        return self._semaphore

    async def _call_provider(
        self, role: str, cfg: RoleConfig, model: str, messages: Messages, params: dict, key: str
    ) -> str:
        litellm = _litellm()
        api_key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        if cfg.api_key_env and not api_key:
            raise RuntimeError(f"role {role!r} needs the environment variable {cfg.api_key_env}")
        if cfg.model == EMBEDDED:
            api_base, api_key = self.embedded_api_base, "sk-embedded-no-key"
        else:
            api_base = cfg.api_base
            # A self-hosted OpenAI-compatible server (vLLM, llama.cpp) may need no key, but
            # the OpenAI client refuses to send without one.
            api_key = api_key or ("sk-no-key" if api_base else None)
        started = time.perf_counter()
        try:
            response = await litellm.acompletion(
                model=model,
                messages=messages,
                api_base=api_base,
                api_key=api_key,
                timeout=self.config.timeout_s,
                num_retries=self.config.num_retries,
                **params,
            )
        except Exception as exc:
            self.calls.append(
                CallRecord(role, model, key, False, 0, 0, 0.0, time.perf_counter() - started,
                           ok=False, error=_redact(f"{type(exc).__name__}: {exc}", api_key))
            )
            raise
        usage = getattr(response, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
        completion_tokens = getattr(usage, "completion_tokens", 0) or 0
        self.calls.append(
            CallRecord(role, model, key, False, prompt_tokens, completion_tokens,
                       _cost(model, prompt_tokens, completion_tokens), time.perf_counter() - started)
        )
        return response.choices[0].message.content or ""


def _sampling_params(cfg: RoleConfig, seed: int, response_schema: dict | None) -> dict[str, Any]:
    params: dict[str, Any] = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "seed": seed}
    if cfg.top_p is not None:
        params["top_p"] = cfg.top_p
    if cfg.extra_body:
        params["extra_body"] = cfg.extra_body
    if response_schema is not None and cfg.structured_output == "json_schema":
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": response_schema.get("title", "output"), "schema": response_schema},
        }
    elif response_schema is not None and cfg.structured_output == "json_object_schema":
        params["response_format"] = {"type": "json_object", "schema": response_schema}
    return params


@functools.cache
def _litellm():
    """Import litellm once, quietly: its banners and per-event-loop worker warnings are noise
    here (each asset runs its own event loop); errors still surface as exceptions."""
    import litellm

    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    return litellm


def _cost(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """Provider price from litellm's (local) cost map; local and unknown models cost 0."""
    litellm = _litellm()
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception:
        return 0.0
    return float(prompt_cost + completion_cost)


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text.strip()


def _redact(message: str, secret: str | None) -> str:
    if secret:
        message = message.replace(secret, "***")
    return message[:500]


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
