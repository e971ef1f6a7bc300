"""Every LLM call in the pipeline goes through `LLMClient`: one place for routing by role,
caching, concurrency, retries, fallbacks, structured output and the call ledger.

Calls go through a litellm Router built from the role map: each role is a model group that
is retried with exponential backoff on 429/5xx/timeouts, then handed to its fallbacks.
litellm is imported lazily so the Dagster code location loads without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import sys
import time
from collections.abc import Awaitable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from rp_pipeline.core.chat import (
    Completion,
    LLMCallFailed,
    Messages,
    ProviderUnavailable,
    Role,
    StructuredOutputError,
)
from rp_pipeline.core.ids import content_hash
from rp_pipeline.llm.cache import ResponseCache
from rp_pipeline.llm.config import LLMConfig, ModelConfig, RoleConfig

T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class CallRecord:
    """One ledger line. Carries no prompt text and no key: it goes to lineage as is.
    `model` is the model that answered (a fallback when the primary failed)."""

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


class LLMClient:
    """The `core.chat.ChatModel` of the pipeline: litellm behind a role map."""

    def __init__(
        self,
        config: LLMConfig,
        cache: ResponseCache | None = None,
        embedded: Mapping[str, str] | None = None,
        *,
        served_as: Mapping[str, str] | None = None,
    ):
        """`embedded`: {bundled model name: api_base of its llama.cpp server}; `served_as`
        renames a bundled model to the name its server knows (a model under evaluation)."""
        self.embedded = dict(embedded or {})
        if missing := config.embedded_models - self.embedded.keys():
            raise ValueError(f"the model map uses {sorted(missing)} but no embedded server runs for it")
        self.config = config
        self.cache = cache
        # The served name is in the litellm model string and with it in every cache key.
        self.served_as = dict(served_as or {})
        self.calls: list[CallRecord] = []
        # Consecutive calls that failed after their retries, per primary model (the circuit breaker).
        self._failures_in_a_row: dict[str, int] = {}
        self._last_failure: dict[str, str] = {}
        self._semaphore: asyncio.Semaphore | None = None
        self._router: Any = None

    # -- public API --------------------------------------------------------------------

    def run(self, awaitable: Awaitable[Any]) -> Any:
        """Run a batch of calls from synchronous code (an asset body)."""
        # The semaphore and the router's HTTP clients belong to one event loop.
        self._semaphore, self._router = None, None
        return asyncio.run(_as_coroutine(awaitable))

    def routed_model(self, role: Role) -> str:
        """The litellm model string a role is sent to first (its primary model)."""
        return self._litellm_model(self.config.roles[role])

    def deployments(self, role: Role) -> list[dict[str, Any]]:
        """A role's router deployments as litellm gets them, primary first, then fallbacks;
        each in its own model group so the router tries them in order."""
        cfg = self.config.roles[role]
        return [
            {
                "model_name": role if i == 0 else f"{role}/fallback-{i}",
                "litellm_params": {"model": self._litellm_model(m), **self._endpoint(m), **_model_params(m)},
                "model_info": {"id": f"{role}/{i}"},
            }
            for i, m in enumerate((cfg, *cfg.fallbacks))
        ]

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
        cfg = self.config.roles[role]
        request = _request_params(cfg, seed, response_schema, language)
        if top_logprobs:
            request |= {"logprobs": True, "top_logprobs": top_logprobs}
        model = self.routed_model(role)
        # Keyed by the primary model and its parameters: a fallback's answer is cached for
        # the request it answered, so a re-run costs nothing either way.
        params = {**_model_params(cfg), **request}
        key = content_hash({"model": model, "messages": messages, "params": params}, length=40)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.calls.append(CallRecord(role, hit.get("model", model), key, True, 0, 0, 0.0, 0.0))
            # entries cached before finish_reason or next_tokens were recorded: None, ()
            next_tokens = tuple((token, probability) for token, probability in hit.get("next_tokens", ()))
            return Completion(hit["text"], hit.get("finish_reason"), next_tokens)
        async with self._limit():
            self._check_circuit(role, model)  # again inside: a call may have waited while the provider failed
            completion, answered_by = await self._call_router(role, messages, request, key)
        if self.cache is not None:
            entry = {"text": completion.text, "finish_reason": completion.finish_reason, "model": answered_by}
            self.cache.put(key, entry | ({"next_tokens": completion.next_tokens} if completion.next_tokens else {}))
        return completion

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
            text = (await self.complete(role, history, seed=seed + attempt, response_schema=json_schema)).text
            try:
                return schema.model_validate_json(_strip_fences(text))
            except ValidationError as exc:
                error = str(exc)
                history = [
                    *history,
                    {"role": "assistant", "content": text},
                    {
                        "role": "user",
                        "content": f"That JSON is invalid:\n{error}\nReply again with only the corrected JSON object.",
                    },
                ]
        raise StructuredOutputError(
            f"role {role!r} returned invalid {schema.__name__} after {self.config.max_repairs + 1} attempts: {error}"
        )

    # -- internals ---------------------------------------------------------------------

    def _check_circuit(self, role: Role, model: str) -> None:
        failures = self._failures_in_a_row.get(model, 0)
        if failures >= self.config.breaker_failures:
            raise ProviderUnavailable(
                f"role {role!r}: {model} failed {failures} calls in a row after {self.config.num_retries} "
                f"retries each (last: {self._last_failure[model]}); the client stopped calling it. The provider "
                "is down or rate-limiting: check its status and quota, or lower max_concurrency, then re-run "
                "(answers already received are cached)."
            )

    def _limit(self) -> asyncio.Semaphore:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
        return self._semaphore

    def _litellm_model(self, cfg: ModelConfig) -> str:
        if cfg.model in self.embedded:
            return f"openai/{self.served_as.get(cfg.model, cfg.model)}"
        return cfg.model

    def _endpoint(self, cfg: ModelConfig) -> dict[str, Any]:
        """Where one model is reached and with which key (from the environment only)."""
        if cfg.model in self.embedded:
            return {"api_base": self.embedded[cfg.model], "api_key": "sk-embedded-no-key"}
        api_key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        # A self-hosted OpenAI-compatible server (vLLM, llama.cpp) may need no key, but
        # the OpenAI client refuses to send without one.
        return {"api_base": cfg.api_base, "api_key": api_key or ("sk-no-key" if cfg.api_base else None)}

    def _get_router(self) -> Any:
        if self._router is None:
            roles = self.config.roles
            model_list = [d for role in roles for d in self.deployments(role)]
            fallbacks = [
                {role: [f"{role}/fallback-{i + 1}" for i in range(len(cfg.fallbacks))]}
                for role, cfg in roles.items()
                if cfg.fallbacks
            ]
            _litellm()  # configured once before the router exists
            from litellm.router import Router

            self._router = Router(
                model_list=model_list,
                fallbacks=fallbacks,
                num_retries=self.config.num_retries,
                timeout=self.config.timeout_s,
            )
        return self._router

    async def _call_router(self, role: Role, messages: Messages, request: dict, key: str) -> tuple[Completion, str]:
        """One routed request, retries and fallbacks included; returns the answer and the model that gave it."""
        cfg = self.config.roles[role]
        for needed in (m.api_key_env for m in (cfg, *cfg.fallbacks) if m.api_key_env):
            if not os.environ.get(needed):
                raise RuntimeError(f"role {role!r} needs the environment variable {needed}")
        deployments = self.deployments(role)
        models = {d["model_info"]["id"]: d["litellm_params"]["model"] for d in deployments}
        primary = models[f"{role}/0"]
        started = time.perf_counter()
        try:
            response = await self._get_router().acompletion(model=role, messages=messages, **request)
        except Exception as exc:
            error = _redact(f"{type(exc).__name__}: {exc}", [d["litellm_params"]["api_key"] for d in deployments])
            self.calls.append(
                CallRecord(role, primary, key, False, 0, 0, 0.0, time.perf_counter() - started, ok=False, error=error)
            )
            self._failures_in_a_row[primary] = self._failures_in_a_row.get(primary, 0) + 1
            self._last_failure[primary] = error[:200]
            raise LLMCallFailed(f"role {role!r}: no answer from {primary} after its retries: {error}") from None
        self._failures_in_a_row[primary] = 0
        model = models.get((getattr(response, "_hidden_params", None) or {}).get("model_id"), primary)
        usage = getattr(response, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
        completion_tokens = getattr(usage, "completion_tokens", 0) or 0
        self.calls.append(
            CallRecord(
                role,
                model,
                key,
                False,
                prompt_tokens,
                completion_tokens,
                _cost(model, prompt_tokens, completion_tokens),
                time.perf_counter() - started,
            )
        )
        choice = response.choices[0]
        text, finish_reason = choice.message.content or "", getattr(choice, "finish_reason", None)
        return Completion(text, finish_reason, _next_tokens(getattr(choice, "logprobs", None))), model


@contextlib.contextmanager
def role_client(config: LLMConfig, role: Role, data_dir: Path) -> Iterator[LLMClient]:
    """A client for one role outside a Dagster run (`rp clean`, `rp eval calibrate`, benchmarks),
    with the shared response cache; only that role's bundled model is served, for the block."""
    from rp_pipeline.llm.embedded import API_BASES_ENV, embedded_servers

    config = config.only(role)
    data_dir.mkdir(parents=True, exist_ok=True)
    if config.embedded_models - json.loads(os.environ.get(API_BASES_ENV) or "{}").keys():
        print(f"starting the embedded llama.cpp server for the {role} role on 127.0.0.1", file=sys.stderr)
    with embedded_servers(config.embedded_models, data_dir) as bases:
        yield LLMClient(config, ResponseCache(data_dir / "llm_cache.sqlite"), bases)


def _next_tokens(logprobs: Any) -> tuple[tuple[str, float], ...]:
    """The first token's alternatives as (token, probability), likeliest first, from an OpenAI
    `choice.logprobs` (litellm hands it on as an object or as a dict)."""
    if logprobs is None:
        return ()
    content = logprobs.get("content") if isinstance(logprobs, dict) else getattr(logprobs, "content", None)
    if not content:
        return ()
    first = content[0]
    top = first.get("top_logprobs") if isinstance(first, dict) else getattr(first, "top_logprobs", None)
    alternatives = [alt if isinstance(alt, dict) else alt.model_dump() for alt in top or ()]
    pairs = [(_token_text(alt), math.exp(alt["logprob"])) for alt in alternatives]
    return tuple(sorted(pairs, key=lambda pair: -pair[1]))


def _token_text(alternative: dict[str, Any]) -> str:
    """A token's text; a token holding part of a character (llama.cpp sends "" with its bytes,
    as for the end of the message, which has no bytes) reads as U+FFFD, not as an end."""
    token, raw = alternative["token"], alternative.get("bytes")
    return bytes(raw).decode("utf-8", errors="replace") if token == "" and raw else token


def _model_params(cfg: ModelConfig) -> dict[str, Any]:
    """Sampling parameters that belong to a model: a fallback is sent with its own."""
    params: dict[str, Any] = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
    if cfg.top_p is not None:
        params["top_p"] = cfg.top_p
    if cfg.extra_body:
        params["extra_body"] = cfg.body_for(None)
    return params


def _request_params(cfg: RoleConfig, seed: int, response_schema: dict | None, language: str | None) -> dict[str, Any]:
    """Parameters of the request itself, sent to whichever model answers it."""
    params: dict[str, Any] = {"seed": seed}
    if language and cfg.per_language:
        params["extra_body"] = cfg.body_for(language)
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
    """Import litellm once, quietly: its banners, per-event-loop worker warnings and the
    router's per-retry logs are noise here; errors still surface as exceptions."""
    import litellm

    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    logging.getLogger("LiteLLM Router").setLevel(logging.CRITICAL)
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


def _redact(message: str, secrets: list[str | None]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message[:500]


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
