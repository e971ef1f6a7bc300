"""Evaluation on held-out personas and the leaderboard of model versions.

The tuned (quantized) model and its base play the same scripted scenarios; the judge role
scores both on the four dimensions of the field notes, and the reply rules give the
automatic metrics. Generation runs under Pipes like training (it needs torch)."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, PipesSubprocessClient, asset

from rp_pipeline.core.artifacts import EvalReport, ModelEval, QuantizedModel, ScenarioResult
from rp_pipeline.core.evaluation import (
    DIMENSIONS,
    automatic_metrics,
    judge_all,
    load_scenarios,
    mean_scores,
    play_scenarios,
    transcript_turns,
)
from rp_pipeline.core.ids import content_id
from rp_pipeline.core.personas import load_persona_file, system_prompt
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
    requests, output = out_dir / "requests.jsonl", out_dir / f"{name}_replies.jsonl"
    requests.write_text(
        "".join(
            json.dumps(
                {
                    "id": s.id,
                    "messages": [{"role": "system", "content": system_prompts[s.persona_id]}],
                    "user_turns": s.user_turns,
                },
                ensure_ascii=False,
            )
            + "\n"
            for s in scenarios
        ),
        encoding="utf-8",
    )
    run_script(
        context,
        trainer,
        "generate",
        {
            **{k: v for k, v in model.items() if k != "python"},
            "requests_file": str(requests),
            "output_file": str(output),
            "max_new_tokens": max_tokens,
            "temperature": 0.7,
            "seed": seed,
        },
        out_dir / name,
        python=python,
    )
    return {row["id"]: row["replies"] for row in map(json.loads, output.read_text(encoding="utf-8").splitlines())}


def _play_on_llama_cpp(
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
    code_version="1",
    pool="gpu",
    description="Held-out personas played by the quantized model and by its base: judge scores on "
    "human-likeness, purposefulness, consistency, attractiveness (1-10) and automatic metrics.",
)
def eval_scores(
    context: AssetExecutionContext,
    quantized_model: QuantizedModel,
    pipeline: PipelineResource,
    trainer: PipesSubprocessClient,
    llm: LLMResource,
    lineage: LineageResource,
) -> Output[EvalReport]:
    profile = pipeline.load_profile()
    eval_dir = pipeline.assets / "eval"
    cards = {c.id: c for c in map(load_persona_file, sorted((eval_dir / "personas").glob("*.yaml")))}
    scenarios = load_scenarios(eval_dir / "scenarios.yaml", cards)
    prompts, rules = pipeline.prompts(), pipeline.rules()
    out_dir = pipeline.data / "eval" / quantized_model.version
    out_dir.mkdir(parents=True, exist_ok=True)
    system_prompts = {key: system_prompt(card, prompts) for key, card in cards.items()}
    gguf = quantized_model.format == "gguf"
    base_dir = quantized_model.checkpoint.base_model_dir
    models: dict[Literal["tuned", "base"], tuple[str, Any]]
    if gguf:
        base_gguf = quantized_model.base_gguf or ""
        models = {
            "tuned": (quantized_model.version, quantized_model.path),
            "base": (content_id("base", base_gguf), base_gguf),
        }
    elif quantized_model.format == "gptq":
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
    client = llm.client()
    results: list[ModelEval] = []
    samples, calls = [], []
    for name, (version, model) in models.items():
        if gguf:
            replies, played = _play_on_llama_cpp(
                llm, model, version, scenarios, system_prompts, out_dir, profile.training.eval_max_new_tokens
            )
            calls += played
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
        items = [
            (cards[s.persona_id], transcript_turns(s, cards[s.persona_id], replies[s.id]), f"{version}/{s.id}")
            for s in scenarios
        ]
        scores = client.run(judge_all(client, prompts, items))
        metrics = automatic_metrics(
            [(cards[s.persona_id].language, r) for s in scenarios for r in replies[s.id]], rules
        )
        results.append(
            ModelEval(
                name=name,
                model_version=version,
                scores=mean_scores(scores),
                metrics=metrics,
                scenarios=[
                    ScenarioResult(scenario=s.id, replies=replies[s.id], verdict=verdict)
                    for s, verdict in zip(scenarios, scores, strict=True)
                ],
            )
        )
        first = scenarios[0]
        samples.append(
            transcript_markdown(
                f"{name} — {first.id}",
                [
                    (t["role"], t["content"])
                    for t in transcript_turns(first, cards[first.persona_id], replies[first.id])
                ],
            )
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
    return Output(
        EvalReport(evaluated_at=datetime.now(UTC).isoformat(), model=quantized_model, results=results),
        metadata={
            "scores": md_table(
                {
                    "name": r.name,
                    "model_version": r.model_version,
                    **{dim: r.scores[dim] for dim in DIMENSIONS},
                    **{k: r.metrics.get(k) for k in ("format_valid_rate", "in_language_rate", "rule_clean_rate")},
                }
                for r in results
            ),
            "sample_transcripts": MetadataValue.md("\n\n".join(samples)),
            **llm_metadata(client.calls + calls),
        },
    )


@asset(
    group_name=GROUP,
    kinds={"parquet"},
    owners=["team:ml"],
    code_version="1",
    description="One row per evaluated model version with its config and scores; history is kept "
    "across runs in data/leaderboard.parquet.",
)
def leaderboard(context: AssetExecutionContext, eval_scores: EvalReport, pipeline: PipelineResource) -> list[dict]:
    checkpoint = eval_scores.model.checkpoint
    config = {
        "base_model": checkpoint.base_model_dir,
        "corpus_version": checkpoint.corpus_version,
        "sft_version": checkpoint.sft_version,
        "dpo_version": checkpoint.version,
        "pairs_version": checkpoint.pairs_version,
        "profile": pipeline.load_profile().name,
    }
    new = pd.DataFrame(
        [
            {
                "model_version": r.model_version,
                "kind": r.name,
                "evaluated_at": eval_scores.evaluated_at,
                **r.scores,
                **r.metrics,
                **(config if r.name == "tuned" else {"base_model": checkpoint.base_model_dir}),
            }
            for r in eval_scores.results
        ]
    )
    path = pipeline.data / "leaderboard.parquet"
    board = pd.concat([pd.read_parquet(path), new]) if path.exists() else new
    board = board.drop_duplicates(subset=["model_version"], keep="last").sort_values("evaluated_at")
    board.to_parquet(path, index=False)
    rows = json.loads(board.to_json(orient="records"))
    context.add_output_metadata(
        {
            "leaderboard": md_table(
                {k: r.get(k) for k in ("model_version", "kind", *DIMENSIONS, "rule_clean_rate", "corpus_version")}
                for r in rows
            ),
            "path": MetadataValue.path(str(path)),
            "model_versions": len(rows),
        }
    )
    return rows
