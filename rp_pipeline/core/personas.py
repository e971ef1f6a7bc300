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

from rp_pipeline.core.card_checks import MAX_NAME_CHARS, check_card, describe
from rp_pipeline.core.chat import ChatModel, LLMCallFailed, StructuredOutputError
from rp_pipeline.core.ids import content_id, stable_seed
from rp_pipeline.core.languages import LANGUAGES, LATIN, scripts_of
from rp_pipeline.core.models import EMOTIONS, Drop, PersonaCard, SeedSample, TopicSet
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet


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


def system_prompt(card: PersonaCard, prompts: Prompts, *, with_opening_line: bool = True) -> str:
    """The training system prompt: the card and the ground rules, never the scene (notes 000).

    Generation leaves the opening line out (`with_opening_line=False`): the simulator sends it
    as the character's first message, and shown twice the 0.5B model repeated it word for word
    in most replies (13 of 18 tries in one measurement, 3 of 18 without the second copy)."""
    return prompts.render("persona_system", card=card, with_opening_line=with_opening_line)


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
            except LLMCallFailed as exc:
                return Drop(row_id=row_id, reason="llm_error", detail=str(exc)[:300])
            card = card_from_draft(draft, sample, topics)
            found = check_card(card, rules)
            if not found:
                return card
            row_id, problems = card.id, [f"{p.detail} ({p.code})" for p in found]
        return Drop(row_id=row_id, reason="bad_card", detail=f"after {attempts} attempts: " + "; ".join(problems))

    results = await asyncio.gather(*(one(s, t) for s, t in pairs))
    return [r for r in results if isinstance(r, PersonaCard)], [r for r in results if isinstance(r, Drop)]
