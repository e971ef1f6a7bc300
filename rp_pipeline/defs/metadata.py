"""What the Dagster UI shows about a materialization: costs, tables, sample dialogues."""

from collections.abc import Iterable, Mapping
from typing import Any

from dagster import MetadataValue

from rp_pipeline.llm.client import CallRecord


def llm_metadata(calls: list[CallRecord]) -> dict[str, Any]:
    return {
        "llm_calls": len(calls),
        "llm_cache_hits": sum(c.cache_hit for c in calls),
        "llm_failed_calls": sum(not c.ok for c in calls),
        "prompt_tokens": sum(c.prompt_tokens for c in calls),
        "completion_tokens": sum(c.completion_tokens for c in calls),
        "cost_usd": MetadataValue.float(round(float(sum(c.cost_usd for c in calls)), 6)),
    }


def md_table(rows: Iterable[Mapping[str, Any]]) -> MetadataValue:
    rows = list(rows)
    if not rows:
        return MetadataValue.md("_(none)_")
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(str(r.get(h, "")).replace("|", "\\|").replace("\n", " ") for h in header) + " |" for r in rows
    ]
    return MetadataValue.md("\n".join(lines))


def counts_table(counter: Mapping[str, int], key: str, value: str = "rows") -> MetadataValue:
    total = sum(counter.values()) or 1
    return md_table({key: k, value: n, "share": f"{n / total:.1%}"} for k, n in counter.items())


def transcript_markdown(title: str, turns: Iterable[tuple[str, str]]) -> str:
    body = "\n".join(f"- **{role}**: {content}" for role, content in turns)
    return f"**{title}**\n\n{body}"
