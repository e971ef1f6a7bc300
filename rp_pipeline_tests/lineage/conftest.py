"""A miniature pipeline history in a lineage store, one segment per asset, as the
Dagster steps would write it:

seed-1 ─► topic-1 ─┐
                   ├─► dlg-1 ─► turn-1 ─► corpus-row-1 ─► corpus-v1 ─► sft-v1 ─► dpo-v1
persona-lin ───────┘        └─► turn-1b (dropped: language_mismatch)
seed-2 ─► topic-2 ─┐
persona-bob ───────┴─► dlg-2 ─► turn-2, turn-2b (both dropped: bad_format)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rp_pipeline.lineage.models import LineageEvent, LLMCall
from rp_pipeline.lineage.store import LineageStore

T0 = datetime(2025, 1, 1, tzinfo=UTC)

# asset, partition, row_id, parent_ids, extra fields
HISTORY: list[tuple[str, str | None, str, list[str], dict]] = [
    ("seed_samples", None, "seed-1", [], {}),
    ("seed_samples", None, "seed-2", [], {}),
    ("topic_keywords", None, "topic-1", ["seed-1"], {"model": "topic-writer"}),
    ("topic_keywords", None, "topic-2", ["seed-2"], {"model": "topic-writer"}),
    ("persona_cards", "lin-xiaoyu", "persona-lin", [], {"attrs": {"name": "林小雨", "persona_id": "p-017"}}),
    ("persona_cards", "bob", "persona-bob", [], {"attrs": {"name": "Bob"}}),
    ("dialogues", "lin-xiaoyu", "dlg-1", ["topic-1", "persona-lin"], {"model": "character-7b"}),
    ("dialogues", "bob", "dlg-2", ["topic-2", "persona-bob"], {"model": "character-7b"}),
    ("cleaned_dialogues", "lin-xiaoyu", "turn-1", ["dlg-1"], {}),
    ("cleaned_dialogues", "lin-xiaoyu", "turn-1b", ["dlg-1"], {"kind": "drop", "reason": "language_mismatch"}),
    ("cleaned_dialogues", "bob", "turn-2", ["dlg-2"], {"kind": "drop", "reason": "bad_format"}),
    ("cleaned_dialogues", "bob", "turn-2b", ["dlg-2"], {"kind": "drop", "reason": "bad_format"}),
    ("training_corpus", None, "corpus-row-1", ["turn-1"], {}),
    ("corpus_version", None, "corpus-v1", ["corpus-row-1"], {"attrs": {"corpus_version": "1"}}),
    ("sft_checkpoint", None, "sft-v1", ["corpus-v1"], {"attrs": {"model_version": "sft-1", "path": "/m/sft-1"}}),
    ("dpo_checkpoint", None, "dpo-v1", ["sft-v1"], {"attrs": {"model_version": "dpo-1", "path": "/m/dpo-1"}}),
]


def event(
    asset: str,
    partition: str | None,
    row_id: str,
    parents: list[str],
    run_id: str = "run-1",
    ts: datetime | None = None,
    **extra,
) -> LineageEvent:
    return LineageEvent(
        run_id=run_id, asset=asset, partition=partition, row_id=row_id, parent_ids=parents, ts=ts or T0, **extra
    )


def write_history(store: LineageStore) -> None:
    """One write (one segment) per asset, in pipeline order."""
    by_asset: dict[str, list[LineageEvent]] = {}
    for i, (asset, partition, row_id, parents, extra) in enumerate(HISTORY):
        ts = T0 + timedelta(seconds=i)
        by_asset.setdefault(asset, []).append(event(asset, partition, row_id, parents, ts=ts, **extra))
    for events in by_asset.values():
        store.write_events(events)


def call(asset: str, role: str, model: str, cost: float, cache_hit: bool = False, ok: bool = True) -> LLMCall:
    return LLMCall(
        run_id="run-1",
        asset=asset,
        partition=None,
        role=role,
        model=model,
        prompt_hash="h",
        cache_hit=cache_hit,
        prompt_tokens=100,
        completion_tokens=20,
        cost_usd=cost,
        latency_s=0.5,
        ok=ok,
        error=None if ok else "timeout",
    )


def populated(lineage: LineageStore) -> LineageStore:
    """`lineage` with the shared history and a ledger of six calls (two of them free, one failed)."""
    write_history(lineage)
    lineage.write_calls([call("dialogues", "character", "character-7b", 0.01) for _ in range(3)])
    lineage.write_calls(
        [
            call("dialogues", "character", "character-7b", 0.0, cache_hit=True),
            call("topic_keywords", "topic_writer", "topic-writer", 0.002),
            call("topic_keywords", "topic_writer", "topic-writer", 0.0, ok=False),
        ]
    )
    return lineage


@pytest.fixture
def store(tmp_path: Path) -> LineageStore:
    return populated(LineageStore(tmp_path / "lineage"))
