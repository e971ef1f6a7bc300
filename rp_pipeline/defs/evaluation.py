"""Evaluation on held-out personas and the leaderboard of model versions.

The tuned (quantized) model and its base play the same scripted scenarios. The judge role is
calibrated first, then rates both on the four dimensions of the field notes and compares them
pairwise; the cleaning rule engine gives the automatic metrics. Generation runs under Pipes
like training (it needs torch), or on llama.cpp for a GGUF."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from rp_pipeline.core.artifacts import EvalReport, ModelEval, QuantizedModel, ScenarioResult
from rp_pipeline.core.atomic import atomic_path
from rp_pipeline.core.evaluation import (
    automatic_metrics,
    compare_versions,
    load_eval_cards,
    load_scenarios,
    mean_scores,
    play_scenarios,
    rate_transcripts,
    read_played_replies,
    scenario_generate_config,
    scenario_plays,
    transcript_turns,
)
from rp_pipeline.core.ids import content_id
from rp_pipeline.core.judging import DIMENSIONS, calibrate, judge_fingerprint, load_calibration, summarize_pairwise
from rp_pipeline.core.leaderboard import leaderboard_rows, markdown, rank
from rp_pipeline.core.personas import system_prompt
from rp_pipeline.defs.launchers import TrainingLauncher
from rp_pipeline.defs.metadata import llm_metadata, md_table, transcript_markdown
from rp_pipeline.defs.quantize import gptq_python
from rp_pipeline.defs.resources import LineageResource, LLMResource, PipelineResource
from rp_pipeline.defs.training import run_script

GROUP = "evaluation"


def _play_in_process(
    context, trainer, name: str, model: dict, scenarios, system_prompts, out_dir: Path, seed: int, max_tokens: int
) -> dict[str, list[str]]:
    """Transformers generation (dense or optimum-quanto int8) in generate.py under Pipes. A GPTQ
    checkpoint loads as a dense model where compressed-tensors is installed: the gptq environment."""
    python = model.get("python")
    output = out_dir / f"{name}_replies.jsonl"
    dense = {k: v for k, v in model.items() if k != "python"}
    config = scenario_generate_config(dense, scenarios, system_prompts, out_dir, output, max_tokens, seed)
    run_script(context, trainer, "generate", config, out_dir / name, python=python)
    return read_played_replies(output)


JUDGE_FINGERPRINT = "judge_fingerprint"  # eval_scores metadata: what the judge_config_sensor compares


def current_judge_fingerprint(pipeline: PipelineResource, llm: LLMResource) -> str:
    """The judge configuration as the model map, prompts, calibration set and profile have it now."""
    return judge_fingerprint(
        llm.config().roles["judge"].model_dump(mode="json"),
        pipeline.assets / "prompts",
        pipeline.assets / "eval" / "calibration",
        pipeline.load_profile().evaluation.model_dump(mode="json"),
    )


def play_on_llama_cpp(
    llm: LLMResource, gguf: str, model_id: str, scenarios, system_prompts, out_dir: Path, max_tokens: int
) -> tuple[dict[str, list[str]], list]:
    """A GGUF model served by llama.cpp on 127.0.0.1, reached through litellm like any provider."""
    from rp_pipeline.llm.embedded import serve_embedded

    with serve_embedded(Path(gguf), alias=model_id, log_path=out_dir / f"{model_id}_server.log") as api_base:
        client = llm.served_client(api_base, model_id, max_tokens)
        return client.run(play_scenarios(client, "character", scenarios, system_prompts)), client.calls


@asset(
    group_name=GROUP,
    kinds={"pytorch", "litellm"},
    owners=["team:ml"],
    code_version="2",
    pool="gpu",
    description="Held-out personas played by the quantized model and by its base. The judge is first "
    "calibrated on assets/eval/calibration/ (both orders; uncalibrated judges are marked and rank nothing); "
    "then it rates each transcript on the four dimensions with the rubric and compares tuned against base "
    "pairwise in both orders. Automatic metrics from the cleaning rule engine, with bootstrap intervals.",
)
def eval_scores(
    context: AssetExecutionContext,
    quantized_model: QuantizedModel,
    pipeline: PipelineResource,
    trainer: TrainingLauncher,
    llm: LLMResource,
    lineage: LineageResource,
) -> Output[EvalReport]:
    profile = pipeline.load_profile()
    fingerprint = current_judge_fingerprint(pipeline, llm)
    eval_dir = pipeline.assets / "eval"
    prompts, rules = pipeline.prompts(), pipeline.rules()
    cards = load_eval_cards(eval_dir, rules)
    scenarios = load_scenarios(eval_dir / "scenarios.yaml", cards)
    items = load_calibration(eval_dir / "calibration", cards)
    out_dir = pipeline.work / "eval" / quantized_model.version
    out_dir.mkdir(parents=True, exist_ok=True)
    client = llm.client()
    with lineage.billing(context, client):
        calibration = client.run(
            calibrate(
                client, prompts, items, cards, profile.evaluation.calibration_threshold, client.routed_model("judge")
            )
        )
        context.log.info(
            f"judge {calibration.judge}: agreement {calibration.agreement:.2f} on {calibration.scored_items} items, "
            f"position bias {calibration.position_bias:+.2f} -> {calibration.verdict}"
        )
        replies, calls = _play_models(
            context, trainer, llm, quantized_model, scenarios, cards, prompts, out_dir, profile
        )
        results: list[ModelEval] = []
        for name, (version, played) in replies.items():
            verdicts = client.run(rate_transcripts(client, prompts, cards, scenarios, played, version))
            metrics, values = automatic_metrics(scenario_plays(scenarios, cards, played), rules)
            pairwise = None
            if name == "tuned" and profile.evaluation.pairwise:
                base_version, base_replies = replies["base"]
                key = f"{version}-vs-{base_version}"
                outcomes = client.run(compare_versions(client, prompts, cards, scenarios, played, base_replies, key))
                pairwise = summarize_pairwise(base_version, outcomes)
            results.append(
                ModelEval(
                    name=name,
                    model_version=version,
                    scores=mean_scores(verdicts),
                    metrics=metrics,
                    reply_values=values,
                    scenarios=[
                        ScenarioResult(scenario=s.id, replies=played[s.id], verdict=verdict)
                        for s, verdict in zip(scenarios, verdicts, strict=True)
                    ],
                    pairwise=pairwise,
                )
            )
        report = EvalReport(
            evaluated_at=datetime.now(UTC).isoformat(), model=quantized_model, calibration=calibration, results=results
        )
        lineage.record(
            context,
            rows=[
                (
                    content_id("eval", r.model_dump(mode="json")),
                    [quantized_model.version],
                    {"model_version": r.model_version, "name": r.name},
                )
                for r in results
            ],
            calls=client.calls + calls,
        )
    metadata = _eval_metadata(report, scenarios, cards, client.calls + calls)
    return Output(report, metadata={**metadata, JUDGE_FINGERPRINT: fingerprint})


def _play_models(context, trainer, llm, quantized_model: QuantizedModel, scenarios, cards, prompts, out_dir, profile):
    """{"tuned": (version, replies), "base": (version, replies)} and the LLM calls made to play them."""
    system_prompts = {key: system_prompt(card, prompts) for key, card in cards.items()}
    base_dir = quantized_model.checkpoint.base_model_dir
    models: dict[str, tuple[str, Any]]
    if quantized_model.format == "gguf":
        base_gguf = quantized_model.base_gguf or ""
        models = {
            "tuned": (quantized_model.version, quantized_model.path),
            "base": (content_id("base", base_gguf), base_gguf),
        }
    elif quantized_model.format == "gptq":  # generated under the GPTQ environment (compressed-tensors)
        models = {
            "tuned": (
                quantized_model.version,
                {"model_dir": quantized_model.path, "kind": "dense", "python": gptq_python()},
            ),
            "base": (content_id("base", base_dir), {"model_dir": base_dir, "kind": "dense"}),
        }
    else:
        models = {
            "tuned": (quantized_model.version, {"model_dir": quantized_model.path, "kind": "quantized"}),
            "base": (content_id("base", base_dir), {"model_dir": base_dir, "kind": "dense"}),
        }
    played, calls = {}, []
    for name, (version, model) in models.items():
        if quantized_model.format == "gguf":
            replies, made = play_on_llama_cpp(
                llm, model, version, scenarios, system_prompts, out_dir, profile.training.eval_max_new_tokens
            )
            calls += made
        else:
            replies = _play_in_process(
                context,
                trainer,
                name,
                model,
                scenarios,
                system_prompts,
                out_dir,
                profile.seed,
                profile.training.eval_max_new_tokens,
            )
        played[name] = (version, replies)
    return played, calls


def _eval_metadata(report: EvalReport, scenarios, cards, calls) -> dict[str, Any]:
    """Numbers as numbers (the UI plots each across materializations), tables as markdown."""
    calibration = report.calibration
    meta: dict[str, Any] = {
        "judge": calibration.judge,
        "judge_verdict": calibration.verdict,
        "judge_agreement": MetadataValue.float(calibration.agreement),
        "judge_position_bias": MetadataValue.float(calibration.position_bias),
        "judge_agreement_by_category": MetadataValue.json(calibration.by_category),
    }
    for result in report.results:
        for key in ("rule_clean_rate", "format_valid_rate", "in_language_rate", "assistant_speak_rate"):
            if key in result.metrics:
                meta[f"{result.name}_{key}"] = MetadataValue.float(result.metrics[key])
        for dim in DIMENSIONS:
            if dim in result.scores:
                meta[f"{result.name}_judge_{dim}"] = MetadataValue.float(result.scores[dim])
        if result.pairwise:
            meta["pairwise_win"] = MetadataValue.float(result.pairwise.win)
            meta["pairwise_tie"] = MetadataValue.float(result.pairwise.tie)
            meta["pairwise_loss"] = MetadataValue.float(result.pairwise.loss)
    meta["scores"] = md_table(
        {
            "name": r.name,
            "model_version": r.model_version,
            **{dim: r.scores.get(dim, "—") for dim in DIMENSIONS},
            **{k: r.metrics.get(k) for k in ("format_valid_rate", "in_language_rate", "rule_clean_rate")},
        }
        for r in report.results
    )
    if not calibration.calibrated:
        meta["scores"] = MetadataValue.md(
            f"**Judge uncalibrated** (agreement {calibration.agreement:.2f} < {calibration.threshold:.2f}): its "
            "scores are shown, not ranked by.\n\n" + meta["scores"].value
        )
    first, card = scenarios[0], cards[scenarios[0].persona_id]
    samples = [
        transcript_markdown(
            f"{r.name} — {first.id}",
            [(t["role"], t["content"]) for t in transcript_turns(first, card, r.scenarios[0].replies)],
        )
        for r in report.results
    ]
    meta["sample_transcripts"] = MetadataValue.md("\n\n".join(samples))
    return {**meta, **llm_metadata(calls)}


@asset(
    group_name=GROUP,
    kinds={"parquet"},
    owners=["team:ml"],
    code_version="2",
    description="One row per evaluated model version: how it was made (method, steps, data and pairs versions, "
    "corpus size and language mix), every automatic metric with its 95% interval, the pairwise result against "
    "its baseline, the judge's calibration, and whether it differs significantly from its baseline. Ranked by "
    "rule-clean rate; judge scores rank only where the judge was calibrated. History in data/leaderboard.parquet.",
)
def leaderboard(context: AssetExecutionContext, eval_scores: EvalReport, pipeline: PipelineResource) -> list[dict]:
    new = pd.DataFrame(leaderboard_rows(eval_scores, pipeline.load_profile().name))
    path = pipeline.work / "leaderboard.parquet"
    board = pd.concat([pd.read_parquet(path), new]) if path.exists() else new
    board = board.drop_duplicates(subset=["model_version"], keep="last").sort_values("evaluated_at")
    rows = rank(json.loads(board.to_json(orient="records")))
    with atomic_path(path) as tmp:  # the history of every version: never leave it half written
        pd.DataFrame(rows).to_parquet(tmp, index=False)
    context.add_output_metadata(
        {
            "leaderboard": MetadataValue.md(markdown(rows)),
            "judge_calibrated": eval_scores.calibration.calibrated,
            "path": MetadataValue.path(str(path)),
            "model_versions": len(rows),
        }
    )
    return rows
