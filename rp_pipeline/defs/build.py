"""The Definitions object, built from settings (RP_* environment) so tests and `rp demo`
can build it for their own data directory and profile."""

from dagster import Definitions

from rp_pipeline.defs import (
    checks,
    cleaning,
    corpus,
    dialogues,
    evaluation,
    personas,
    preferences,
    quantize,
    seeds,
    topics,
    training,
)
from rp_pipeline.defs.automation import JOBS, SCHEDULES, SENSORS
from rp_pipeline.defs.io import JsonIOManagerFactory
from rp_pipeline.defs.launchers import load_launcher
from rp_pipeline.defs.resources import LineageResource, LLMResource, PipelineResource
from rp_pipeline.settings import Settings

ASSETS = [
    seeds.seed_variables,
    seeds.seed_samples,
    topics.topic_keywords,
    personas.synthesized_personas,
    personas.persona_cards,
    dialogues.dialogues,
    cleaning.cleaned_dialogues,
    corpus.training_corpus,
    preferences.preference_pairs,
    training.sft_checkpoint,
    training.dpo_checkpoint,
    quantize.quantized_model,
    evaluation.eval_scores,
    evaluation.leaderboard,
]


def resources(settings: Settings) -> dict[str, object]:
    data, local = settings.data_dir, settings.local_dir  # data may be object storage; local may not
    return {
        "io_manager": JsonIOManagerFactory(base_dir=str(data / "assets")),
        "pipeline": PipelineResource(
            assets_dir=str(settings.assets_dir), data_dir=str(data), work_dir=str(local), profile=settings.profile
        ),
        "llm": LLMResource(config_path=str(settings.llm_config_path), cache_path=str(local / "llm_cache.sqlite")),
        "lineage": LineageResource(root=str(data / "lineage")),
        "trainer": load_launcher(settings.launcher_config, local),
    }


def build_definitions(settings: Settings) -> Definitions:
    return Definitions(
        assets=ASSETS,
        asset_checks=[checks.cleaned_dialogues_quality, checks.training_corpus_quality],
        jobs=JOBS,
        sensors=SENSORS,
        schedules=SCHEDULES,
        resources=resources(settings),
    )
