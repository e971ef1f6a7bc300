"""The leaderboard a data team acts on: one row per evaluated model version with how it was
made (method, steps, data and pairs versions, corpus size and language mix), every automatic
metric with its interval, the pairwise result against its baseline, the judge's calibration,
and whether the version differs significantly from its baseline at all.

Judge scores rank versions only when the judge passed calibration; otherwise they are stored
and marked, and versions are ranked by the rule-clean rate (an automatic metric) alone.
"""

from __future__ import annotations

import json
from typing import Any

from rp_pipeline.core.artifacts import EvalReport, ModelEval
from rp_pipeline.core.judging import DIMENSIONS, difference_interval

SIGNIFICANCE_METRIC = "rule_clean_rate"


def leaderboard_rows(report: EvalReport, profile: str) -> list[dict[str, Any]]:
    checkpoint = report.model.checkpoint
    calibration = report.calibration
    baseline = next(r for r in report.results if r.name == "base")
    rows = []
    for result in report.results:
        tested = result is not baseline
        row: dict[str, Any] = {
            "model_version": result.model_version,
            "kind": result.name,
            "evaluated_at": report.evaluated_at,
            "profile": profile,
            "base_model": checkpoint.base_model_dir,
            "judge": calibration.judge,
            "judge_calibrated": calibration.calibrated,
            "judge_agreement": calibration.agreement,
            "judge_position_bias": calibration.position_bias,
            **{f"judge_{dim}": result.scores.get(dim) for dim in DIMENSIONS},
            "judge_failures": result.scores.get("judge_failures"),
            **result.metrics,
        }
        if tested:
            row.update(_made_of(report), **_against_baseline(result, baseline, calibration.calibrated))
        rows.append(row)
    return rows


def _made_of(report: EvalReport) -> dict[str, Any]:
    checkpoint = report.model.checkpoint
    return {
        "method": checkpoint.method,
        "sft_steps": checkpoint.steps.get("sft"),
        "dpo_steps": checkpoint.steps.get("dpo"),
        "corpus_version": checkpoint.corpus_version,
        "corpus_rows": checkpoint.corpus_rows,
        "corpus_languages": json.dumps(checkpoint.corpus_languages, ensure_ascii=False),
        "sft_version": checkpoint.sft_version,
        "dpo_version": checkpoint.version,
        "pairs_version": checkpoint.pairs_version,
        "quantization": report.model.format,
    }


def _against_baseline(result: ModelEval, baseline: ModelEval, calibrated: bool) -> dict[str, Any]:
    """Pairwise fields stay empty when the profile turned pairwise judging off."""
    pair = result.pairwise
    low, high = difference_interval(
        result.reply_values.get(SIGNIFICANCE_METRIC, []), baseline.reply_values.get(SIGNIFICANCE_METRIC, [])
    )
    metric_differs = low > 0 or high < 0
    pairwise = (
        {
            "pairwise_win": pair.win,
            "pairwise_tie": pair.tie,
            "pairwise_loss": pair.loss,
            "pairwise_net": pair.net,
            "pairwise_net_low": pair.net_interval[0],
            "pairwise_net_high": pair.net_interval[1],
        }
        if pair
        else {}
    )
    return {
        "baseline": baseline.model_version,
        **pairwise,
        f"{SIGNIFICANCE_METRIC}_diff_low": low,
        f"{SIGNIFICANCE_METRIC}_diff_high": high,
        # the judge's pairwise verdict counts only when it is calibrated
        "significant_vs_baseline": metric_differs or (calibrated and pair is not None and pair.significant),
    }


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row ranked by rule-clean rate; `judge_rank` only among rows whose judge was
    calibrated (None elsewhere: an uncalibrated judge ranks nothing)."""
    by_rules = sorted(rows, key=lambda r: -(r.get(SIGNIFICANCE_METRIC) or 0.0))
    for position, row in enumerate(by_rules, start=1):
        row["rank"] = position
    calibrated = [r for r in rows if r.get("judge_calibrated") and r.get("judge_human_likeness") is not None]
    judged = sorted(calibrated, key=lambda r: -sum(r[f"judge_{d}"] for d in DIMENSIONS))
    for row in rows:
        row["judge_rank"] = None
    for position, row in enumerate(judged, start=1):
        row["judge_rank"] = position
    return by_rules


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table the leaderboard asset shows: judge scores are marked where uncalibrated."""
    columns = (
        "rank",
        "version",
        "kind",
        "rule-clean",
        "format-valid",
        "in-language",
        "assistant-speak",
        "judge (mean)",
        "vs baseline",
        "significant",
    )
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        judged = [v for v in (r.get(f"judge_{d}") for d in DIMENSIONS) if v is not None]
        judge = f"{sum(judged) / len(judged):.2f}" if len(judged) == len(DIMENSIONS) else "—"
        if judge != "—" and not r.get("judge_calibrated"):
            judge += " (uncalibrated, not ranked)"
        if r.get("pairwise_win") is not None:
            versus = f"W {r['pairwise_win']:.2f} / T {r['pairwise_tie']:.2f} / L {r['pairwise_loss']:.2f}"
        else:
            versus = "baseline" if r.get("baseline") is None else "not judged pairwise"
        lines.append(
            f"| {r['rank']} | {r['model_version']} | {r['kind']} | {_rate(r, 'rule_clean_rate')} | "
            f"{_rate(r, 'format_valid_rate')} | {_rate(r, 'in_language_rate')} | {_rate(r, 'assistant_speak_rate')} | "
            f"{judge} | {versus} | {'' if r.get('significant_vs_baseline') is None else r['significant_vs_baseline']} |"
        )
    return "\n".join(lines)


def _rate(row: dict[str, Any], name: str) -> str:
    value, low, high = row.get(name), row.get(f"{name}_low"), row.get(f"{name}_high")
    return "—" if value is None else f"{value:.2f} [{low:.2f}, {high:.2f}]"
