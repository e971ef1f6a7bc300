"""SFT -> DPO -> int8 -> generate on a tiny model, each script run as a subprocess.

Dense generation (base + both adapters) runs through Dagster Pipes in test_pipes.py."""

from __future__ import annotations

import json
import math

from safetensors import safe_open


def _metrics(run, sub: str) -> dict:
    assert run.ok, run.proc.stderr[-3000:]
    return json.loads((run.workdir / sub / "metrics.json").read_text(encoding="utf-8"))


def test_sft_saves_adapter_and_finite_loss_history(sft_run):
    m = _metrics(sft_run, "adapter")
    out = sft_run.workdir / "adapter"
    assert (out / "adapter_model.safetensors").is_file()
    assert (out / "adapter_config.json").is_file()
    assert (out / "tokenizer.json").is_file()
    assert not list(out.glob("*.bin")) and not list(out.glob("checkpoint-*"))
    assert m["steps"] == 5 and m["train_rows"] == 8
    assert [s for s, _ in m["loss_history"]] == [1, 2, 3, 4, 5]
    assert all(math.isfinite(v) and v > 0 for _, v in m["loss_history"])
    assert m["final_loss"] == m["loss_history"][-1][1]
    assert "step 5/5 loss=" in sft_run.proc.stderr  # progress streamed to the log
    assert not (sft_run.workdir / ".adapter.partial").exists()


def test_dpo_trains_new_adapter_on_top_of_sft(dpo_run):
    m = _metrics(dpo_run, "adapter")
    assert (dpo_run.workdir / "adapter" / "adapter_model.safetensors").is_file()
    assert m["steps"] == 3 and m["train_rows"] == 4
    assert len(m["loss_history"]) == 3
    assert all(math.isfinite(v) for _, v in m["loss_history"])
    # the reference is the merged SFT model, so the first step starts at exactly log(2)
    assert abs(m["loss_history"][0][1] - math.log(2)) < 1e-3
    assert all(0.0 <= v <= 1.0 for _, v in m["reward_accuracy_history"])


def test_quantize_writes_int8_that_reloads_close_to_fp32(quantize_run):
    m = _metrics(quantize_run, "int8")
    out = quantize_run.workdir / "int8"
    assert (out / "quantization_map.json").is_file() and (out / "config.json").is_file()
    with safe_open(str(out / "model.safetensors"), framework="numpy") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    assert "I8" in dtypes
    # the check ran on the held-out corpus slice, every next-token position of 6 rendered rows
    assert m["heldout_rows"] == 6 and m["heldout_tokens"] > 6 * 10
    assert 0.0 <= m["top1_agreement"] <= 1.0
    # a reload that silently left random weights would agree on ~1/vocab of positions
    assert m["top1_agreement"] >= 0.8
    assert math.isfinite(m["ppl_ratio"]) and 0.9 < m["ppl_ratio"] < 1.1
    assert math.isfinite(m["ppl_reference"]) and m["ppl_reference"] > 1
    assert math.isfinite(m["nll_max_abs_diff"])
    # tiny model: embeddings (kept fp32, tied to lm_head) are ~40% of the weights
    assert 0 < m["size_ratio"] < 0.8
    assert m["size_int8_mb"] < m["size_fp32_mb"]


def test_generate_quantized_writes_one_row_per_request(quantized_generate_run):
    run = quantized_generate_run
    assert run.ok, run.proc.stderr[-3000:]
    rows = [json.loads(line) for line in (run.workdir / "gen.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    for r in rows:
        assert isinstance(r["content"], str) and "<|im_start|>" not in r["content"]
        assert 0 < r["new_tokens"] <= 8 and r["seconds"] >= 0
