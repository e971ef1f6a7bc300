"""Jobs over the asset graph, and the sensor that backfills new personas."""

from dagster import (
    AssetKey,
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    define_asset_job,
    sensor,
)

from rp_pipeline.defs.personas import SYNTHESIZED_IDS, new_persona_keys, personas_partitions
from rp_pipeline.defs.resources import PipelineResource

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
JOBS = [prepare_job, persona_job, train_job]


@sensor(
    job=persona_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Adds a personas partition for every new assets/personas/*.yaml card and every newly "
    "synthesized card, and requests persona_job for just those partitions.",
)
def new_personas_sensor(context: SensorEvaluationContext, pipeline: PipelineResource) -> SensorResult:
    event = context.instance.get_latest_materialization_event(AssetKey("synthesized_personas"))
    materialization = event.asset_materialization if event else None
    ids = materialization.metadata.get(SYNTHESIZED_IDS) if materialization else None
    new = new_persona_keys(context.instance, pipeline.assets / "personas", list(ids.value) if ids else [])
    if not new:
        return SensorResult(skip_reason="no new persona cards")
    return SensorResult(
        dynamic_partitions_requests=[personas_partitions.build_add_request(new)],
        run_requests=[RunRequest(partition_key=key, run_key=f"persona-{key}") for key in new],
    )


SENSORS = [new_personas_sensor]
