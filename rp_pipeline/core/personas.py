"""Persona cards: authored YAML files and LLM-synthesized cards, validated the same way.

Validation is of form (pydantic: fields and types) and of content (`check_card`: the name is
a name, the speaking examples are distinct, tagged and in the card's language, the opening
line passes the character reply rules). A bad authored card is an error that names the file
and the field, raised only for its own partition: one broken card never stops the others. A
bad synthesized card is written again (new seed, told what broke) and dropped, with its
problems as the reason, when no attempt passes.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from rp_pipeline.core.chat import ChatModel, StructuredOutputError
from rp_pipeline.core.ids import content_id, stable_seed
from rp_pipeline.core.languages import LANGUAGES, LATIN, scripts_of
from rp_pipeline.core.models import EMOTIONS, Drop, PersonaCard, SeedSample, TopicSet, Violation
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet, check_character_reply, is_echo, normalized


class PersonaCardError(ValueError):
    """A card file that cannot become a PersonaCard; message names file and field."""


def authored_persona_ids(personas_dir: Path) -> list[str]:
    return sorted(p.stem for p in personas_dir.glob("*.yaml"))


def load_persona_file(path: Path, rules: RuleSet | None = None) -> PersonaCard:
    """A card from its YAML file; with `rules`, its content is checked too (`check_card`)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        raise PersonaCardError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    except OSError as exc:
        raise PersonaCardError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(raw, dict):
        raise PersonaCardError(f"{path}: expected a mapping of card fields, got {type(raw).__name__}")
    raw.setdefault("id", path.stem)
    if raw["id"] != path.stem:
        raise PersonaCardError(f"{path}: field 'id' is {raw['id']!r} but must equal the file name {path.stem!r}")
    try:
        card = PersonaCard.model_validate({**raw, "source": "authored"})
    except ValidationError as exc:
        problems = "; ".join(f"field '{'.'.join(str(x) for x in err['loc'])}': {err['msg']}" for err in exc.errors())
        raise PersonaCardError(f"{path}: {problems}") from exc
    if rules is not None and (problems := check_card(card, rules)):
        raise PersonaCardError(f"{path}: {describe(problems)}")
    return card


# --- content checks ----------------------------------------------------------------------

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
ROLE_WORDS_CJK = (
    "的",
    "一个",
    "一位",
    "助手",
    "助理",
    "机器人",
    "人工智能",
    "老板",
    "摊主",
    "店主",
    "アシスタント",
    "の",
)
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


def system_prompt(card: PersonaCard, prompts: Prompts) -> str:
    """The training system prompt: the card and the ground rules, never the scene (notes 000)."""
    return prompts.render("persona_system", card=card)


_NAME_LINE = re.compile(r"^You are (.+?)\. Stay in character as \1 at all times\.", re.MULTILINE)
_OPENING = re.compile(r"^# Your first message \(already sent\)\n(.+?)\n(?:\n|$)", re.MULTILINE | re.DOTALL)


def speaker_of(system: str) -> tuple[str | None, str | None]:
    """(name, opening line) of the card a training system prompt (`persona_system.j2`) was
    rendered from, so checks on a training row still see the opening line the row's system
    prompt holds; None for what a prompt of another shape does not say."""
    name, opening = _NAME_LINE.search(system), _OPENING.search(system)
    return (name.group(1) if name else None), (opening.group(1).strip() if opening else None)


# A line in the reply format as a JSON-schema pattern: a constrained decoder (llama.cpp turns a
# schema pattern into grammar) then writes tagged lines, which a small model rarely does unasked.
# As in the character grammar, the clause bound is over the reply limit: a clause it had to close
# fails `too_long` in `check_card` instead of passing cut. Quotes and backslashes are left out so
# the pattern never has to reason about JSON escapes.
REPLY_LINE = r'^([^<>\n"\\]{1,51}<emotion>(' + "|".join(EMOTIONS) + r")</emotion>){1,2}$"
ReplyLine = Annotated[str, StringConstraints(pattern=REPLY_LINE)]


class PersonaDraft(BaseModel):
    """What the persona writer returns; ids, language and provenance are ours, not the LLM's."""

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    gender: str = Field(min_length=1)
    age: int = Field(ge=1, le=10_000)
    background: str = Field(min_length=1)
    speaking_examples: list[ReplyLine] = Field(min_length=2, max_length=5)
    knowledge_boundary: str = Field(min_length=1)
    opening_line: ReplyLine
    specialty: str = Field(min_length=1)


def card_from_draft(draft: PersonaDraft, sample: SeedSample, topics: TopicSet) -> PersonaCard:
    """Fields the seed sample already fixes are copied, not regenerated, so coverage holds."""
    slug = content_id("syn", {"sample": sample.id, "name": draft.name})
    return PersonaCard(
        id=slug,
        occupation=sample.character_occupation,
        personality=list(sample.character_personality.behaviours),
        relation_to_user=sample.relationship,
        language=sample.language,
        source="synthesized",
        parent_ids=[sample.id, topics.id],
        **draft.model_dump(),
    )


async def synthesize_personas(
    llm: ChatModel, prompts: Prompts, rules: RuleSet, pairs: list[tuple[SeedSample, TopicSet]], attempts: int = 3
) -> tuple[list[PersonaCard], list[Drop]]:
    """A checked card per (sample, topics), written up to `attempts` times (each retry with a new
    seed and told what broke); a pair whose every attempt fails becomes a drop (reason `bad_card`,
    the problems of the last attempt as detail), its row the last card's id or the sample's."""

    async def one(sample: SeedSample, topics: TopicSet) -> PersonaCard | Drop:
        row_id, problems = sample.id, ["no valid card"]
        for attempt in range(attempts):
            prompt = prompts.render(
                "persona_writer",
                sample=sample,
                topics=topics,
                language_name=LANGUAGES[sample.language],
                latin=scripts_of(sample.language) == LATIN,
                problems=problems if attempt else [],
            )
            seed = stable_seed("persona", sample.id) if attempt == 0 else stable_seed("persona", sample.id, attempt)
            try:
                draft = await llm.structured(
                    "persona_writer", [{"role": "user", "content": prompt}], PersonaDraft, seed=seed
                )
            except StructuredOutputError as exc:
                problems = [f"invalid output: {str(exc)[:160]}"]
                continue
            card = card_from_draft(draft, sample, topics)
            found = check_card(card, rules)
            if not found:
                return card
            row_id, problems = card.id, [f"{p.detail} ({p.code})" for p in found]
        return Drop(row_id=row_id, reason="bad_card", detail=f"after {attempts} attempts: " + "; ".join(problems))

    results = await asyncio.gather(*(one(s, t) for s, t in pairs))
    return [r for r in results if isinstance(r, PersonaCard)], [r for r in results if isinstance(r, Drop)]
