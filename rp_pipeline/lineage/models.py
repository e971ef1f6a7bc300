"""Records the lineage store appends: one per produced (or dropped) row, one per LLM call.

They are validated here, at the point of emission, so a malformed event fails inside
the asset that made it instead of poisoning every later lineage query.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _stringify_attrs(value: object) -> object:
    """Attrs are a string->string map in Parquet; accept ints/paths/etc. and stringify
    them so emitters need not remember to, and the column type never varies."""
    if isinstance(value, dict):
        return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items() if v is not None}
    return value


Attrs = Annotated[dict[str, str], BeforeValidator(_stringify_attrs)]


class _Stamped(BaseModel):
    """Shared config: immutable, strict about unknown fields, timestamps always in UTC
    (the store orders re-emitted rows by `ts`, so mixing naive local times would pick
    the wrong "latest" row)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("ts", check_fields=False)
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class LineageEvent(_Stamped):
    """One row produced (`kind="row"`) or removed (`kind="drop"`, with a `reason` code
    such as "bad_format") by `asset` in `partition`.

    `row_id` is the row's stable content id and `parent_ids` the content ids it was
    derived from, so lineage joins across runs without knowing storage locations.
    """

    run_id: str
    asset: str
    partition: str | None = None
    row_id: str = Field(min_length=1)
    parent_ids: list[str] = Field(default_factory=list)
    kind: Literal["row", "drop"] = "row"
    reason: str | None = None
    detail: str | None = None
    code_version: str | None = None
    model: str | None = None
    prompt_hash: str | None = None
    cost_usd: float = 0.0
    attrs: Attrs = Field(default_factory=dict)
    ts: datetime = Field(default_factory=_utcnow)


class LLMCall(_Stamped):
    """One LLM request as the cost ledger sees it; cache hits are recorded too (with zero
    cost) so the hit rate of a re-materialization is visible."""

    run_id: str
    asset: str
    partition: str | None = None
    role: str
    model: str
    prompt_hash: str
    cache_hit: bool
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    cost_usd: float = Field(ge=0)
    latency_s: float = Field(ge=0)
    ok: bool = True
    error: str | None = None
    ts: datetime = Field(default_factory=_utcnow)
