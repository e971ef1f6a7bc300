"""The gates before training: format-valid and in-language rates over assistant turns."""

from __future__ import annotations

from rp_pipeline.core.langid import detect_language
from rp_pipeline.core.models import Message
from rp_pipeline.core.reply_format import ReplyFormatError, parse_reply
from rp_pipeline.core.rules import spoken_text


def is_valid_reply(raw: str) -> bool:
    try:
        parse_reply(raw)
    except ReplyFormatError:
        return False
    return True


def quality_rates(conversations: list[tuple[str, list[Message]]]) -> dict[str, float]:
    replies = [(lang, m.content) for lang, messages in conversations for m in messages if m.role == "assistant"]
    if not replies:
        return {"assistant_turns": 0, "format_valid_rate": 0.0, "in_language_rate": 0.0}
    detected = [detect_language(spoken_text(text)) for _, text in replies]
    return {
        "assistant_turns": len(replies),
        "format_valid_rate": round(sum(is_valid_reply(text) for _, text in replies) / len(replies), 4),
        "in_language_rate": round(
            sum(d in (None, lang) for d, (lang, _) in zip(detected, replies, strict=True)) / len(replies), 4
        ),
    }
