"""The DPO model merged and int8-quantized (GGUF Q8_0 for llama.cpp, or optimum-quanto), run
by rp_pipeline/training/quantize.py under Pipes like training."""

from dagster import AssetExecutionContext, MetadataValue, Output, PipesSubprocessClient, asset

from rp_pipeline.core.artifacts import Checkpoint, QuantizedModel
from rp_pipeline.core.ids import content_id
from rp_pipeline.defs.resources import LineageResource, PipelineResource
from rp_pipeline.defs.training import base_model_config, run_script, training_metadata

GROUP = "training"


@asset(
    group_name=GROUP,
    kinds={"pytorch"},
    owners=["team:ml"],
    code_version="1",
    pool="gpu",
    description="The DPO model with both adapters merged and int8-quantized: a llama.cpp GGUF (Q8_0) or "
    "optimum-quanto safetensors, checked against fp32 on a sample text (top-1 agreement, logit "
    "error, size).",
)
def quantized_model(
    context: AssetExecutionContext,
    dpo_checkpoint: Checkpoint,
    pipeline: PipelineResource,
    trainer: PipesSubprocessClient,
    lineage: LineageResource,
) -> Output[QuantizedModel]:
    training = pipeline.load_profile().training
    version = content_id("int8", {"dpo": dpo_checkpoint.version, "method": training.quantization})
    out = pipeline.data / "models" / version
    template = base_model_config(training).get("gguf_file")
    reported = run_script(
        context,
        trainer,
        "quantize",
        {
            "base_model_dir": dpo_checkpoint.base_model_dir,
            "adapters": dpo_checkpoint.adapters,
            "output_dir": str(out / "model"),
            "method": training.quantization,
            **({"template_gguf": template} if training.quantization == "gguf_q8_0" else {}),
        },
        out,
    )
    gguf = training.quantization == "gguf_q8_0"
    model = QuantizedModel(
        version=version,
        format="gguf" if gguf else "quanto",
        path=str(out / "model" / "model.gguf") if gguf else str(out / "model"),
        base_gguf=template if gguf else None,
        checkpoint=dpo_checkpoint,
    )
    lineage.record(
        context, rows=[(version, [dpo_checkpoint.version], {"model_version": version, "path": str(out / "model")})]
    )
    return Output(
        model,
        metadata={"model_version": version, "path": MetadataValue.path(str(out)), **training_metadata(reported)},
    )
