"""The judge is calibrated before it ranks anything; pairwise picks count only when both orders
agree; an uncalibrated judge's scores are shown and never ranked by."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from pydantic import BaseModel

from rp_pipeline.core.artifacts import Checkpoint, EvalReport, ModelEval, QuantizedModel
from rp_pipeline.core.chat import Completion, Messages, Role, StructuredOutputError
from rp_pipeline.core.evaluation import compare_versions, load_eval_cards, load_scenarios
from rp_pipeline.core.judging import (
    PairVerdict,
    RubricVerdict,
    bootstrap_interval,
    calibrate,
    difference_interval,
    load_calibration,
    summarize_pairwise,
)
from rp_pipeline.core.leaderboard import leaderboard_rows, markdown, rank
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet, assistant_speak, visible_text
from rp_pipeline.settings import REPO_ROOT

ASSETS = REPO_ROOT / "assets"
RULES = RuleSet.load(ASSETS / "rules")
PROMPTS = Prompts(ASSETS / "prompts")
CARDS = load_eval_cards(ASSETS / "eval", RULES)
ITEMS = load_calibration(ASSETS / "eval" / "calibration", CARDS)


class FakeJudge:
    """An in-process judge: `pick(reply_a, reply_b)` decides each pairwise verdict."""

    def __init__(self, pick: Callable[[str, str], str]):
        self.pick, self.calls = pick, 0

    async def complete(self, role: Role, messages: Messages, *, seed: int, response_schema=None) -> Completion:
        raise AssertionError("the judge is only asked for structured verdicts")

    async def structured(self, role: Role, messages: Messages, schema: type[BaseModel], *, seed: int):
        self.calls += 1
        prompt = messages[-1]["content"]
        if schema is PairVerdict:
            a = prompt.split("\nReply A: ", 1)[1].split("\nReply B: ", 1)[0]
            b = prompt.split("\nReply B: ", 1)[1].split("\n\nAnswer with JSON", 1)[0]
            better = self.pick(a, b)
            if better == "garbage":
                raise StructuredOutputError("no JSON")
            return PairVerdict(reason="fake", better=better)
        assert schema is RubricVerdict
        return RubricVerdict.model_validate({d: {"reason": "fake", "score": 5} for d in RubricVerdict.model_fields})


def _assistant(reply: str) -> bool:
    return assistant_speak(reply, visible_text(reply), RULES) is not None


def prefers_assistant_speak(a: str, b: str) -> str:
    return "A" if _assistant(a) and not _assistant(b) else "B" if _assistant(b) and not _assistant(a) else "tie"


BETTER = {item.better for item in ITEMS if not item.tie}


def oracle(a: str, b: str) -> str:
    return "A" if a in BETTER else "B" if b in BETTER else "tie"


def run_calibration(pick) -> object:
    return asyncio.run(calibrate(FakeJudge(pick), PROMPTS, ITEMS, CARDS, threshold=0.8))


def test_a_judge_that_prefers_assistant_speak_fails_calibration():
    result = run_calibration(prefers_assistant_speak)
    assert not result.calibrated and result.verdict == "uncalibrated"
    assert result.agreement < 0.2 and result.by_category["assistant_speak"] == 0.0


def test_a_judge_that_picks_correctly_passes_calibration():
    result = run_calibration(oracle)
    assert result.calibrated and result.agreement == 1.0 and result.unparsed == 0
    assert result.scored_items == len([i for i in ITEMS if not i.tie]) >= 60 - 9
    assert result.position_bias == 0.0  # the oracle picks the better reply wherever it stands


def test_a_judge_whose_verdicts_never_parse_is_uncalibrated():
    result = run_calibration(lambda a, b: "garbage")
    assert not result.calibrated and result.agreement == 0.0 and result.unparsed == 2 * len(ITEMS)


def test_an_always_first_judge_ties_everything_and_shows_its_bias():
    result = run_calibration(lambda a, b: "A")
    assert result.agreement == 0.0 and result.position_bias == 1.0 and not result.calibrated


def _played():
    scenarios = load_scenarios(ASSETS / "eval" / "scenarios.yaml", CARDS)
    tested = {s.id: [f"B-reply {i}<emotion>happy</emotion>" for i in range(len(s.user_turns))] for s in scenarios}
    baseline = {s.id: [f"A-reply {i}<emotion>neutral</emotion>" for i in range(len(s.user_turns))] for s in scenarios}
    return scenarios, tested, baseline


def test_a_version_preferred_in_both_orders_wins():
    scenarios, tested, baseline = _played()
    judge = FakeJudge(lambda a, b: "A" if "B-reply" in a else "B")
    results = asyncio.run(compare_versions(judge, PROMPTS, CARDS, scenarios, tested, baseline, "b-vs-a"))
    summary = summarize_pairwise("a", results)
    assert summary.win == 1.0 and summary.loss == 0.0 and summary.significant
    assert summary.position_bias == 0.0 and judge.calls == 2 * len(scenarios)


def test_a_first_position_judge_gives_ties_and_reports_its_bias():
    scenarios, tested, baseline = _played()
    results = asyncio.run(
        compare_versions(FakeJudge(lambda a, b: "A"), PROMPTS, CARDS, scenarios, tested, baseline, "k")
    )
    summary = summarize_pairwise("a", results)
    assert summary.tie == 1.0 and summary.win == summary.loss == 0.0
    assert summary.position_bias == 1.0 and not summary.significant


def _report(calibrated: bool, tuned_clean: list[float], base_clean: list[float]) -> EvalReport:
    calibration = run_calibration(oracle if calibrated else prefers_assistant_speak)
    checkpoint = Checkpoint(
        version="dpo-1",
        stage="dpo",
        base_model_dir="/base",
        adapters=["/a"],
        corpus_version="corpus-1",
        corpus_rows=40,
        corpus_languages={"zh": 30, "en": 10},
        steps={"sft": 20, "dpo": 5},
    )
    model = QuantizedModel(version="q-1", format="quanto", path="/q", checkpoint=checkpoint)
    scenarios, tested, baseline = _played()
    pairwise = summarize_pairwise(
        "base-1",
        asyncio.run(
            compare_versions(
                FakeJudge(lambda a, b: "A" if "B-reply" in a else "B"), PROMPTS, CARDS, scenarios, tested, baseline, "k"
            )
        ),
    )

    def version(name, values, scores, pair):
        metrics = {
            "rule_clean_rate": sum(values) / len(values),
            "rule_clean_rate_low": 0.0,
            "rule_clean_rate_high": 1.0,
        }
        return ModelEval(
            name=name,
            model_version=f"{name}-1",
            scores=scores,
            metrics=metrics,
            reply_values={"rule_clean_rate": values},
            scenarios=[],
            pairwise=pair,
        )

    judged = dict.fromkeys(("human_likeness", "purposefulness", "consistency", "attractiveness"), 8.0)
    return EvalReport(
        evaluated_at="2026-12-01T00:00:00+00:00",
        model=model,
        calibration=calibration,
        results=[version("tuned", tuned_clean, judged, pairwise), version("base", base_clean, judged, None)],
    )


def test_an_uncalibrated_judge_is_marked_and_ranks_nothing():
    rows = rank(leaderboard_rows(_report(False, [1.0] * 40, [0.0] * 40), "test"))
    assert all(r["judge_rank"] is None and r["judge_calibrated"] is False for r in rows)
    assert [r["kind"] for r in rows] == ["tuned", "base"]  # ranked by rule-clean rate alone
    assert "uncalibrated, not ranked" in markdown(rows)
    tuned = rows[0]
    assert tuned["method"] == "lora" and tuned["sft_steps"] == 20 and tuned["corpus_rows"] == 40
    assert tuned["significant_vs_baseline"] is True  # rule-clean 1.0 vs 0.0 differs whatever the judge says


def test_a_calibrated_judge_ranks_and_a_tie_on_metrics_is_flagged():
    same = [1.0, 0.0] * 20
    rows = rank(leaderboard_rows(_report(True, same, same), "test"))
    assert {r["judge_rank"] for r in rows} == {1, 2}
    tuned = next(r for r in rows if r["kind"] == "tuned")
    assert tuned["judge_calibrated"] is True and tuned["pairwise_win"] == 1.0
    assert tuned["significant_vs_baseline"] is True  # the calibrated pairwise verdict decides here
    uncalibrated = rank(leaderboard_rows(_report(False, same, same), "test"))
    assert next(r for r in uncalibrated if r["kind"] == "tuned")["significant_vs_baseline"] is False


@pytest.mark.parametrize(("values", "expected"), [([0.5] * 30, (0.5, 0.5)), ([], (0.0, 0.0))])
def test_bootstrap_interval_of_a_constant_is_the_constant(values, expected):
    assert bootstrap_interval(values) == expected


def test_difference_interval_excludes_zero_only_for_a_real_difference():
    low, high = difference_interval([1.0] * 30 + [0.0] * 10, [0.0] * 30 + [1.0] * 10)
    assert low > 0
    low, high = difference_interval([1.0, 0.0] * 20, [0.0, 1.0] * 20)
    assert low < 0 < high


def test_a_version_evaluated_without_pairwise_still_gets_its_row():
    report = _report(False, [1.0] * 40, [0.0] * 40)
    tuned = report.results[0].model_copy(update={"pairwise": None})
    rows = leaderboard_rows(report.model_copy(update={"results": [tuned, report.results[1]]}), "test")
    row = next(r for r in rows if r["kind"] == "tuned")
    assert row["baseline"] == "base-1" and row["method"] == "lora" and "pairwise_win" not in row
    assert row["significant_vs_baseline"] is True
