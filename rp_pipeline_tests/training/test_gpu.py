"""The training scripts on a CUDA device (bf16 where supported). Marked gpu and skipped
without CUDA; run alone with `make test PYTEST_ARGS="-m gpu"` on a GPU machine."""

from __future__ import annotations

import json
import math

import pytest

from rp_pipeline_tests.training.conftest import chat_rows, pair_rows, run_training_script, write_jsonl
from rp_pipeline_tests.training.test_gptq import run_gptq_end_to_end

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_sft_then_dpo_train_on_cuda(tiny_model_dir, tmp_path):
    sft = run_training_script(
        "sft",
        {
            "base_model_dir": str(tiny_model_dir),
            "train_file": str(write_jsonl(tmp_path / "train.jsonl", chat_rows(8))),
            "output_dir": str(tmp_path / "sft"),
            "max_steps": 3,
            "max_length": 128,
            "assistant_only_loss": True,
        },
        tmp_path / "sft_work",
    )
    assert sft.ok, sft.proc.stderr[-3000:]
    dpo = run_training_script(
        "dpo",
        {
            "base_model_dir": str(tiny_model_dir),
            "sft_adapters": [str(tmp_path / "sft")],
            "pairs_file": str(write_jsonl(tmp_path / "pairs.jsonl", pair_rows(4))),
            "output_dir": str(tmp_path / "dpo"),
            "max_steps": 2,
            "max_length": 128,
        },
        tmp_path / "dpo_work",
    )
    assert dpo.ok, dpo.proc.stderr[-3000:]
    for out in ("sft", "dpo"):
        metrics = json.loads((tmp_path / out / "metrics.json").read_text(encoding="utf-8"))
        assert metrics["loss_history"] and all(math.isfinite(v) for _, v in metrics["loss_history"])


@pytest.mark.parametrize("scheme", ["int4", "int8"])
def test_gptq_quantizes_on_cuda(scheme, tiny_model_dir, corpus_file, tmp_path):
    """The real GPTQ script (llm-compressor, in the RP_GPTQ_PYTHON environment) on the GPU."""
    metrics = run_gptq_end_to_end(tiny_model_dir, corpus_file, tmp_path, scheme)
    assert metrics["device"] == "cuda"
    assert metrics["reference_dtype"] in ("bfloat16", "float32")
