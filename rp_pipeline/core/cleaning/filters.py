"""Turn filters: each looks at one turn and says nothing (keep), drop (the row is cut
before this turn, since every later turn was conditioned on it) or repair (the turn is
rewritten and kept). They run in order, each on the previous one's repair, so a turn is
first judged for document structure (markdown that debris removal would erase), scrubbed of
personal data and debris, then judged by the same rules generation uses (`core/rules`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from rp_pipeline.core.cleaning.debris import strip_debris
from rp_pipeline.core.cleaning.models import Verdict
from rp_pipeline.core.cleaning.pii import scrub_pii
from rp_pipeline.core.reply_format import MAX_CHARS
from rp_pipeline.core.rules import RuleSet, check_character_reply, check_user_turn
from rp_pipeline.core.signals import find_structure


@dataclass(frozen=True)
class TurnContext:
    role: str
    content: str
    language: str
    rules: RuleSet
    last_user: str | None = None  # the user message this assistant turn answers (echo check)
    # what an assistant turn must not copy either: the persona's first message, its own earlier replies
    opening_line: str | None = None
    previous_replies: tuple[str, ...] = ()
    character_name: str | None = None
    last_character: str | None = None  # the character message this user turn answers (user_echo)
    previous_user_turns: tuple[str, ...] = ()  # a user turn must not copy the user's earlier ones either
    switch_language: str | None = None  # a user turn may be in this language too (ChatRow.switch_language)


TurnFilter = Callable[[TurnContext], list[Verdict]]


def structure(turn: TurnContext) -> list[Verdict]:
    """A code block, heading, list, bold text, link or URL: an assistant's answer. Judged
    before `symbol_debris` strips markdown, since removing the marks would hide the answer."""
    if not (found := find_structure(turn.content)):
        return []
    code = "assistant_speak" if turn.role == "assistant" else "user_assistant_speak"
    return [Verdict(code, "drop", f"structure: {found}")]


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
    """The rules generation uses, for both speakers: a user turn that is garbage (assistant-
    speak, degenerate, an echo, markup, another language) cuts the row as a bad reply does."""
    if turn.role == "user":
        found = check_user_turn(
            turn.content,
            turn.language,
            turn.rules,
            last_character=turn.last_character,
            previous_user_turns=turn.previous_user_turns,
            switch_language=turn.switch_language,
        )
    else:
        found = check_character_reply(
            turn.content,
            turn.language,
            turn.rules,
            last_user=turn.last_user,
            opening_line=turn.opening_line,
            previous_replies=turn.previous_replies,
            character_name=turn.character_name,
        )
    return [Verdict(v.code, "drop", v.detail) for v in found]


TURN_FILTERS: tuple[TurnFilter, ...] = (structure, pii, symbol_debris, reply_format, reply_rules)


def run_filters(turn: TurnContext, filters: tuple[TurnFilter, ...] = TURN_FILTERS) -> tuple[str, list[Verdict]]:
    """The turn's content after every repair, and every verdict in filter order."""
    verdicts: list[Verdict] = []
    for check in filters:
        for verdict in check(turn):
            verdicts.append(verdict)
            if verdict.repaired is not None:
                turn = replace(turn, content=verdict.repaired)
    return turn.content, verdicts
