"""Topic keywords per seed sample (field notes 001: combinations -> topic keywords -> dialogues)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from rp_pipeline.core.chat import ChatModel
from rp_pipeline.core.ids import content_id, stable_seed
from rp_pipeline.core.languages import LANGUAGES
from rp_pipeline.core.models import SeedSample, TopicSet
from rp_pipeline.core.prompts import Prompts


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


async def write_topics(llm: ChatModel, prompts: Prompts, samples: list[SeedSample]) -> list[TopicSet]:
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
