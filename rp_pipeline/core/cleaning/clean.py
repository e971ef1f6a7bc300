"""The one cleaning entry point, shared by `rp clean` and the Dagster assets: rows in,
kept rows and a report per flagged turn out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel

from rp_pipeline.core.cleaning.corpus_filters import corpus_filters
from rp_pipeline.core.cleaning.models import ChatRow, CleaningConfig, TurnReport
from rp_pipeline.core.cleaning.rows import clean_row
from rp_pipeline.core.models import Dialogue, Drop, Message
from rp_pipeline.core.rules import RuleSet


class CleaningResult(BaseModel):
    kept: list[ChatRow]
    reports: list[TurnReport]

    def code_counts(self) -> Counter[str]:
        """Flagged turns (or rows, for row-level codes) per reason code."""
        return Counter(code for report in self.reports for code in report.codes)

    def action_counts(self) -> Counter[str]:
        """Rows cut and dropped (a row counts once per action), and turns repaired."""
        rows = {(r.id, r.action) for r in self.reports if r.action in ("cut", "drop")}
        return Counter(action for _, action in rows) + Counter(r.action for r in self.reports if r.action == "repair")


def clean_rows(
    rows: list[ChatRow],
    rules: RuleSet,
    config: CleaningConfig,
    unfinished: Mapping[str, Mapping[int, str]] | None = None,
) -> CleaningResult:
    """`unfinished`: {row id: {turn: why}}, the replies a language model read as cut
    (`endings.find_unfinished`, run first by callers that have a `cleaner` model)."""
    kept: list[ChatRow] = []
    reports: list[TurnReport] = []
    for row in rows:
        cleaned, found = clean_row(row, rules, config, (unfinished or {}).get(row.id))
        reports += found
        if cleaned is not None:
            kept.append(cleaned)
    kept, found = corpus_filters(kept, config)
    return CleaningResult(kept=kept, reports=reports + found)


def dialogue_row(dialogue: Dialogue) -> ChatRow:
    """A simulated dialogue as training sees it. turns[0] is the opening line, already in the
    system prompt, so the system message takes its place and message i stays turn i; the
    row keeps the opening line aside so that cleaning still compares every turn with it."""
    roles: dict[str, Literal["assistant", "user"]] = {"character": "assistant", "user": "user"}
    return ChatRow(
        id=dialogue.id,
        language=dialogue.language,
        messages=[
            Message(role="system", content=dialogue.system_prompt),
            *(Message(role=roles[t.role], content=t.content) for t in dialogue.turns[1:]),
        ],
        opening_line=dialogue.turns[0].content if dialogue.turns else None,
        cut_turns=[index for index, turn in enumerate(dialogue.turns[1:], start=1) if turn.cut],
        switch_language=dialogue.switch_language,
    )


def to_drops(reports: list[TurnReport]) -> list[Drop]:
    """Lineage drop events: one per code of every flagged turn, with what cleaning did (drop,
    cut, repair, flag) as the action, and in the detail too for a reader of the raw events."""
    return [
        Drop(
            row_id=r.id,
            turn=r.turn,
            reason=code,
            detail="; ".join([r.action, *(d for d in r.details if d.startswith(f"{code}:"))]),
            action=r.action,
        )
        for r in reports
        for code in r.codes
    ]
