"""Evaluation on held-out personas: the four dimensions of the field notes (1-10, by the
judge role) plus automatic metrics computed from the reply rules.

Transcripts come from scripted user turns (assets/eval/scenarios.yaml) answered by the
model under test, so the base and the tuned model face exactly the same conversation.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from statistics import mean

import yaml
from pydantic import BaseModel, Field

from rp_pipeline.core.chat import ChatModel, Role, StructuredOutputError
from rp_pipeline.core.ids import stable_seed
from rp_pipeline.core.langid import detect_language
from rp_pipeline.core.models import PersonaCard, Slug
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet, check_character_reply, visible_text

DIMENSIONS = ("human_likeness", "purposefulness", "consistency", "attractiveness")


class EvalScenario(BaseModel):
    id: Slug
    persona_id: Slug
    user_turns: list[str] = Field(min_length=1)


class Transcript(BaseModel):
    """A scenario played by one model: alternating scripted user turns and its replies."""

    scenario_id: str
    persona_id: str
    replies: list[str]


class JudgeScores(BaseModel):
    human_likeness: int = Field(ge=1, le=10)
    purposefulness: int = Field(ge=1, le=10)
    consistency: int = Field(ge=1, le=10)
    attractiveness: int = Field(ge=1, le=10)
    rationale: str = Field("", max_length=160)  # bounded so a constrained decoder cannot run out of tokens

    @property
    def overall(self) -> float:
        return mean(getattr(self, dim) for dim in DIMENSIONS)


def load_scenarios(path: Path, personas: dict[str, PersonaCard]) -> list[EvalScenario]:
    scenarios = [EvalScenario.model_validate(raw) for raw in yaml.safe_load(path.read_text(encoding="utf-8"))]
    for scenario in scenarios:
        if scenario.persona_id not in personas:
            raise ValueError(f"{path}: scenario {scenario.id!r} names unknown eval persona {scenario.persona_id!r}")
    return scenarios


def transcript_turns(scenario: EvalScenario, card: PersonaCard, replies: list[str]) -> list[dict]:
    turns = [{"role": "character", "content": card.opening_line}]
    for user, reply in zip(scenario.user_turns, replies, strict=False):
        turns += [{"role": "user", "content": user}, {"role": "character", "content": reply}]
    return turns


async def judge(llm: ChatModel, prompts: Prompts, card: PersonaCard, turns: list[dict], key: str) -> JudgeScores | None:
    """The judge sees a condensed card (who, how, what they do not know), not the whole
    system prompt: enough to rate consistency, at a third of the prompt."""
    prompt = prompts.render("judge", card=card, transcript=turns)
    try:
        return await llm.structured(
            "judge", [{"role": "user", "content": prompt}], JudgeScores, seed=stable_seed("judge", key)
        )
    except StructuredOutputError:
        return None  # counted as a judge failure; one unparseable verdict must not sink the evaluation


async def judge_all(
    llm: ChatModel, prompts: Prompts, items: list[tuple[PersonaCard, list[dict], str]]
) -> list[JudgeScores | None]:
    return list(await asyncio.gather(*(judge(llm, prompts, *item) for item in items)))


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Share of distinct character n-grams: low values mean repetitive replies."""
    grams = [t[i : i + n] for t in texts for i in range(max(len(t) - n + 1, 0))]
    return round(len(set(grams)) / len(grams), 4) if grams else 0.0


def automatic_metrics(replies: list[tuple[str, str]], rules: RuleSet) -> dict[str, float]:
    """`replies` are (language, raw reply) pairs; rates are over all replies."""
    if not replies:
        return {}
    checks = [{v.code for v in check_character_reply(raw, lang, rules)} for lang, raw in replies]
    texts = [visible_text(raw) for _, raw in replies]

    def rate(pred) -> float:
        return round(sum(map(pred, checks)) / len(checks), 4)

    return {
        "format_valid_rate": rate(lambda c: "bad_format" not in c and "empty" not in c),
        "in_language_rate": round(
            mean(detect_language(t) in (None, lang) for t, (lang, _) in zip(texts, replies, strict=True)), 4
        ),
        "within_length_rate": rate(lambda c: "too_long" not in c),
        "assistant_speak_rate": rate(lambda c: "assistant_speak" in c),
        "rule_clean_rate": rate(lambda c: not c),
        "mean_reply_chars": round(mean(len(t) for t in texts), 2),
        "distinct_2": distinct_n(texts),
    }


def mean_scores(scores: list[JudgeScores | None]) -> dict[str, float]:
    """Means over the verdicts that parsed; an evaluation where none did is an error."""
    valid = [s for s in scores if s is not None]
    if not valid:
        raise ValueError(f"the judge returned no valid verdict for any of {len(scores)} transcripts")
    return {
        **{dim: round(mean(getattr(s, dim) for s in valid), 3) for dim in DIMENSIONS},
        "judge_failures": len(scores) - len(valid),
    }


async def play_scenarios(
    llm: ChatModel, role: Role, scenarios: list[EvalScenario], system_prompts: dict[str, str]
) -> dict[str, list[str]]:
    """Answer each scripted user turn in order with the model behind `role`."""

    async def play(scenario: EvalScenario) -> list[str]:
        messages = [{"role": "system", "content": system_prompts[scenario.persona_id]}]
        replies: list[str] = []
        for turn, user in enumerate(scenario.user_turns):
            messages.append({"role": "user", "content": user})
            reply = (await llm.complete(role, list(messages), seed=stable_seed("eval", scenario.id, turn))).text.strip()
            messages.append({"role": "assistant", "content": reply})
            replies.append(reply)
        return replies

    results = await asyncio.gather(*(play(s) for s in scenarios))
    return {s.id: r for s, r in zip(scenarios, results, strict=True)}
