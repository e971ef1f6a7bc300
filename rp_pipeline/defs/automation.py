"""Jobs over the asset graph and what runs them without a person: new persona cards become
partitions and runs (and removed ones are reported, never deleted), the corpus is rebuilt when
persona partitions changed (its automation condition, evaluated by `corpus_automation`), the
model is retrained when the corpus changed enough (at once) or at all (weekly), and evaluation
runs again when the judge's configuration changed."""

import json

from dagster import (
    AssetKey,
    AssetObservation,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MetadataValue,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)

from rp_pipeline.core.artifacts import corpus_row_ids
from rp_pipeline.core.corpus import corpus_change
from rp_pipeline.core.personas import authored_persona_ids
from rp_pipeline.defs.evaluation import JUDGE_FINGERPRINT, current_judge_fingerprint
from rp_pipeline.defs.personas import SYNTHESIZED_IDS, new_persona_keys, personas_partitions
from rp_pipeline.defs.resources import LineageResource, LLMResource, PipelineResource
from rp_pipeline.defs.training import CORPUS_VERSION
from rp_pipeline.lineage.store import CHECKPOINT_ASSETS

prepare_job = define_asset_job(
    "prepare_job",
    selection=AssetSelection.assets("seed_variables", "seed_samples", "topic_keywords", "synthesized_personas"),
    description="Seed tables -> samples -> topic keywords -> synthesized persona cards.",
)
persona_job = define_asset_job(
    "persona_job",
    selection=AssetSelection.assets("persona_cards", "dialogues", "cleaned_dialogues"),
    partitions_def=personas_partitions,
    description="One persona partition: card -> simulated dialogues -> cleaned dialogues (with checks).",
)
train_job = define_asset_job(
    "train_job",
    selection=AssetSelection.assets(
        "training_corpus",
        "preference_pairs",
        "sft_checkpoint",
        "dpo_checkpoint",
        "quantized_model",
        "eval_scores",
        "leaderboard",
    ),
    description="Corpus -> SFT -> on-policy preference pairs -> DPO -> int8 model -> evaluation -> leaderboard "
    "(with the corpus gate).",
)
model_job = define_asset_job(
    "model_job",
    selection=AssetSelection.assets(
        "preference_pairs", "sft_checkpoint", "dpo_checkpoint", "quantized_model", "eval_scores", "leaderboard"
    ),
    description="The model from the current corpus: pairs -> SFT -> DPO -> int8 -> evaluation -> leaderboard "
    "(what the retrain sensor and the weekly schedule launch).",
)
eval_job = define_asset_job(
    "eval_job",
    selection=AssetSelection.assets("eval_scores", "leaderboard"),
    description="Evaluate the current quantized model again (launched when the judge configuration changed).",
)
JOBS = [prepare_job, persona_job, train_job, model_job, eval_job]


@sensor(
    job=persona_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Adds a personas partition for every new assets/personas/*.yaml card and every newly "
    "synthesized card, and requests persona_job for just those partitions.",
)
def new_personas_sensor(context: SensorEvaluationContext, pipeline: PipelineResource) -> SensorResult:
    new = new_persona_keys(context.instance, pipeline.assets / "personas", synthesized_ids(context.instance))
    if not new:
        return SensorResult(skip_reason="no new persona cards")
    return SensorResult(
        dynamic_partitions_requests=[personas_partitions.build_add_request(new)],
        run_requests=[RunRequest(partition_key=key, run_key=f"persona-{key}") for key in new],
    )


def synthesized_ids(instance: DagsterInstance) -> list[str]:
    """The cards of the latest synthesized_personas materialization."""
    event = instance.get_latest_materialization_event(AssetKey("synthesized_personas"))
    materialization = event.asset_materialization if event else None
    ids = materialization.metadata.get(SYNTHESIZED_IDS) if materialization else None
    return list(ids.value) if ids else []  # type: ignore[arg-type]


@sensor(
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    description="Reports persona partitions whose card is gone (its assets/personas/*.yaml deleted, or no longer "
    "synthesized) with their lineage impact: the corpus versions and checkpoints built from the card. The "
    "partition and its data stay until an operator removes them (`dagster asset wipe` / the UI).",
)
def removed_personas_sensor(
    context: SensorEvaluationContext, pipeline: PipelineResource, lineage: LineageResource
) -> SensorResult:
    known = context.instance.get_dynamic_partitions(personas_partitions.name)
    present = set(authored_persona_ids(pipeline.assets / "personas")) | set(synthesized_ids(context.instance))
    reported = set(json.loads(context.cursor or "[]"))
    removed = sorted(set(known) - present)
    new = [key for key in removed if key not in reported]
    if not new:
        return SensorResult(skip_reason="no persona card removed", cursor=json.dumps(removed))
    store = lineage.store()
    observations = []
    for key in new:
        impact = persona_impact(store, key)
        context.log.warning(
            f"persona card {key!r} was removed; its partition is kept. Built from it: "
            f"{len(impact['corpus_versions'])} corpus version(s), {len(impact['checkpoints'])} checkpoint(s)"
        )
        observations.append(
            AssetObservation(
                asset_key="persona_cards",
                partition=key,
                metadata={
                    "card_removed": True,
                    "corpus_versions": MetadataValue.json(impact["corpus_versions"]),
                    "checkpoints": MetadataValue.json(impact["checkpoints"]),
                },
            )
        )
    return SensorResult(asset_events=observations, cursor=json.dumps(removed))


def persona_impact(store, persona: str) -> dict[str, list[str]]:
    """The corpus versions and checkpoints that contain a persona's card (empty when lineage has
    no card for it yet)."""
    try:
        rows = store.checkpoints_for_persona(persona, ("training_corpus", *CHECKPOINT_ASSETS))
    except KeyError:
        return {"corpus_versions": [], "checkpoints": []}
    versions = sorted({r["row_id"] for r in rows if r["asset"] == "training_corpus" and "path" in (r["attrs"] or {})})
    checkpoints = sorted({f"{r['asset']}:{r['row_id']}" for r in rows if r["asset"] != "training_corpus"})
    return {"corpus_versions": versions, "checkpoints": checkpoints}


def _latest_metadata(instance: DagsterInstance, asset: str) -> dict | None:
    event = instance.get_latest_materialization_event(AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def corpus_news(instance: DagsterInstance, pipeline: PipelineResource) -> tuple[str, float] | str:
    """(current corpus version, its change since the latest SFT checkpoint's corpus), or why there
    is nothing to train."""
    corpus = _latest_metadata(instance, "training_corpus")
    if corpus is None:
        return "no corpus yet"
    current = str(corpus[CORPUS_VERSION])
    trained = _latest_metadata(instance, "sft_checkpoint")
    if trained is None or CORPUS_VERSION not in trained:
        return current, 1.0  # never trained (or before checkpoints recorded their corpus): all of it is new
    if trained[CORPUS_VERSION] == current:
        return f"the latest checkpoint was trained on the current corpus {current}"
    old, new = (corpus_row_ids(pipeline.data / "corpus" / str(v)) for v in (trained[CORPUS_VERSION], current))
    return current, corpus_change(old, new)


@sensor(
    job=model_job,
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    description="Trains and evaluates when the corpus changed by at least the profile's "
    "training.retrain_min_change since the corpus of the latest SFT checkpoint (one run per corpus version).",
)
def retrain_sensor(context: SensorEvaluationContext, pipeline: PipelineResource) -> SensorResult:
    news = corpus_news(context.instance, pipeline)
    if isinstance(news, str):
        return SensorResult(skip_reason=news)
    version, change = news
    threshold = pipeline.load_profile().training.retrain_min_change
    if change < threshold:
        return SensorResult(
            skip_reason=f"corpus {version} changed {change:.1%} since the last training (< {threshold:.0%}); "
            "the weekly schedule trains on it"
        )
    return SensorResult(run_requests=[RunRequest(run_key=f"retrain-{version}", tags={"corpus_version": version})])


@schedule(
    job=model_job,
    cron_schedule="0 4 * * 1",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Mondays 04:00 UTC: trains and evaluates when the corpus changed at all since the last training.",
)
def weekly_retrain_schedule(context: ScheduleEvaluationContext, pipeline: PipelineResource):
    news = corpus_news(context.instance, pipeline)
    if isinstance(news, str):
        return SkipReason(news)
    version, _ = news
    return RunRequest(run_key=f"weekly-{version}", tags={"corpus_version": version})


@sensor(
    job=eval_job,
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    description="Evaluates again when the judge configuration (its model map entry, prompt templates, calibration "
    "set or the profile's evaluation settings) differs from the one the latest eval scores were made with.",
)
def judge_config_sensor(context: SensorEvaluationContext, pipeline: PipelineResource, llm: LLMResource) -> SensorResult:
    scored = _latest_metadata(context.instance, "eval_scores")
    if scored is None:
        return SensorResult(skip_reason="no eval scores yet")
    current = current_judge_fingerprint(pipeline, llm)
    if scored.get(JUDGE_FINGERPRINT) == current:
        return SensorResult(skip_reason="the judge configuration is the one the latest scores were made with")
    return SensorResult(run_requests=[RunRequest(run_key=f"judge-{current}", tags={"judge_fingerprint": current})])


corpus_automation = AutomationConditionSensorDefinition(
    "corpus_automation",
    target=AssetSelection.assets("training_corpus"),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Evaluates training_corpus's automation condition: rebuild once persona partitions changed and "
    "none is running.",
)
SENSORS = [new_personas_sensor, removed_personas_sensor, retrain_sensor, judge_config_sensor, corpus_automation]
SCHEDULES = [weekly_retrain_schedule]
