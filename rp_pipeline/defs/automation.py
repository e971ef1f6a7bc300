"""Jobs over the asset graph. Sensors and schedules (persona backfills) join them here."""

from dagster import AssetSelection, define_asset_job

from rp_pipeline.defs.personas import personas_partitions

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
    selection=AssetSelection.assets("training_corpus", "preference_pairs", "sft_checkpoint", "dpo_checkpoint",
                                    "quantized_model", "eval_scores", "leaderboard"),
    description="Corpus -> SFT -> DPO -> int8 model -> evaluation -> leaderboard (with the corpus gate).",
)
JOBS = [prepare_job, persona_job, train_job]
