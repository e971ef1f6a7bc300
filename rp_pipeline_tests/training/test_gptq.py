"""The GPTQ script: its config, the recipe it hands llm-compressor, and (where the gptq
environment exists) a real run on the tiny model. llm-compressor is not part of the test
environment: it pins an older transformers, so it lives in the environment RP_GPTQ_PYTHON names."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rp_pipeline.training.common import load_model_and_tokenizer
from rp_pipeline.training.gptq import GptqJob, check_group_size, gptq_recipe, oneshot_arguments
from rp_pipeline_tests.training.conftest import offline_env, run_training_script


def _job(model_dir, corpus, tmp_path, **overrides) -> dict:
    return {
        "base_model_dir": str(model_dir),
        "corpus_file": str(corpus),
        "output_dir": str(tmp_path / "gptq" / "model"),
        "heldout_rows": 6,
        "calibration_rows": 12,
        "max_length": 128,
        "group_size": 32,  # the tiny model's layers are 64 and 128 wide
        **overrides,
    }


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"scheme": "int3"}, "scheme"),
        ({"scheme": "W4A16"}, "scheme"),
        ({"group_size": 100}, "group_size"),
        ({"group_size": 256}, "group_size"),
        ({"dampening_frac": 0}, "dampening_frac"),
        ({"max_length": 4}, "max_length"),
        ({"calibration_rows": 0}, "calibration_rows"),
        ({"corpus_file": "/no/such/messages.jsonl"}, "corpus_file"),
        ({"groupsize": 64}, "groupsize"),  # a typo is an error, not a silent default
    ],
)
def test_bad_gptq_config_exits_2_naming_the_field(overrides, field, tiny_model_dir, corpus_file, tmp_path):
    run = run_training_script("gptq", _job(tiny_model_dir, corpus_file, tmp_path, **overrides), tmp_path, timeout=60)
    assert run.proc.returncode == 2, run.proc.stderr
    assert f"field '{field}'" in run.proc.stderr and "Traceback" not in run.proc.stderr


def test_good_config_validates_with_defaults(tiny_model_dir, corpus_file, tmp_path):
    cfg = GptqJob.model_validate(_job(tiny_model_dir, corpus_file, tmp_path))
    assert (cfg.scheme, cfg.ignore, cfg.seed) == ("int4", ["lm_head"], 0)


@pytest.mark.parametrize(("scheme", "bits"), [("int4", 4), ("int8", 8)])
def test_recipe_is_weight_only_grouped_int_and_keeps_lm_head(scheme, bits, tiny_model_dir, corpus_file, tmp_path):
    cfg = GptqJob.model_validate(_job(tiny_model_dir, corpus_file, tmp_path, scheme=scheme, group_size=64))
    recipe = gptq_recipe(cfg)
    group = recipe["config_groups"]["group_0"]
    assert group["targets"] == ["Linear"]
    assert group["weights"] == {
        "num_bits": bits,
        "type": "int",
        "symmetric": True,
        "strategy": "group",
        "group_size": 64,
    }
    assert group["input_activations"] is None and group["output_activations"] is None  # A16
    assert recipe["ignore"] == ["lm_head"] and recipe["dampening_frac"] == 0.01
    json.dumps(recipe)  # plain data: it can be logged and written beside the checkpoint


def test_oneshot_arguments_use_the_chosen_rows_as_they_are(tiny_model_dir, corpus_file, tmp_path):
    cfg = GptqJob.model_validate(_job(tiny_model_dir, corpus_file, tmp_path, max_length=256))
    assert oneshot_arguments(cfg, 12) == {
        "max_seq_length": 256,
        "num_calibration_samples": 12,
        "shuffle_calibration_samples": False,
    }


def test_group_size_must_divide_every_quantized_layer(tiny_model_dir, corpus_file, tmp_path):
    model, _ = load_model_and_tokenizer(tiny_model_dir)
    check_group_size(model, GptqJob.model_validate(_job(tiny_model_dir, corpus_file, tmp_path, group_size=64)))
    with pytest.raises(ValueError, match=r"group_size 128 does not divide .*q_proj \(64\)"):
        check_group_size(model, GptqJob.model_validate(_job(tiny_model_dir, corpus_file, tmp_path, group_size=128)))


def _has_llmcompressor(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import llmcompressor"], capture_output=True, env=offline_env(), timeout=120)
    return probe.returncode == 0


def gptq_python() -> str:
    return os.environ.get("RP_GPTQ_PYTHON") or sys.executable


def test_without_llm_compressor_the_error_says_how_to_install_it(tiny_model_dir, corpus_file, tmp_path):
    if _has_llmcompressor(sys.executable):
        pytest.skip("llm-compressor is installed in the test environment")
    run = run_training_script("gptq", _job(tiny_model_dir, corpus_file, tmp_path), tmp_path, timeout=60)
    assert run.proc.returncode == 1
    assert "pip install -e '.[gptq]'" in run.proc.stderr and "RP_GPTQ_PYTHON" in run.proc.stderr
    assert not (tmp_path / "gptq" / "model").exists()


def run_gptq_end_to_end(tiny_model_dir, corpus_file, tmp_path: Path, scheme: str) -> dict:
    """Run the real script (llm-compressor) and check what it wrote: a compressed-tensors
    checkpoint vLLM reads, and the held-out figures."""
    python = gptq_python()
    if not _has_llmcompressor(python):
        pytest.skip("no gptq environment: set RP_GPTQ_PYTHON to a python with the gptq extra")
    cfg = _job(tiny_model_dir, corpus_file, tmp_path, scheme=scheme)
    run = run_training_script("gptq", cfg, tmp_path, python=python)
    assert run.ok, run.proc.stderr[-3000:]
    out = Path(cfg["output_dir"])
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    quant = config["quantization_config"]
    assert quant["quant_method"] == "compressed-tensors" and quant["format"] == "pack-quantized"
    weights = quant["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["group_size"], weights["strategy"]) == (
        {"int4": 4, "int8": 8}[scheme],
        32,
        "group",
    )
    assert quant["ignore"] == ["lm_head"]
    assert (out / "tokenizer.json").is_file() and (out / "model.safetensors").is_file()
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert m["method"] == f"gptq_{scheme}" and m["calibration_rows"] == 12 and m["heldout_rows"] == 6
    assert 0.0 <= m["top1_agreement"] <= 1.0 and m["top1_agreement"] >= 0.8
    assert math.isfinite(m["ppl_ratio"]) and 0.8 < m["ppl_ratio"] < 1.25
    assert 0 < m["size_ratio"] < 0.8
    assert not list(tmp_path.glob("gptq/.model.partial"))
    return m


@pytest.mark.parametrize("scheme", ["int4", "int8"])
def test_gptq_end_to_end_in_the_gptq_environment(scheme, tiny_model_dir, corpus_file, tmp_path):
    """On CPU where RP_GPTQ_PYTHON (or this interpreter) has llm-compressor; skipped otherwise."""
    run_gptq_end_to_end(tiny_model_dir, corpus_file, tmp_path, scheme)
