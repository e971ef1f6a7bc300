"""The DPO model merged and quantized, run under Pipes like training: int8 by
rp_pipeline/training/quantize.py (GGUF Q8_0 for llama.cpp, or optimum-quanto) on CPU, or GPTQ
W8A16/W4A16 by rp_pipeline/training/gptq.py (llm-compressor; a checkpoint vLLM serves) on GPU.
Every method is checked against the unquantized model on held-out corpus rows."""

import os
import sys
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from rp_pipeline.core.artifacts import Checkpoint, CorpusArtifact, QuantizedModel
from rp_pipeline.core.ids import content_id
from rp_pipeline.core.profile import QUANTIZATION_FIELDS, TrainingProfile
from rp_pipeline.defs.launchers import TrainingLauncher
from rp_pipeline.defs.resources import LineageResource, PipelineResource
from rp_pipeline.defs.training import base_model_config, run_script, training_metadata

GROUP = "training"
# llm-compressor pins an older transformers than the training stack: the gptq extra lives in
# its own environment, and this variable names that environment's python.
GPTQ_PYTHON_ENV = "RP_GPTQ_PYTHON"


def gptq_python() -> str:
    """The interpreter that runs gptq.py (and generates from its checkpoints)."""
    return os.environ.get(GPTQ_PYTHON_ENV) or sys.executable


def quantize_job(
    training: TrainingProfile,
    seed: int,
    checkpoint: Checkpoint,
    corpus_file: str,
    model_dir: Path,
    template_gguf: str | None,
) -> tuple[str, dict[str, Any], str]:
    """(script, config, python) that quantize ``checkpoint`` as the profile says, checked (and
    GPTQ calibrated) on rows of the corpus in ``corpus_file`` (its messages JSONL)."""
    common = {
        "base_model_dir": checkpoint.dense_dir,
        "adapters": checkpoint.adapters,
        "output_dir": str(model_dir),
        "corpus_file": corpus_file,
        "heldout_rows": training.heldout_rows,
        "calibration_rows": training.calibration_rows,
        "max_length": training.quantization_max_length,
        "seed": seed,
    }
    method = training.quantization
    if method in ("gptq_int8", "gptq_int4"):
        scheme = method.removeprefix("gptq_")
        return "gptq", {**common, "scheme": scheme, "group_size": training.gptq_group_size}, gptq_python()
    if method == "gguf_q8_0":
        if template_gguf is None:
            raise ValueError("quantization gguf_q8_0 needs the embedded base's GGUF as template")
        return "quantize", {**common, "method": method, "template_gguf": template_gguf}, sys.executable
    return "quantize", {**common, "method": method}, sys.executable


def quantized_artifact(
    training: TrainingProfile, version: str, model_dir: Path, template_gguf: str | None, checkpoint: Checkpoint
) -> QuantizedModel:
    if training.quantization == "gguf_q8_0":
        return QuantizedModel(
            version=version,
            format="gguf",
            path=str(model_dir / "model.gguf"),
            base_gguf=template_gguf,
            checkpoint=checkpoint,
        )
    fmt = "gptq" if training.quantization.startswith("gptq_") else "quanto"
    return QuantizedModel(version=version, format=fmt, path=str(model_dir), checkpoint=checkpoint)


@asset(
    group_name=GROUP,
    kinds={"pytorch"},
    owners=["team:ml"],
    code_version="2",
    pool="gpu",
    description="The DPO model with both adapters merged and quantized: a llama.cpp GGUF (Q8_0), "
    "optimum-quanto int8 safetensors, or a GPTQ W8A16/W4A16 compressed-tensors checkpoint for vLLM "
    "(calibrated on corpus rows), each checked against the unquantized model on held-out corpus rows "
    "(top-1 next-token agreement, perplexity ratio, size).",
)
def quantized_model(
    context: AssetExecutionContext,
    dpo_checkpoint: Checkpoint,
    training_corpus: CorpusArtifact,
    pipeline: PipelineResource,
    trainer: TrainingLauncher,
    lineage: LineageResource,
) -> Output[QuantizedModel]:
    profile = pipeline.load_profile()
    training = profile.training
    gptq = training.quantization.startswith("gptq_")
    knobs = training.model_dump(include=set(QUANTIZATION_FIELDS))
    version = content_id(
        "gptq" if gptq else "int8",
        {"dpo": dpo_checkpoint.version, "corpus": training_corpus.version, "seed": profile.seed, **knobs},
    )
    out = pipeline.work / "models" / version
    model_dir = out / "model"
    template = base_model_config(training).get("gguf_file") if training.quantization == "gguf_q8_0" else None
    corpus = training_corpus.for_scripts(pipeline.work)
    script, config, python = quantize_job(training, profile.seed, dpo_checkpoint, corpus.messages, model_dir, template)
    reported = run_script(context, trainer, script, config, out, python=python)
    model = quantized_artifact(training, version, model_dir, template, dpo_checkpoint)
    lineage.record(
        context,
        rows=[
            (
                version,
                [dpo_checkpoint.version, training_corpus.version],
                {"model_version": version, "path": str(model_dir)},
            )
        ],
    )
    return Output(
        model,
        metadata={"model_version": version, "path": MetadataValue.path(str(out)), **training_metadata(reported)},
    )
