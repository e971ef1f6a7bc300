"""Topic keywords per seed sample, and persona synthesis from a sample and its topics."""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from rp_pipeline.core.ids import content_id, stable_seed
from rp_pipeline.core.languages import LANGUAGES
from rp_pipeline.core.models import PersonaCard, SeedSample, TopicSet
from rp_pipeline.core.personas import PersonaDraft, card_from_draft
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.llm.client import LLMClient


class TopicList(BaseModel):
    keywords: list[Annotated[str, StringConstraints(max_length=40)]] = Field(min_length=3, max_length=8)


def dedupe_keywords(keywords: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for word in (k.strip() for k in keywords):
        if word and word.casefold() not in seen:
            seen.add(word.casefold())
            out.append(word)
    return out


async def write_topics(llm: LLMClient, prompts: Prompts, samples: list[SeedSample]) -> list[TopicSet]:
    async def one(sample: SeedSample) -> TopicSet:
        prompt = prompts.render("topic_writer", sample=sample, language_name=LANGUAGES[sample.language])
        result = await llm.structured(
            "topic_writer", [{"role": "user", "content": prompt}], TopicList, seed=stable_seed("topics", sample.id)
        )
        keywords = dedupe_keywords(result.keywords)
        return TopicSet(
            id=content_id("topic", {"sample": sample.id, "keywords": keywords}), sample_id=sample.id, keywords=keywords
        )

    return list(await asyncio.gather(*(one(s) for s in samples)))


async def synthesize_personas(
    llm: LLMClient, prompts: Prompts, pairs: list[tuple[SeedSample, TopicSet]]
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
