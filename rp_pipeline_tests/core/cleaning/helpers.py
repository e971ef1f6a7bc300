"""Building chat rows for cleaning tests, and reading what cleaning reported about them."""

from __future__ import annotations

from rp_pipeline.core.cleaning import ChatRow, CleaningConfig, CleaningResult, clean_rows
from rp_pipeline.core.models import Dialogue
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.settings import REPO_ROOT

RULES = RuleSet.load(REPO_ROOT / "assets" / "rules")
SYSTEM = {"zh": "你是林小满，一家咖啡店的店员。", "en": "You are Mia, a barista.", "ar": "أنت ليلى، تعملين في مقهى."}
OPENING = {
    "zh": [
        ("今天过得怎么样？", "还行吧，刚下班<emotion>neutral</emotion>"),
        ("店里忙吗？", "忙死了，来了好多学生<emotion>sad</emotion>"),
    ],
    "en": [
        ("How was your day?", "Pretty good, just got off work<emotion>neutral</emotion>"),
        ("Was the cafe busy?", "So busy, a whole class came in<emotion>sad</emotion>"),
    ],
    "ar": [
        ("كيف كان يومك؟", "كان جيدا، انتهيت من العمل للتو<emotion>neutral</emotion>"),
        ("هل كان المقهى مزدحما؟", "نعم جدا، جاء الكثير من الطلاب<emotion>sad</emotion>"),
    ],
}


def row(lang: str, exchanges: list[tuple[str, str]], row_id: str = "r1", opening: bool = True) -> ChatRow:
    messages = [{"role": "system", "content": SYSTEM[lang]}]
    for user, reply in (OPENING[lang] if opening else []) + exchanges:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return ChatRow.model_validate({"id": row_id, "language": lang, "messages": messages})


def clean(rows: list[ChatRow], **config) -> CleaningResult:
    return clean_rows(rows, RULES, CleaningConfig(**config))


def codes_by_turn(result: CleaningResult) -> dict[int | None, set[str]]:
    found: dict[int | None, set[str]] = {}
    for report in result.reports:
        found.setdefault(report.turn, set()).update(report.codes)
    return found


def last_reply_codes(lang: str, reply: str, user: str = "你在干嘛？") -> set[str]:
    """Codes reported for `reply`, the last turn of a row that is clean before it."""
    result = clean([row(lang, [(user, reply)])])
    return codes_by_turn(result).get(6, set())


def dialogue(
    turns: list[tuple[str, str]], opening: str, language: str = "zh", system_prompt: str | None = None
) -> Dialogue:
    """A simulated dialogue record: the opening line, then (user, reply) exchanges. By default the
    system prompt carries the opening line, as persona_system.j2 does."""
    records = [{"role": "character", "content": opening}]
    for user, reply in turns:
        records += [{"role": "user", "content": user}, {"role": "character", "content": reply}]
    return Dialogue.model_validate(
        {
            "id": "dlg-1",
            "persona_id": "lin",
            "sample_id": "s",
            "topic_id": "t",
            "language": language,
            "mode": "multi_agent",
            "system_prompt": system_prompt or f"你是林小满。\n# Your first message (already sent)\n{opening}",
            "stop_reason": "max_turns",
            "scene": {"id": "cafe", "place": "咖啡店", "time": "晚上", "situation": "打烊前"},
            "user": {
                "personality": {"id": "p", "name": "p", "behaviours": ["a", "b"]},
                "occupation": "学生",
                "relationship": "朋友",
            },
            "turns": records,
        }
    )
