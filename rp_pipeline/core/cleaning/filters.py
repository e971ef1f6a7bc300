"""Turn filters: each looks at one turn and says nothing (keep), drop (the row is cut
before this turn, since every later turn was conditioned on it) or repair (the turn is
rewritten and kept). They run in order, each on the previous one's repair, so a reply is
first scrubbed of personal data and debris, then judged by the same reply rules generation
uses (`core/rules`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from rp_pipeline.core.cleaning.debris import strip_debris
from rp_pipeline.core.cleaning.models import Verdict
from rp_pipeline.core.cleaning.pii import scrub_pii
from rp_pipeline.core.reply_format import MAX_CHARS
from rp_pipeline.core.rules import RuleSet, check_character_reply


@dataclass(frozen=True)
class TurnContext:
    role: str
    content: str
    language: str
    rules: RuleSet
    last_user: str | None = None  # the user message this assistant turn answers (echo check)


TurnFilter = Callable[[TurnContext], list[Verdict]]


def pii(turn: TurnContext) -> list[Verdict]:
    scrubbed, kinds = scrub_pii(turn.content)
    return [Verdict("pii", "repair", ", ".join(kinds), scrubbed)] if kinds else []


def symbol_debris(turn: TurnContext) -> list[Verdict]:
    cleaned, kinds = strip_debris(turn.content)
    return [Verdict("symbol_debris", "repair", ", ".join(kinds), cleaned)] if kinds else []


def repair_untagged(raw: str) -> str | None:
    """A plain reply with no tags at all becomes one neutral clause; anything else is not ours to guess."""
    text = raw.strip()
    if "<" in text or ">" in text or not text or len(text) > MAX_CHARS:
        return None
    return f"{text}<emotion>neutral</emotion>"


def reply_format(turn: TurnContext) -> list[Verdict]:
    if turn.role != "assistant":
        return []
    fixed = repair_untagged(turn.content)
    return [Verdict("bad_format", "repair", "tagged neutral", fixed)] if fixed else []


def reply_rules(turn: TurnContext) -> list[Verdict]:
    if turn.role == "user":
        return [] if turn.content.strip() else [Verdict("empty", "drop", "user turn")]
    return [
        Verdict(v.code, "drop", v.detail)
        for v in check_character_reply(turn.content, turn.language, turn.rules, last_user=turn.last_user)
    ]


TURN_FILTERS: tuple[TurnFilter, ...] = (pii, symbol_debris, reply_format, reply_rules)


def run_filters(turn: TurnContext, filters: tuple[TurnFilter, ...] = TURN_FILTERS) -> tuple[str, list[Verdict]]:
    """The turn's content after every repair, and every verdict in filter order."""
    verdicts: list[Verdict] = []
    for check in filters:
        for verdict in check(turn):
            verdicts.append(verdict)
            if verdict.repaired is not None:
                turn = replace(turn, content=verdict.repaired)
    return turn.content, verdicts
