"""What the blocking checks measure beyond cleaning: the content rules of both speakers on
every kept turn, seen in the conversation the row holds (the opening line in its system
prompt included), as `(turn index, violation)` pairs and a clean rate over turns."""

from __future__ import annotations

from collections import Counter

from rp_pipeline.core.models import Message, Violation
from rp_pipeline.core.personas import speaker_of
from rp_pipeline.core.rules import RuleSet, check_character_reply, check_user_turn


def content_violations(
    messages: list[Message], language: str, rules: RuleSet, switch_language: str | None = None
) -> list[tuple[int, Violation]]:
    """Every rule a kept turn breaks: assistant turns against the user's message, the opening
    line, their earlier replies and the character's name; user turns against the reply before
    and the user's own earlier turns (in `language` or the row's deliberate `switch_language`)."""
    system = messages[0].content if messages and messages[0].role == "system" else ""
    name, opening = speaker_of(system)
    found: list[tuple[int, Violation]] = []
    replies: list[str] = []
    users: list[str] = []
    last_user: str | None = None
    last_character = opening
    for index, message in enumerate(messages):
        if message.role == "user":
            found += [
                (index, v)
                for v in check_user_turn(
                    message.content,
                    language,
                    rules,
                    last_character=last_character,
                    previous_user_turns=users,
                    switch_language=switch_language,
                )
            ]
            last_user = message.content
            users.append(message.content)
        elif message.role == "assistant":
            violations = check_character_reply(
                message.content,
                language,
                rules,
                last_user=last_user,
                opening_line=opening,
                previous_replies=list(replies),
                character_name=name,
            )
            found += [(index, v) for v in violations]
            replies.append(message.content)
            last_character = message.content
    return found


def content_rates(conversations: list[tuple[str, list[Message], str | None]], rules: RuleSet) -> dict:
    """Turns checked, turns breaking a rule, the clean rate and the codes found (with counts),
    over (language, messages, switch_language) conversations."""
    turns = bad = 0
    codes: Counter[str] = Counter()
    for language, messages, switch_language in conversations:
        found = content_violations(messages, language, rules, switch_language)
        turns += sum(m.role != "system" for m in messages)
        bad += len({index for index, _ in found})
        codes.update(v.code for _, v in found)
    return {
        "content_turns": turns,
        "content_violation_turns": bad,
        "content_clean_rate": round(1 - bad / turns, 4) if turns else 1.0,
        "content_codes": dict(codes.most_common()),
    }
