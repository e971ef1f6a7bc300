"""Cleaning one row: every turn through the turn filters, then the first degenerate loop;
the row is cut before its first bad turn, or dropped when too few exchanges would remain.
Every flagged turn comes back as a report, so nothing disappears unaccounted."""

from __future__ import annotations

from collections.abc import Mapping

from rp_pipeline.core.cleaning.endings import merge_cuts
from rp_pipeline.core.cleaning.filters import TurnContext, run_filters
from rp_pipeline.core.cleaning.loops import find_loop
from rp_pipeline.core.cleaning.models import Action, ChatRow, CleaningConfig, TurnReport, Verdict
from rp_pipeline.core.models import Message
from rp_pipeline.core.rules import RuleSet


def cut_at(row: ChatRow, turn: int, config: CleaningConfig) -> tuple[ChatRow | None, Action]:
    """`row` before `turn`, ending on an assistant reply (the user message that prompted a bad
    reply goes too); None and "drop" when fewer than `min_exchanges` replies would remain."""
    kept = list(row.messages[:turn])
    while kept and kept[-1].role == "user":
        kept.pop()
    if sum(m.role == "assistant" for m in kept) < config.min_exchanges:
        return None, "drop"
    return row.model_copy(update={"messages": kept}), "cut"


def _report(row: ChatRow, turn: int, verdicts: list[Verdict], action: Action) -> TurnReport:
    return TurnReport(
        id=row.id,
        turn=turn,
        role=row.messages[turn].role,
        action=action,
        codes=list(dict.fromkeys(v.code for v in verdicts)),
        details=list(dict.fromkeys(f"{v.code}: {v.detail}" for v in verdicts if v.detail)),
    )


def clean_row(
    row: ChatRow, rules: RuleSet, config: CleaningConfig, unfinished: Mapping[int, str] | None = None
) -> tuple[ChatRow | None, list[TurnReport]]:
    """Each turn is checked against the conversation so far: a reply against the user message
    it answers, the opening line and the character's earlier replies; a user turn against
    the character message before it (the opening line for the first one). `unfinished`: the
    replies a language model read as cut (`endings.find_unfinished`), with why."""
    cuts = merge_cuts(row, unfinished or {})
    messages = list(row.messages)
    verdicts: dict[int, list[Verdict]] = {}
    last_user: str | None = None
    last_character = row.opening_line
    replies: list[str] = []
    users: list[str] = []
    for index, message in enumerate(messages):
        if message.role == "system":
            continue
        assistant = message.role == "assistant"
        context = TurnContext(
            message.role,
            message.content,
            row.language,
            rules,
            last_user=last_user if assistant else None,
            opening_line=row.opening_line if assistant else None,
            previous_replies=tuple(replies) if assistant else (),
            character_name=row.character_name,
            last_character=None if assistant else last_character,
            previous_user_turns=() if assistant else tuple(users),
            switch_language=None if assistant else row.switch_language,
        )
        content, found = run_filters(context)
        if content != message.content:
            messages[index] = Message(role=message.role, content=content)
        if assistant:
            replies.append(content)
            last_character = content
        else:
            last_user = content
            users.append(content)
        if index in cuts:
            found.append(Verdict("truncated" if assistant else "user_truncated", "drop", cuts[index]))
        if found:
            verdicts[index] = found
    numbered = [(i, m.content) for i, m in enumerate(messages) if m.role == "assistant"]
    for turn, detail in find_loop(numbered, config.loop_window, config.loop_similarity):
        verdicts.setdefault(turn, []).append(Verdict("repetition_loop", "drop", detail))
    repaired = row.model_copy(update={"messages": messages})
    cut = min((i for i, found in verdicts.items() if any(v.action == "drop" for v in found)), default=None)
    kept, cut_action = cut_at(repaired, cut, config) if cut is not None else (repaired, "cut")
    reports = []
    for turn in sorted(verdicts):
        action: Action = "repair" if cut is None or turn < cut else cut_action if turn == cut else "flag"
        reports.append(_report(repaired, turn, verdicts[turn], action))
    if kept is not None and sum(m.role == "assistant" for m in kept.messages) < config.min_exchanges:
        reports.append(TurnReport(id=row.id, turn=None, role=None, codes=["too_few_turns"], action="drop"))
        kept = None
    return kept, reports
