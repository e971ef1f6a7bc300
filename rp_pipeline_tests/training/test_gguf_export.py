"""The llama.cpp deployment artifact: merged model -> Q8_0 GGUF with the template's tokenizer."""

from __future__ import annotations

import json

import gguf

from rp_pipeline_tests.tiny_model import build_tiny_gguf
from rp_pipeline_tests.training.conftest import run_training_script


def test_gguf_q8_export_reloads_and_matches_fp32(tiny_model_dir, sft_run, corpus_file, tmp_path):
    template = build_tiny_gguf(tiny_model_dir, tmp_path / "template.gguf")
    run = run_training_script(
        "quantize",
        {
            "base_model_dir": str(tiny_model_dir),
            "adapters": [str(sft_run.workdir / "adapter")],
            "output_dir": str(tmp_path / "q" / "model"),
            "method": "gguf_q8_0",
            "template_gguf": str(template),
            "corpus_file": str(corpus_file),
            "heldout_rows": 6,
            "calibration_rows": 12,
            "max_length": 128,
        },
        tmp_path / "q",
    )
    assert run.ok, run.proc.stderr[-3000:]
    out = tmp_path / "q" / "model" / "model.gguf"
    metrics = json.loads((tmp_path / "q" / "model" / "metrics.json").read_text())
    assert metrics["method"] == "gguf_q8_0" and metrics["top1_agreement"] >= 0.8
    assert metrics["heldout_rows"] == 6 and metrics["heldout_tokens"] > 6
    assert 0.9 < metrics["ppl_ratio"] < 1.1  # Q8_0 of a tiny model: the held-out perplexity barely moves

    exported, original = gguf.GGUFReader(out), gguf.GGUFReader(template)
    assert {t.name for t in exported.tensors} == {t.name for t in original.tensors}
    kinds = {t.name: t.tensor_type for t in exported.tensors}
    assert kinds["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.Q8_0
    assert kinds["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32
    assert (
        exported.fields["tokenizer.chat_template"].contents() == original.fields["tokenizer.chat_template"].contents()
    )

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded = AutoModelForCausalLM.from_pretrained(str(out.parent), gguf_file=out.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    ids = tok("你好 hello <emotion>happy</emotion>", return_tensors="pt")
    assert torch.isfinite(reloaded(**ids).logits).all()


def test_gguf_method_requires_a_template(tiny_model_dir, corpus_file, tmp_path):
    run = run_training_script(
        "quantize",
        {
            "base_model_dir": str(tiny_model_dir),
            "output_dir": str(tmp_path / "o"),
            "method": "gguf_q8_0",
            "corpus_file": str(corpus_file),
        },
        tmp_path / "w",
    )
    assert not run.ok and "template_gguf" in run.proc.stderr
