"""SFT, DPO and quantization: configs are written here, the work runs in the standalone
scripts of rp_pipeline/training/ under Dagster Pipes, where the training launcher puts it (a
local subprocess, a Docker container or a Kubernetes pod with GPUs: `defs/launchers.py`)."""

import json
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from rp_pipeline.core.artifacts import Checkpoint, CorpusArtifact, PairsArtifact
from rp_pipeline.core.atomic import write_text_atomic
from rp_pipeline.core.base_models import BaseModelSpec, resolve_base_model
from rp_pipeline.core.corpus import language_distribution
from rp_pipeline.core.ids import content_id
from rp_pipeline.core.launch import deepspeed_config, training_command
from rp_pipeline.core.profile import Profile, TrainingProfile
from rp_pipeline.defs.launchers import TrainingLauncher
from rp_pipeline.defs.resources import LineageResource, PipelineResource

CORPUS_VERSION = "corpus_version"  # sft_checkpoint metadata: the corpus it was trained on (retrain_sensor)
GROUP = "training"
SPARK = "▁▂▃▄▅▆▇█"


def base_model_config(training: TrainingProfile, spec: BaseModelSpec | None = None) -> dict[str, Any]:
    """Where the dense base model lives (a registered model's directory, or the profile's own);
    the embedded GGUF is dequantized into a cache once."""
    if training.base_model != "embedded":
        return {"base_model_dir": spec.path if spec is not None and spec.path else training.base_model}
    from rp_pipeline.llm.embedded import assemble_gguf, default_cache_dir

    return {
        "base_model_dir": str(default_cache_dir() / "qwen2.5-coder-0.5b-instruct-dense"),
        "gguf_file": str(assemble_gguf()),
    }


def sparkline(values: list[float]) -> str:
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(SPARK[int((v - low) / span * (len(SPARK) - 1))] for v in values)


def run_script(
    context: AssetExecutionContext,
    trainer: TrainingLauncher,
    script: str,
    config: dict[str, Any],
    work_dir: Path,
    python: str | None = None,
    training: TrainingProfile | None = None,
) -> dict[str, Any]:
    """Write the config, run the script under Pipes where the launcher runs it (locally with
    ``python``, default this interpreter; on the profile's GPUs and DeepSpeed config when
    `training` is given), return what it reported."""
    config_path = write_text_atomic(work_dir / f"{script}_config.json", json.dumps(config, indent=2))
    devices: dict[str, Any] = {}
    if training is not None:
        devices["gpus"] = training.gpus
        if training.deepspeed is not None:  # beside the config: under the data dir, where a container sees it too
            devices["deepspeed"] = write_text_atomic(
                work_dir / f"deepspeed_{training.deepspeed}.json",
                deepspeed_config(training.deepspeed).read_text(encoding="utf-8"),
            )
    command = training_command(script, config_path, python=trainer.python(python), **devices)
    invocation = trainer.run(context, command)
    metadata = {
        k: v.value if hasattr(v, "value") else v
        for k, v in (invocation.get_materialize_result().metadata or {}).items()
    }
    return metadata


def _shared_settings(profile: Profile, spec: BaseModelSpec) -> dict[str, Any]:
    """What SFT and DPO are both configured with (the LoRA shape and targets, length, batch, seed)."""
    training = profile.training
    return {
        "lora_target_modules": spec.lora_target_modules,
        "lora_r": training.lora_r,
        "lora_alpha": training.lora_alpha,
        "max_length": training.max_length,
        "per_device_train_batch_size": training.batch_size,
        "seed": profile.seed,
        "save_steps": training.checkpoint_every,
    }


def sft_job_config(
    profile: Profile, spec: BaseModelSpec, base: dict[str, Any], train_file: str, output_dir: Path
) -> dict[str, Any]:
    """The SFT script's config as the profile trains it (the asset and benchmarks/learning.py)."""
    training = profile.training
    return {
        **base,
        "train_file": train_file,
        "output_dir": str(output_dir),
        "max_steps": training.sft_steps,
        "learning_rate": training.sft_learning_rate if training.method == "lora" else training.sft_full_learning_rate,
        "method": training.method,
        "assistant_only_loss": training.assistant_only_loss,
        "warmup_ratio": training.warmup_ratio,
        "eval_rows": training.sft_eval_rows,
        **_shared_settings(profile, spec),
    }


def dpo_job_config(
    profile: Profile, spec: BaseModelSpec, sft: Checkpoint, pairs_file: str, output_dir: Path
) -> dict[str, Any]:
    """The DPO script's config: a new LoRA on `sft` merged (the asset and benchmarks/learning.py)."""
    training = profile.training
    return {
        "base_model_dir": sft.dense_dir,
        "sft_adapters": sft.adapters,
        "pairs_file": pairs_file,
        "output_dir": str(output_dir),
        "max_steps": training.dpo_steps,
        "beta": training.dpo_beta,
        "learning_rate": training.dpo_learning_rate,
        **_shared_settings(profile, spec),
    }


def training_metadata(reported: dict[str, Any]) -> dict[str, Any]:
    history = [loss for _, loss in reported.get("loss_history") or []]
    meta = {k: v for k, v in reported.items() if isinstance(v, int | float | str) and not isinstance(v, bool)}
    if history:
        meta["loss_curve"] = MetadataValue.md(
            f"`{sparkline(history)}`  first {history[0]:.4f} → last {history[-1]:.4f} over {len(history)} logged steps"
        )
    return meta


@asset(
    group_name=GROUP,
    kinds={"pytorch", "huggingface"},
    owners=["team:ml"],
    code_version="2",
    pool="gpu",
    description="SFT (TRL SFTTrainer) of the base model on the training corpus, a PEFT LoRA adapter or "
    "every parameter (profile `training.method`), loss on the character's replies only, run in a separate "
    "process through Dagster Pipes; saved as safetensors, with the loss on a held-out corpus slice.",
)
def sft_checkpoint(
    context: AssetExecutionContext,
    training_corpus: CorpusArtifact,
    pipeline: PipelineResource,
    trainer: TrainingLauncher,
    lineage: LineageResource,
) -> Output[Checkpoint]:
    profile = pipeline.load_profile()
    training = profile.training
    spec = resolve_base_model(training.base_model, pipeline.base_models(), training.max_length)
    base = base_model_config(training, spec)
    version = content_id(
        "sft",
        {
            "corpus": training_corpus.version,
            "training": training.trained_fields(),
            "lora_targets": spec.lora_target_modules,
            **base,
        },
    )
    out = pipeline.work / "models" / version
    weights = out / ("adapter" if training.method == "lora" else "model")
    reported = run_script(
        context,
        trainer,
        "sft",
        sft_job_config(profile, spec, base, training_corpus.for_scripts(pipeline.work).messages, weights),
        out,
        training=training,
    )
    lineage.record(
        context,
        rows=[(version, [training_corpus.version], {"model_version": version, "path": str(weights)})],
    )
    return Output(
        Checkpoint(
            version=version,
            stage="sft",
            method=training.method,
            base_model_dir=base["base_model_dir"],
            model_dir=str(weights) if training.method == "full" else None,
            adapters=[str(weights)] if training.method == "lora" else [],
            corpus_version=training_corpus.version,
            corpus_rows=training_corpus.rows,
            corpus_languages=dict(
                language_distribution([r for r in training_corpus.load_rows() if r.source == "roleplay"])
            ),
            steps={"sft": int(reported.get("steps", training.sft_steps))},
        ),
        metadata={
            "model_version": version,
            CORPUS_VERSION: training_corpus.version,
            "path": MetadataValue.path(str(out)),
            **training_metadata(reported),
        },
    )


@asset(
    group_name=GROUP,
    kinds={"pytorch", "huggingface"},
    owners=["team:ml"],
    code_version="1",
    pool="gpu",
    description="DPO (TRL DPOTrainer) on the preference pairs, a new LoRA on top of the merged SFT model.",
)
def dpo_checkpoint(
    context: AssetExecutionContext,
    sft_checkpoint: Checkpoint,
    preference_pairs: PairsArtifact,
    pipeline: PipelineResource,
    trainer: TrainingLauncher,
    lineage: LineageResource,
) -> Output[Checkpoint]:
    profile = pipeline.load_profile()
    training = profile.training
    spec = resolve_base_model(training.base_model, pipeline.base_models(), training.max_length)
    version = content_id(
        "dpo",
        {
            "sft": sft_checkpoint.version,
            "pairs": preference_pairs.version,
            "training": training.trained_fields(),
            "lora_targets": spec.lora_target_modules,
        },
    )
    out = pipeline.work / "models" / version
    reported = run_script(
        context,
        trainer,
        "dpo",
        dpo_job_config(profile, spec, sft_checkpoint, preference_pairs.file, out / "adapter"),
        out,
        training=training,
    )
    lineage.record(
        context,
        rows=[
            (
                version,
                [sft_checkpoint.version, preference_pairs.version],
                {"model_version": version, "path": str(out / "adapter")},
            )
        ],
    )
    return Output(
        Checkpoint(
            version=version,
            stage="dpo",
            method=sft_checkpoint.method,
            base_model_dir=sft_checkpoint.base_model_dir,
            model_dir=sft_checkpoint.model_dir,
            adapters=[*sft_checkpoint.adapters, str(out / "adapter")],
            corpus_version=sft_checkpoint.corpus_version,
            corpus_rows=sft_checkpoint.corpus_rows,
            corpus_languages=sft_checkpoint.corpus_languages,
            steps={**sft_checkpoint.steps, "dpo": int(reported.get("steps", training.dpo_steps))},
            sft_version=sft_checkpoint.version,
            pairs_version=preference_pairs.version,
        ),
        metadata={"model_version": version, "path": MetadataValue.path(str(out)), **training_metadata(reported)},
    )
