"""Persona cards: authored YAML files and LLM-synthesized cards, validated the same way.

A bad card is an error that names the file and the field, raised only for its own
partition: one broken card never stops the others.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from rp_pipeline.core.chat import ChatModel
from rp_pipeline.core.ids import content_id, stable_seed
from rp_pipeline.core.languages import LANGUAGES
from rp_pipeline.core.models import PersonaCard, SeedSample, TopicSet
from rp_pipeline.core.prompts import Prompts


class PersonaCardError(ValueError):
    """A card file that cannot become a PersonaCard; message names file and field."""


def authored_persona_ids(personas_dir: Path) -> list[str]:
    return sorted(p.stem for p in personas_dir.glob("*.yaml"))


def load_persona_file(path: Path) -> PersonaCard:
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
        return PersonaCard.model_validate({**raw, "source": "authored"})
    except ValidationError as exc:
        problems = "; ".join(f"field '{'.'.join(str(x) for x in err['loc'])}': {err['msg']}" for err in exc.errors())
        raise PersonaCardError(f"{path}: {problems}") from exc


def system_prompt(card: PersonaCard, prompts: Prompts) -> str:
    """The training system prompt: the card and the ground rules, never the scene (notes 000)."""
    return prompts.render("persona_system", card=card)


class PersonaDraft(BaseModel):
    """What the persona writer returns; ids, language and provenance are ours, not the LLM's."""

    name: str = Field(min_length=1)
    gender: str = Field(min_length=1)
    age: int = Field(ge=1, le=10_000)
    background: str = Field(min_length=1)
    speaking_examples: list[str] = Field(min_length=2, max_length=5)
    knowledge_boundary: str = Field(min_length=1)
    opening_line: str = Field(min_length=1)
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
    llm: ChatModel, prompts: Prompts, pairs: list[tuple[SeedSample, TopicSet]]
) -> list[PersonaCard]:
    async def one(sample: SeedSample, topics: TopicSet) -> PersonaCard:
        prompt = prompts.render(
            "persona_writer", sample=sample, topics=topics, language_name=LANGUAGES[sample.language]
        )
        draft = await llm.structured(
            "persona_writer",
            [{"role": "user", "content": prompt}],
            PersonaDraft,
            seed=stable_seed("persona", sample.id),
        )
        return card_from_draft(draft, sample, topics)

    return list(await asyncio.gather(*(one(s, t) for s, t in pairs)))
