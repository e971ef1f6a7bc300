"""Evaluation on held-out personas: the four dimensions of the field notes (1-10, by the
judge role, see core/judging.py) plus automatic metrics computed by the cleaning rule engine.

Transcripts come from scripted user turns (assets/eval/scenarios.yaml) answered by the
model under test, so the base and the tuned model face exactly the same conversation.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from statistics import mean

import yaml
from pydantic import BaseModel, Field

from rp_pipeline.core.atomic import write_text_atomic
from rp_pipeline.core.chat import ChatModel, Role
from rp_pipeline.core.ids import stable_seed
from rp_pipeline.core.judging import DIMENSIONS, PairResult, RubricVerdict, bootstrap_interval, compare, rate
from rp_pipeline.core.models import PersonaCard, Slug
from rp_pipeline.core.personas import load_persona_file
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet, check_character_reply, is_echo, is_near_copy, visible_text


class EvalScenario(BaseModel):
    id: Slug
    persona_id: Slug
    user_turns: list[str] = Field(min_length=1)


def load_eval_cards(eval_dir: Path, rules: RuleSet) -> dict[str, PersonaCard]:
    """The held-out personas (eval_dir/personas/*.yaml), content-checked like training cards."""
    cards = [load_persona_file(path, rules) for path in sorted((eval_dir / "personas").glob("*.yaml"))]
    return {card.id: card for card in cards}


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


class ScenarioPlay(BaseModel):
    """A scenario as one model played it: what the metrics need to judge each reply in context."""

    language: str
    opening_line: str
    character_name: str
    user_turns: list[str]
    replies: list[str]


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Share of distinct character n-grams: low values mean repetitive replies."""
    grams = [t[i : i + n] for t in texts for i in range(max(len(t) - n + 1, 0))]
    return round(len(set(grams)) / len(grams), 4) if grams else 0.0


FORMAT_FAILURES = {"bad_format", "empty", "truncated"}
# Per reply, 1.0 when it passes (or, for the *_rate of a fault, when it has the fault).
REPLY_METRICS = (
    "format_valid_rate",
    "in_language_rate",
    "within_length_rate",
    "rule_clean_rate",
    "assistant_speak_rate",
    "goodbye_rate",
    "stage_direction_rate",
    "opening_echo_rate",
    "user_echo_rate",
    "self_repetition_rate",
    "name_prefix_rate",
)


def reply_flags(play: ScenarioPlay, rules: RuleSet) -> list[dict[str, float]]:
    """Each reply judged by the cleaning rule engine in its context (the user turn it answers,
    the opening line, its own earlier replies). A reply that does not parse fails every format
    metric; nothing is skipped."""
    flags = []
    for index, (user, raw) in enumerate(zip(play.user_turns, play.replies, strict=False)):
        earlier = play.replies[:index]
        codes = {
            v.code
            for v in check_character_reply(
                raw,
                play.language,
                rules,
                user,
                opening_line=play.opening_line,
                previous_replies=earlier,
                character_name=play.character_name,
            )
        }
        unparsed = bool(codes & FORMAT_FAILURES)
        flags.append(
            {
                "format_valid_rate": float(not unparsed),
                "in_language_rate": float(not codes & {"wrong_language", "lang_mix"}),
                "within_length_rate": float(not unparsed and "too_long" not in codes),
                "rule_clean_rate": float(not codes),
                "assistant_speak_rate": float("assistant_speak" in codes),
                "goodbye_rate": float("goodbye" in codes),
                "stage_direction_rate": float("stage_direction" in codes),
                "opening_echo_rate": float(is_near_copy(raw, play.opening_line)),
                "user_echo_rate": float(is_echo(raw, user)),
                "self_repetition_rate": float(
                    "self_repeat" in codes or any(is_near_copy(raw, before) for before in earlier)
                ),
                "name_prefix_rate": float("name_prefix" in codes),
            }
        )
    return flags


def automatic_metrics(plays: list[ScenarioPlay], rules: RuleSet) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Rates over all replies, each with a 95% bootstrap interval over replies, plus distinct-1/2
    and the mean visible length. Returns (metrics, per-reply values) so versions can be compared
    reply for reply."""
    flags = [f for play in plays for f in reply_flags(play, rules)]
    if not flags:
        return {}, {}
    values = {name: [f[name] for f in flags] for name in REPLY_METRICS}
    texts = [visible_text(raw) for play in plays for raw in play.replies]
    metrics: dict[str, float] = {"replies": float(len(flags))}
    for name, column in values.items():
        low, high = bootstrap_interval(column)
        metrics.update({name: round(mean(column), 4), f"{name}_low": low, f"{name}_high": high})
    metrics.update(
        distinct_1=distinct_n(texts, 1),
        distinct_2=distinct_n(texts, 2),
        mean_reply_chars=round(mean(len(t) for t in texts), 2),
    )
    return metrics, values


def mean_scores(verdicts: list[RubricVerdict | None]) -> dict[str, float]:
    """Means per dimension over the verdicts that parsed, and how many did not (counted, never
    scored). No valid verdict at all gives no scores, not zeros."""
    valid = [v for v in verdicts if v is not None]
    scores = {dim: round(mean(v.scores()[dim] for v in valid), 3) for dim in DIMENSIONS} if valid else {}
    return {**scores, "judge_failures": float(len(verdicts) - len(valid))}


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


def write_scenario_requests(path: Path, scenarios: list[EvalScenario], system_prompts: dict[str, str]) -> Path:
    """The scenarios as request rows of the generate script (training/generate.py), which plays
    them in-process: the persona's system prompt, then every scripted user turn answered in order."""
    rows = [
        {
            "id": s.id,
            "messages": [{"role": "system", "content": system_prompts[s.persona_id]}],
            "user_turns": s.user_turns,
        }
        for s in scenarios
    ]
    return write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def scenario_generate_config(
    model: dict,
    scenarios: list[EvalScenario],
    system_prompts: dict[str, str],
    work: Path,
    output: Path,
    max_new_tokens: int,
    seed: int,
) -> dict:
    """The generate script's config that plays `scenarios` with `model` (its model_dir, kind,
    adapters), sampled as every eval samples (temperature 0.7, `seed`); the requests go to `work`."""
    requests = write_scenario_requests(work / "requests.jsonl", scenarios, system_prompts)
    return {
        **model,
        "requests_file": str(requests),
        "output_file": str(output),
        "max_new_tokens": max_new_tokens,
        "temperature": 0.7,
        "seed": seed,
    }


def read_played_replies(path: Path) -> dict[str, list[str]]:
    """{scenario id: replies} from the generate script's output for `write_scenario_requests`."""
    return {row["id"]: row["replies"] for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def scenario_plays(
    scenarios: list[EvalScenario], cards: dict[str, PersonaCard], replies: dict[str, list[str]]
) -> list[ScenarioPlay]:
    return [
        ScenarioPlay(
            language=cards[s.persona_id].language,
            opening_line=cards[s.persona_id].opening_line,
            character_name=cards[s.persona_id].name,
            user_turns=s.user_turns,
            replies=replies[s.id],
        )
        for s in scenarios
    ]


async def rate_transcripts(
    judge: ChatModel,
    prompts: Prompts,
    cards: dict[str, PersonaCard],
    scenarios: list[EvalScenario],
    replies: dict[str, list[str]],
    version: str,
) -> list[RubricVerdict | None]:
    """The rubric verdict of every scenario transcript (None where it never parsed)."""
    return list(
        await asyncio.gather(
            *(
                rate(
                    judge,
                    prompts,
                    cards[s.persona_id],
                    transcript_turns(s, cards[s.persona_id], replies[s.id]),
                    f"{version}/{s.id}",
                )
                for s in scenarios
            )
        )
    )


def _rest_of_transcript(scenario: EvalScenario, replies: list[str]) -> str:
    return "\n".join(
        f"user: {user}\ncharacter: {reply}" for user, reply in zip(scenario.user_turns, replies, strict=False)
    )


async def compare_versions(
    judge: ChatModel,
    prompts: Prompts,
    cards: dict[str, PersonaCard],
    scenarios: list[EvalScenario],
    tested: dict[str, list[str]],
    baseline: dict[str, list[str]],
    key: str,
) -> list[PairResult]:
    """Per scenario, the tested model's whole transcript against the baseline's, both orders."""
    return list(
        await asyncio.gather(
            *(
                compare(
                    judge,
                    prompts,
                    cards[s.persona_id],
                    [{"role": "character", "content": cards[s.persona_id].opening_line}],
                    _rest_of_transcript(s, tested[s.id]),
                    _rest_of_transcript(s, baseline[s.id]),
                    f"{key}/{s.id}",
                )
                for s in scenarios
            )
        )
    )
