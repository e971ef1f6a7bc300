"""Topic keywords per seed sample (field notes 001: combinations -> topic keywords -> dialogues).

Keywords must be in the sample's language: a keyword in another language is dropped, the
writer is asked again (new seed) while fewer than `MIN_KEYWORDS` survive, and a sample that
gets none at all is dropped with the rejected keywords as the reason's detail.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import regex
from pydantic import BaseModel, Field, StringConstraints

from rp_pipeline.core.chat import ChatModel, LLMCallFailed, StructuredOutputError
from rp_pipeline.core.ids import content_id, stable_seed
from rp_pipeline.core.langid import detect_language, script_share
from rp_pipeline.core.languages import LANGUAGES, LATIN, scripts_of
from rp_pipeline.core.models import Drop, SeedSample, TopicSet
from rp_pipeline.core.prompts import Prompts

MIN_KEYWORDS = 3
# Scripts that belong to particular languages: a phrase with letters of one its language does not
# use (kana in Chinese, Han in Thai) is in another language. Latin may stand in any (brands, "KTV").
_OWNED_SCRIPTS = regex.compile(
    "|".join(
        rf"(?P<{s}>\p{{{s}}})"
        for s in ("Han", "Hiragana", "Katakana", "Hangul", "Cyrillic", "Arabic", "Thai", "Devanagari")
    )
)


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


def fits_language(phrase: str, language: str) -> bool:
    """A short phrase (keyword, topic) written in `language`: mostly in its scripts and with no
    letter of a script it does not use. Outside Latin that decides (a Han-only phrase counts as
    Japanese too); within Latin, language ID decides when it can (a phrase under its letter
    minimum is not judged)."""
    if script_share(phrase, language) <= 0.5:
        return False
    if {m.lastgroup for m in _OWNED_SCRIPTS.finditer(phrase)} - scripts_of(language):
        return False
    if scripts_of(language) != LATIN:
        return True
    return detect_language(phrase) in (None, language)


def in_language(phrases: list[str], language: str) -> list[str]:
    return [p for p in phrases if fits_language(p, language)]


async def write_topics(
    llm: ChatModel, prompts: Prompts, samples: list[SeedSample], attempts: int = 3
) -> tuple[list[TopicSet], list[Drop]]:
    """Topic sets for the samples that got in-language keywords, and a drop for each that did not:
    `wrong_language` when the writer answered in another language, `invalid_output` when it never
    gave valid JSON, `llm_error` when the provider gave no answer (one sample never sinks the rest)."""

    async def one(sample: SeedSample) -> TopicSet | Drop:
        prompt = prompts.render("topic_writer", sample=sample, language_name=LANGUAGES[sample.language])
        kept: list[str] = []
        rejected: list[str] = []
        failed: Drop | None = None
        for attempt in range(attempts):
            seed = stable_seed("topics", sample.id) if attempt == 0 else stable_seed("topics", sample.id, attempt)
            try:
                result = await llm.structured(
                    "topic_writer", [{"role": "user", "content": prompt}], TopicList, seed=seed
                )
            except StructuredOutputError as exc:
                failed = Drop(row_id=sample.id, reason="invalid_output", detail=str(exc)[:300])
                continue
            except LLMCallFailed as exc:
                failed = Drop(row_id=sample.id, reason="llm_error", detail=str(exc)[:300])
                break  # the provider is failing: keep what earlier attempts gave
            keywords = dedupe_keywords(result.keywords)
            kept = dedupe_keywords(kept + in_language(keywords, sample.language))
            rejected += [k for k in keywords if not fits_language(k, sample.language)]
            if len(kept) >= MIN_KEYWORDS:
                break
        if not kept and failed and not rejected:
            return failed
        if not kept:
            return Drop(
                row_id=sample.id,
                reason="wrong_language",
                detail=f"no topic keyword in {LANGUAGES[sample.language]}: " + ", ".join(dict.fromkeys(rejected))[:200],
            )
        return TopicSet(
            id=content_id("topic", {"sample": sample.id, "keywords": kept}), sample_id=sample.id, keywords=kept
        )

    results = await asyncio.gather(*(one(s) for s in samples))
    return [r for r in results if isinstance(r, TopicSet)], [r for r in results if isinstance(r, Drop)]
