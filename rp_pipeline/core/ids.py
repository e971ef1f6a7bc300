"""Stable content ids: the same content gets the same id in every run and on every machine.

Lineage joins on these, so re-materializing unchanged inputs yields the same rows.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def content_hash(payload: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()[:length]


def content_id(prefix: str, payload: Any) -> str:
    """`prefix-<hash>`; the prefix names the stage so an id reads as what it is."""
    return f"{prefix}-{content_hash(payload)}"


def stable_seed(*parts: object) -> int:
    """A per-call sampling seed derived from what the call is about (part of the cache key)."""
    return int(content_hash(parts, 8), 16)
