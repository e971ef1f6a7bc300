"""The judge, made accountable: a rubric it can follow, pairwise picks asked in both orders,
and a calibration run on items with a known answer before any of its scores rank anything.

A small local model can generate but cannot judge (it gave 9/9/9/9 to a street-food vendor
answering with a Python code block). So every judge is first run on the shipped calibration
set (assets/eval/calibration/): a pick counts only when both orders agree, agreement is the
share of such correct picks, and position bias is how much more often it picks whichever reply
comes first. Below the profile's threshold the judge is *uncalibrated*: its scores are kept and
shown, never ranked by.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import mean
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rp_pipeline.core.chat import ChatModel, LLMCallFailed, StructuredOutputError
from rp_pipeline.core.ids import content_hash, stable_seed
from rp_pipeline.core.languages import LANGUAGES
from rp_pipeline.core.models import PersonaCard, Slug
from rp_pipeline.core.prompts import Prompts

DIMENSIONS = ("human_likeness", "purposefulness", "consistency", "attractiveness")
CATEGORIES = (
    "assistant_speak",
    "code_or_list",
    "wrong_language",
    "goodbye",
    "user_echo",
    "opening_echo",
    "stage_direction",
    "out_of_knowledge",
    "near_tie",
)
Outcome = Literal["x", "y", "tie"]  # which of two replies won, position-consistently
Pick = Literal["first", "second", "tie", "invalid"]


class DimensionScore(BaseModel):
    reason: str = Field(max_length=120)  # first, so a constrained decoder thinks before it scores
    score: int = Field(ge=1, le=10)


class RubricVerdict(BaseModel):
    """Each dimension rated on its own, against the anchors in judge.j2."""

    human_likeness: DimensionScore
    purposefulness: DimensionScore
    consistency: DimensionScore
    attractiveness: DimensionScore

    def scores(self) -> dict[str, int]:
        return {dim: getattr(self, dim).score for dim in DIMENSIONS}

    @property
    def overall(self) -> float:
        return mean(self.scores().values())


class PairVerdict(BaseModel):
    reason: str = Field(max_length=120)
    better: Literal["A", "B", "tie"]


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["character", "user"]
    content: str = Field(min_length=1)


class CalibrationItem(BaseModel):
    """A conversation and two replies where a good judge's preference is known."""

    model_config = ConfigDict(extra="forbid")

    id: Slug
    persona: Slug
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    conversation: list[Turn] = Field(min_length=1)
    better: str = Field(min_length=1)
    worse: str = Field(min_length=1)
    tie: bool = False  # a near-tie: both replies fine; not scored for agreement

    @model_validator(mode="after")
    def _shape(self) -> CalibrationItem:
        roles = [t.role for t in self.conversation]
        if any(role != ("character", "user")[i % 2] for i, role in enumerate(roles)) or roles[-1] != "user":
            raise ValueError(f"conversation must alternate character/user, opening line first, user last: {roles}")
        if self.better == self.worse:
            raise ValueError("better and worse are the same reply")
        if self.tie != (self.category == "near_tie"):
            raise ValueError("tie: true belongs to near_tie items and only to them")
        return self


class PairResult(BaseModel):
    outcome: Outcome
    picks: tuple[Pick, Pick]  # (x shown first, y shown first)


class Calibration(BaseModel):
    judge: str  # the model the judge role routes to
    items: int
    scored_items: int  # items with a known better reply (near-ties excluded)
    agreement: float  # position-consistent correct picks / scored items
    position_bias: float  # (first-position picks - second-position picks) / decisive picks, in [-1, 1]
    unparsed: int  # verdicts that never parsed (each counts as a wrong pick)
    near_tie_decisive: float  # share of near-ties where the judge still picked one reply consistently
    by_category: dict[str, float]
    threshold: float
    calibrated: bool

    @property
    def verdict(self) -> str:
        return "calibrated" if self.calibrated else "uncalibrated"


def load_calibration(directory: Path, personas: dict[str, PersonaCard]) -> list[CalibrationItem]:
    """Every `*.yaml` under `directory`: a list of items; errors name the file and the item."""
    items: list[CalibrationItem] = []
    for path in sorted(directory.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(raw, list):
            raise ValueError(f"{path}: expected a list of calibration items")
        for index, entry in enumerate(raw):
            try:
                item = CalibrationItem.model_validate(entry)
            except ValidationError as exc:
                raise ValueError(f"{path}: item {index}: {exc}") from exc
            if item.persona not in personas:
                raise ValueError(f"{path}: item {item.id!r} names unknown eval persona {item.persona!r}")
            items.append(item)
    if not items:
        raise ValueError(f"{directory}: no calibration items")
    duplicated = [i for i, n in Counter(item.id for item in items).items() if n > 1]
    if duplicated:
        raise ValueError(f"{directory}: duplicate calibration ids {duplicated}")
    return items


JUDGE_TEMPLATES = ("judge.j2", "judge_pairwise.j2")


def judge_fingerprint(judge: dict, prompts_dir: Path, calibration_dir: Path, settings: dict) -> str:
    """What the judge's scores depend on besides the models it judges: its model and sampling
    (`judge`, the model map's role without keys), its two prompt templates, the calibration set
    and the evaluation settings. When it changes, earlier eval scores no longer compare."""
    files = [prompts_dir / name for name in JUDGE_TEMPLATES] + sorted(calibration_dir.glob("*.yaml"))
    return content_hash(
        {
            "judge": judge,
            "files": {f.name: f.read_text(encoding="utf-8") for f in files if f.exists()},
            "settings": settings,
        }
    )


async def rate(
    judge: ChatModel, prompts: Prompts, card: PersonaCard, transcript: list[dict], key: str
) -> RubricVerdict | None:
    """Rubric scores for one transcript, or None when no verdict parses or none came (counted,
    never scored)."""
    prompt = prompts.render("judge", card=card, transcript=transcript)
    try:
        return await judge.structured(
            "judge", [{"role": "user", "content": prompt}], RubricVerdict, seed=stable_seed("judge", key)
        )
    except (StructuredOutputError, LLMCallFailed):
        return None


async def _pick(
    judge: ChatModel, prompts: Prompts, card: PersonaCard, conversation: list[dict], first: str, second: str, key: str
) -> Pick:
    prompt = prompts.render(
        "judge_pairwise",
        card=card,
        language_name=LANGUAGES[card.language],
        transcript=conversation,
        reply_a=first,
        reply_b=second,
    )
    try:
        verdict = await judge.structured(
            "judge", [{"role": "user", "content": prompt}], PairVerdict, seed=stable_seed("pairwise", key)
        )
    except (StructuredOutputError, LLMCallFailed):
        return "invalid"
    return {"A": "first", "B": "second", "tie": "tie"}[verdict.better]  # type: ignore[return-value]


async def compare(
    judge: ChatModel, prompts: Prompts, card: PersonaCard, conversation: list[dict], x: str, y: str, key: str
) -> PairResult:
    """x against y, asked with x first and with y first; a win needs both orders to agree."""
    x_first, y_first = await asyncio.gather(
        _pick(judge, prompts, card, conversation, x, y, f"{key}:xy"),
        _pick(judge, prompts, card, conversation, y, x, f"{key}:yx"),
    )
    if x_first == "first" and y_first == "second":
        outcome: Outcome = "x"
    elif x_first == "second" and y_first == "first":
        outcome = "y"
    else:
        outcome = "tie"
    return PairResult(outcome=outcome, picks=(x_first, y_first))


def position_bias(results: Sequence[PairResult]) -> float:
    picks = Counter(p for r in results for p in r.picks)
    decisive = picks["first"] + picks["second"]
    return round((picks["first"] - picks["second"]) / decisive, 4) if decisive else 0.0


async def calibrate(
    judge: ChatModel,
    prompts: Prompts,
    items: list[CalibrationItem],
    cards: dict[str, PersonaCard],
    threshold: float,
    judge_name: str = "judge",
) -> Calibration:
    results = await asyncio.gather(
        *(
            compare(judge, prompts, cards[i.persona], [t.model_dump() for t in i.conversation], i.better, i.worse, i.id)
            for i in items
        )
    )
    scored = [(i, r) for i, r in zip(items, results, strict=True) if not i.tie]
    near_ties = [r for i, r in zip(items, results, strict=True) if i.tie]
    correct = [r.outcome == "x" for _, r in scored]
    by_category: dict[str, list[bool]] = {}
    for (item, _), ok in zip(scored, correct, strict=True):
        by_category.setdefault(item.category, []).append(ok)
    agreement = round(sum(correct) / len(correct), 4) if correct else 0.0
    unparsed = sum(p == "invalid" for r in results for p in r.picks)
    return Calibration(
        judge=judge_name,
        items=len(items),
        scored_items=len(scored),
        agreement=agreement,
        position_bias=position_bias(results),
        unparsed=unparsed,
        near_tie_decisive=round(mean(r.outcome != "tie" for r in near_ties), 4) if near_ties else 0.0,
        by_category={k: round(mean(v), 4) for k, v in sorted(by_category.items())},
        threshold=threshold,
        calibrated=bool(scored) and agreement >= threshold,
    )


def bootstrap_interval(
    values: Sequence[float],
    statistic: Callable[[Sequence[float]], float] = mean,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of `statistic` over `values` (seeded: the same
    data gives the same interval)."""
    if not values:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(values)
    stats = sorted(statistic([values[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples))
    return (round(stats[int(0.025 * resamples)], 4), round(stats[int(0.975 * resamples) - 1], 4))


class PairwiseSummary(BaseModel):
    """Model x against a baseline y over matched items (scenarios)."""

    baseline: str
    n: int
    win: float
    tie: float
    loss: float
    net: float  # win - loss
    net_interval: tuple[float, float]  # 95% bootstrap interval of win - loss
    position_bias: float

    @property
    def significant(self) -> bool:
        """The interval of win - loss excludes zero."""
        low, high = self.net_interval
        return low > 0 or high < 0


def summarize_pairwise(baseline: str, results: Sequence[PairResult]) -> PairwiseSummary:
    scores = [{"x": 1.0, "y": -1.0, "tie": 0.0}[r.outcome] for r in results]
    n = len(results) or 1
    counts = Counter(r.outcome for r in results)
    return PairwiseSummary(
        baseline=baseline,
        n=len(results),
        win=round(counts["x"] / n, 4),
        tie=round(counts["tie"] / n, 4),
        loss=round(counts["y"] / n, 4),
        net=round(mean(scores), 4) if scores else 0.0,
        net_interval=bootstrap_interval(scores),
        position_bias=position_bias(results),
    )


def difference_interval(
    values: Sequence[float], baseline: Sequence[float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% bootstrap interval of mean(values) - mean(baseline), each resampled on its own."""
    if not values or not baseline:
        return (0.0, 0.0)
    rng = random.Random(seed)
    diffs = sorted(
        mean(values[rng.randrange(len(values))] for _ in values)
        - mean(baseline[rng.randrange(len(baseline))] for _ in baseline)
        for _ in range(resamples)
    )
    return (round(diffs[int(0.025 * resamples)], 4), round(diffs[int(0.975 * resamples) - 1], 4))
