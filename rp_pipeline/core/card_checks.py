"""Content checks of a persona card, authored or synthesized: the name is a personal name (not
a description or a role), the speaking examples are distinct and pass the character reply
rules (tagged, in the card's language, no assistant-speak...), and so does the opening line.
Each problem is a violation whose detail starts with the field it is in.
"""

from __future__ import annotations

import re

from rp_pipeline.core.models import PersonaCard, Violation
from rp_pipeline.core.rules import RuleSet, check_character_reply, is_echo, normalized

MAX_NAME_WORDS = 4
MAX_NAME_CHARS = 40
MAX_UNSPACED_NAME_CHARS = 8  # CJK full names run 2-5 characters; a longer run is a description
# Lowercase words a personal name may contain (de la Cruz, van Dijk, bin Rashid, dos Santos).
NAME_PARTICLES = frozenset(
    "de del della der di da das do dos du la le van von den ter ten bin binti al el y e zu".split()  # noqa: SIM905
)
# Words that open a description, never a name ("A friendly street-food stall owner").
ARTICLES = frozenset(
    "a an the un una uno unos unas une ein eine einer der die das il lo gli o os um uma".split()  # noqa: SIM905
)
# Words no personal name contains ("AI Companion", "Chat Assistant").
NOT_NAME_WORDS = frozenset("assistant companion ai bot chatbot character persona user".split())  # noqa: SIM905
# Role nouns: a name made only of these and the card's occupation words is a role ("Street Food
# Vendor"); one beside a real name is a surname ("Lena Baker" the baker).
ROLE_WORDS = frozenset("owner vendor seller keeper worker stranger neighbour neighbor friend buddy".split())  # noqa: SIM905
# Unspaced scripts: particles of a description (一个友好的摊主, 花屋の店員) and role nouns.
ROLE_WORDS_CJK = tuple("的 一个 一位 助手 助理 机器人 人工智能 老板 摊主 店主 アシスタント の".split())  # noqa: SIM905
_PARENTHESIS = re.compile(r"\s*[(（][^()（）]*[)）]\s*")  # 陈建国（街坊都叫他老陈）: a nickname aside


def name_problem(name: str, occupation: str) -> str | None:
    """Why `name` reads as a description or a role rather than a personal name, or None."""
    main = _PARENTHESIS.sub(" ", name).strip()
    if not main:
        return "no name outside the parentheses"
    if any(ch.isdigit() for ch in main):
        return "contains digits"
    words = main.split()
    if len(words) > MAX_NAME_WORDS or len(main) > MAX_NAME_CHARS:
        return f"{len(words)} words, {len(main)} characters: a description, not a name"
    if any(w in main for w in ROLE_WORDS_CJK):
        return "reads as a description or role, not a name"
    cased = [w for w in words if any(ch.isupper() or ch.islower() for ch in w)]
    if not cased:  # scripts without case: CJK, Thai, Devanagari, Arabic
        unspaced = max(len(w) for w in words)
        if " " not in main and unspaced > MAX_UNSPACED_NAME_CHARS:
            return f"{unspaced} characters without a space: a description, not a name"
        chunks = {occupation[i : i + 2] for i in range(len(occupation) - 1)}
        if any(main[i : i + 2] in chunks for i in range(len(main) - 1)):
            return "repeats the occupation"
        return None
    folded = [w.casefold().strip(".,'-") for w in words]
    if folded[0] in ARTICLES:
        return f"starts with the article {words[0]!r}: a description, not a name"
    lowercase = [w for w, f in zip(words, folded, strict=True) if w[:1].islower() and f not in NAME_PARTICLES]
    if lowercase:
        return f"lowercase words {lowercase}: a description, not a name"
    parts = {p for f in folded for p in re.split(r"[-'.]", f) if p} - NAME_PARTICLES
    if found := sorted(parts & NOT_NAME_WORDS):
        return f"{found} are not name words: a role, not a name"
    roles = ROLE_WORDS | {w for w in re.findall(r"\w+", occupation.casefold()) if len(w) >= 4}
    if parts <= roles:
        return f"only role words {sorted(parts)}: a role, not a name"
    return None


def check_card(card: PersonaCard, rules: RuleSet) -> list[Violation]:
    """Content problems of a card as violations whose detail starts with the field."""
    problems: list[Violation] = []

    def add(field: str, code: str, detail: str) -> None:
        problems.append(Violation(code=code, detail=f"field '{field}': {detail}"))

    if why := name_problem(card.name, card.occupation):
        add("name", "bad_name", f"{card.name!r} {why}")
    seen: list[str] = []
    for i, example in enumerate(card.speaking_examples):
        field = f"speaking_examples.{i}"
        for v in check_character_reply(example, card.language, rules, character_name=card.name):
            add(field, v.code, v.detail or example[:40])
        if any(normalized(example) == normalized(o) or is_echo(example, o) for o in seen):
            add(field, "duplicate_example", f"repeats an earlier example: {example[:40]!r}")
        seen.append(example)
    for v in check_character_reply(card.opening_line, card.language, rules, character_name=card.name):
        add("opening_line", v.code, v.detail or card.opening_line[:40])
    return problems


def describe(problems: list[Violation]) -> str:
    return "; ".join(f"{p.detail} ({p.code})" for p in problems)
