"""What quantized_model launches for each profile setting: the script, its config (accepted by
that script's own config model) and the interpreter; and the artifact it hands on."""

from __future__ import annotations

import sys

import pytest
from pydantic import ValidationError

from rp_pipeline.core.artifacts import Checkpoint, CorpusArtifact
from rp_pipeline.core.profile import TrainingProfile
from rp_pipeline.defs.quantize import GPTQ_PYTHON_ENV, quantize_job, quantized_artifact
from rp_pipeline.training.gptq import GROUP_SIZES, GptqJob
from rp_pipeline.training.quantize import QuantizeJob


@pytest.fixture
def inputs(tmp_path):
    for d in ("base", "sft", "dpo"):
        (tmp_path / d).mkdir()
    messages = tmp_path / "corpus" / "messages.jsonl"
    messages.parent.mkdir()
    messages.write_text('{"id": "r", "messages": []}\n', encoding="utf-8")
    checkpoint = Checkpoint(
        version="dpo-1",
        stage="dpo",
        base_model_dir=str(tmp_path / "base"),
        adapters=[str(tmp_path / "sft"), str(tmp_path / "dpo")],
        corpus_version="corpus-1",
    )
    corpus = CorpusArtifact(
        version="corpus-1",
        dir=str(messages.parent),
        rows=1,
        sharegpt="s.json",
        messages=str(messages),
        dataset_info="d.json",
        hf_dataset="hf",
        parquet="p.parquet",
    )
    return checkpoint, corpus, tmp_path / "out" / "model"


def test_gptq_int4_runs_the_gptq_script_with_its_python(inputs, monkeypatch):
    checkpoint, corpus, out = inputs
    monkeypatch.setenv(GPTQ_PYTHON_ENV, "/opt/gptq-env/bin/python")
    training = TrainingProfile(
        base_model="/models/x", quantization="gptq_int4", calibration_rows=128, heldout_rows=24, gptq_group_size=64
    )
    script, config, python = quantize_job(training, 7, checkpoint, corpus.messages, out, None)
    assert (script, python) == ("gptq", "/opt/gptq-env/bin/python")
    assert config == {
        "base_model_dir": checkpoint.base_model_dir,
        "adapters": checkpoint.adapters,
        "output_dir": str(out),
        "corpus_file": corpus.messages,
        "heldout_rows": 24,
        "calibration_rows": 128,
        "max_length": 512,
        "seed": 7,
        "scheme": "int4",
        "group_size": 64,
    }
    job = GptqJob.model_validate(config)  # the script accepts exactly what the asset writes
    assert (job.scheme, job.group_size, job.calibration_rows) == ("int4", 64, 128)


def test_gptq_int8_without_the_variable_uses_this_interpreter(inputs, monkeypatch):
    checkpoint, corpus, out = inputs
    monkeypatch.delenv(GPTQ_PYTHON_ENV, raising=False)
    script, config, python = quantize_job(
        TrainingProfile(quantization="gptq_int8"), 0, checkpoint, corpus.messages, out, None
    )
    assert (script, python, config["scheme"], config["group_size"]) == ("gptq", sys.executable, "int8", 128)
    GptqJob.model_validate(config)


@pytest.mark.parametrize("method", ["int8_weight_only", "gguf_q8_0"])
def test_cpu_methods_run_quantize_with_the_same_heldout_slice(method, inputs, tmp_path):
    checkpoint, corpus, out = inputs
    template = tmp_path / "base.gguf"
    template.write_bytes(b"GGUF")
    training = TrainingProfile(quantization=method, heldout_rows=8, quantization_max_length=256)
    script, config, python = quantize_job(training, 3, checkpoint, corpus.messages, out, str(template))
    assert (script, python, config["method"]) == ("quantize", sys.executable, method)
    assert (config["corpus_file"], config["heldout_rows"], config["max_length"]) == (corpus.messages, 8, 256)
    assert ("template_gguf" in config) == (method == "gguf_q8_0")
    QuantizeJob.model_validate(config)


def test_gguf_without_a_template_is_refused(inputs):
    checkpoint, corpus, out = inputs
    with pytest.raises(ValueError, match="template"):
        quantize_job(TrainingProfile(quantization="gguf_q8_0"), 0, checkpoint, corpus.messages, out, None)


def test_artifact_format_follows_the_method(inputs):
    checkpoint, _, out = inputs
    gptq = quantized_artifact(TrainingProfile(quantization="gptq_int4"), "v", out, None, checkpoint)
    assert (gptq.format, gptq.path, gptq.base_gguf) == ("gptq", str(out), None)
    quanto = quantized_artifact(TrainingProfile(), "v", out, None, checkpoint)
    assert (quanto.format, quanto.path) == ("quanto", str(out))
    gguf = quantized_artifact(TrainingProfile(quantization="gguf_q8_0"), "v", out, "/b.gguf", checkpoint)
    assert (gguf.format, gguf.path, gguf.base_gguf) == ("gguf", str(out / "model.gguf"), "/b.gguf")


def test_profile_rejects_what_the_script_would_reject():
    with pytest.raises(ValidationError, match="gptq_group_size"):
        TrainingProfile(quantization="gptq_int4", gptq_group_size=256)
    with pytest.raises(ValidationError, match="quantization"):
        TrainingProfile(quantization="gptq_int3")
    with pytest.raises(ValidationError, match="calibration_rows"):
        TrainingProfile(calibration_rows=0)
    # the profile's choices are exactly the script's
    assert TrainingProfile.model_fields["gptq_group_size"].annotation.__args__ == GROUP_SIZES


def test_quantization_knobs_do_not_change_the_trained_checkpoints():
    plain = TrainingProfile()
    gptq = TrainingProfile(quantization="gptq_int4", calibration_rows=256, heldout_rows=4, gptq_group_size=32)
    assert plain.trained_fields() == gptq.trained_fields()
    assert TrainingProfile(sft_steps=3).trained_fields() != plain.trained_fields()
