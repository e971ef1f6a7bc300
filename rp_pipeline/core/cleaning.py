"""Cleaning a simulated dialogue into training turns.

Each character turn is checked with the same rules generation used. A reply with nothing
wrong but its tags is repaired (tagged neutral); any other violation cuts the dialogue
before the exchange that produced it, because every later turn was conditioned on the bad
reply. A dialogue with too few good exchanges left is dropped. Every repair, cut and drop
comes back as a `Drop` with a reason code, so nothing disappears unaccounted.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from rp_pipeline.core.ids import content_id
from rp_pipeline.core.langid import detect_language
from rp_pipeline.core.models import CleanedDialogue, Dialogue, Drop, Message, Violation
from rp_pipeline.core.reply_format import MAX_CHARS, ReplyFormatError, parse_reply
from rp_pipeline.core.rules import RuleSet, check_character_reply, visible_text


class CleaningConfig(BaseModel):
    min_exchanges: int = Field(2, ge=1, description="drop a dialogue with fewer good user/character pairs")


class CleaningResult(BaseModel):
    kept: list[CleanedDialogue]
    drops: list[Drop]  # turn-level cuts and repairs, and whole-dialogue drops (turn=None)


def repair_untagged(raw: str) -> str | None:
    """A plain reply with no tags at all becomes one neutral clause; anything else is not ours to guess."""
    text = raw.strip()
    if "<" in text or ">" in text or not text or len(text) > MAX_CHARS:
        return None
    return f"{text}<emotion>neutral</emotion>"


def clean_dialogue(dialogue: Dialogue, rules: RuleSet, config: CleaningConfig) -> CleaningResult:
    drops: list[Drop] = []
    messages = [Message(role="system", content=dialogue.system_prompt)]
    repaired = 0
    # turns[0] is the opening line, already part of the system prompt; then user/character pairs.
    pairs = list(zip(dialogue.turns[1::2], dialogue.turns[2::2], strict=False))
    seen_replies: set[str] = set()
    for number, (user, character) in enumerate(pairs):
        index = 2 + 2 * number
        if not user.content.strip():
            drops.append(Drop(row_id=dialogue.id, turn=index - 1, reason="empty", detail="user turn"))
            break
        reply = character.content.strip()
        codes = check_character_reply(reply, dialogue.language, rules, last_user=user.content)
        if [v.code for v in codes] == ["bad_format"] and (fixed := repair_untagged(reply)):
            drops.append(Drop(row_id=dialogue.id, turn=index, reason="bad_format", detail="repaired: tagged neutral"))
            reply, codes, repaired = fixed, [], repaired + 1
        if not codes and visible_text(reply) in seen_replies:
            codes = [Violation(code="repetition_loop", detail="reply repeats an earlier reply")]
        if codes:
            for violation in codes:
                drops.append(Drop(row_id=dialogue.id, turn=index, reason=violation.code, detail=violation.detail))
            break
        seen_replies.add(visible_text(reply))
        messages += [Message(role="user", content=user.content), Message(role="assistant", content=reply)]
    exchanges = (len(messages) - 1) // 2
    if exchanges < config.min_exchanges:
        drops.append(Drop(row_id=dialogue.id, reason="too_few_turns", detail=f"{exchanges} good exchanges"))
        return CleaningResult(kept=[], drops=drops)
    cleaned = CleanedDialogue(
        id=content_id("clean", [m.model_dump() for m in messages]), dialogue_id=dialogue.id,
        persona_id=dialogue.persona_id, language=dialogue.language, messages=messages, repaired_turns=repaired,
    )
    return CleaningResult(kept=[cleaned], drops=drops)


def dedupe(dialogues: list[CleanedDialogue]) -> CleaningResult:
    """Exact duplicates by content id (the id hashes the messages); the first one stays."""
    kept: dict[str, CleanedDialogue] = {}
    drops = []
    for dialogue in dialogues:
        if dialogue.id in kept:
            drops.append(Drop(row_id=dialogue.dialogue_id, reason="exact_duplicate", detail=f"same as {dialogue.id}"))
        else:
            kept[dialogue.id] = dialogue
    return CleaningResult(kept=list(kept.values()), drops=drops)


def is_valid_reply(raw: str) -> bool:
    try:
        parse_reply(raw)
    except ReplyFormatError:
        return False
    return True


def quality_rates(conversations: list[tuple[str, list[Message]]]) -> dict[str, float]:
    """Format-valid and in-language rates over assistant turns; the gates before training."""
    replies = [(lang, m.content) for lang, messages in conversations for m in messages if m.role == "assistant"]
    if not replies:
        return {"assistant_turns": 0, "format_valid_rate": 0.0, "in_language_rate": 0.0}
    detected = [detect_language(visible_text(text)) for _, text in replies]
    return {
        "assistant_turns": len(replies),
        "format_valid_rate": round(sum(is_valid_reply(text) for _, text in replies) / len(replies), 4),
        "in_language_rate": round(sum(d in (None, lang) for d, (lang, _) in zip(detected, replies, strict=True))
                                  / len(replies), 4),
    }
