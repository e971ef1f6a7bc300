"""Sampling replies from a trained checkpoint, for on-policy preference pairs: the model DPO
will update is the one whose mistakes become the rejected side (as the seeds did).

On the embedded base the merged checkpoint is exported to a Q8_0 GGUF by the quantize script
(under Pipes, like training) and served by llama.cpp, reached through litellm like any
provider: several times faster on CPU than transformers generation. Any other base samples in
generate.py under Pipes (dense weights plus adapters)."""

import json
from pathlib import Path

from dagster import AssetExecutionContext

from rp_pipeline.core.artifacts import Checkpoint, CorpusArtifact
from rp_pipeline.core.atomic import write_text_atomic
from rp_pipeline.core.preferences import SampleRequest, sample_replies
from rp_pipeline.core.profile import Profile
from rp_pipeline.defs.launchers import TrainingLauncher
from rp_pipeline.defs.quantize import quantize_job
from rp_pipeline.defs.resources import LLMResource
from rp_pipeline.defs.training import base_model_config, run_script
from rp_pipeline.llm.client import CallRecord


def sample_checkpoint(
    context: AssetExecutionContext,
    trainer: TrainingLauncher,
    llm: LLMResource,
    profile: Profile,
    checkpoint: Checkpoint,
    corpus: CorpusArtifact,
    requests: list[SampleRequest],
    work_dir: Path,
) -> tuple[dict[str, str], list[CallRecord]]:
    """{request id: reply} from `checkpoint`, and the LLM calls made (llama.cpp path)."""
    if not requests:
        return {}, []
    max_tokens = llm.config().roles["character"].max_tokens
    template = base_model_config(profile.training).get("gguf_file")
    if template is not None:
        return _sample_on_llama_cpp(
            context, trainer, llm, profile, checkpoint, corpus, requests, work_dir, template, max_tokens
        )
    return _sample_in_process(context, trainer, profile, checkpoint, requests, work_dir, max_tokens), []


def _sample_on_llama_cpp(
    context, trainer, llm, profile, checkpoint, corpus, requests, work_dir: Path, template: str, max_tokens: int
) -> tuple[dict[str, str], list[CallRecord]]:
    from rp_pipeline.llm.embedded import serve_embedded

    gguf_dir = work_dir / "policy"
    if not (gguf_dir / "model.gguf").is_file():
        training = profile.training.model_copy(update={"quantization": "gguf_q8_0"})
        script, config, python = quantize_job(training, profile.seed, checkpoint, corpus.messages, gguf_dir, template)
        run_script(context, trainer, script, config, work_dir, python=python)
    model_id = f"policy-{checkpoint.version}"
    context.log.info(f"sampling {len(requests)} replies from {checkpoint.version} on llama.cpp")
    with serve_embedded(gguf_dir / "model.gguf", alias=model_id, log_path=work_dir / "policy_server.log") as base:
        client = llm.served_client(base, model_id, max_tokens)
        return client.run(sample_replies(client, requests)), client.calls


def _sample_in_process(context, trainer, profile, checkpoint, requests, work_dir: Path, max_tokens: int) -> dict:
    output = work_dir / "samples.jsonl"
    rows = [{"id": r.id, "messages": r.messages} for r in requests]
    requests_file = write_text_atomic(
        work_dir / "sample_requests.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    )
    context.log.info(f"sampling {len(requests)} replies from {checkpoint.version} with transformers")
    run_script(
        context,
        trainer,
        "generate",
        {
            "model_dir": checkpoint.dense_dir,
            "kind": "dense",
            "adapters": checkpoint.adapters,
            "requests_file": str(requests_file),
            "output_file": str(output),
            "max_new_tokens": max_tokens,
            "temperature": 0.7,
            "seed": profile.seed,
        },
        work_dir,
    )
    return {row["id"]: row["replies"][0] for row in map(json.loads, output.read_text(encoding="utf-8").splitlines())}
