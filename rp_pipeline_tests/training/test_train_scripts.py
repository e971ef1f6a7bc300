"""SFT -> DPO -> int8 -> generate on a tiny model, each script run as a subprocess.

Dense generation (base + both adapters) runs through Dagster Pipes in test_pipes.py."""

from __future__ import annotations

import json
import math

from safetensors import safe_open

from rp_pipeline_tests.training.conftest import (
    chat_rows,
    kill_after_first_checkpoint,
    pair_rows,
    run_training_script,
    write_jsonl,
)


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
    assert "tok/s=" in sft_run.proc.stderr and "elapsed=" in sft_run.proc.stderr
    assert m["input_tokens"] > 0 and m["tokens_per_second"] > 0 and m["peak_gpu_memory_mb"] is None  # CPU
    assert [s for s, _ in m["learning_rate_history"]] == [1, 2, 3, 4, 5]
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


def test_assistant_only_loss_trains_on_the_replies_and_nothing_else(tiny_model_dir, tmp_path):
    """The labels the collator builds: with `assistant_only_loss` only the assistant's reply and
    its end-of-turn token carry loss, never the system prompt or the user turn."""
    from rp_pipeline.training.common import load_model_and_tokenizer
    from rp_pipeline.training.sft import SFTJob, build_trainer

    rows = chat_rows(2)
    train_file = write_jsonl(tmp_path / "train.jsonl", rows)
    model, tokenizer = load_model_and_tokenizer(tiny_model_dir, [])

    def trained_text(assistant_only: bool) -> str:
        cfg = SFTJob(
            base_model_dir=tiny_model_dir,
            train_file=train_file,
            output_dir=tmp_path / "out",
            max_length=128,
            assistant_only_loss=assistant_only,
        )
        trainer = build_trainer(cfg, model, tokenizer, rows, [], tmp_path / "out", [])
        batch = trainer.data_collator([trainer.train_dataset[0]])
        labels, ids = batch["labels"][0], batch["input_ids"][0]
        return tokenizer.decode(ids[labels != -100])

    reply = rows[0]["messages"][2]["content"]
    assert trained_text(True) == reply + "<|im_end|>"
    everything = trained_text(False)
    assert rows[0]["messages"][0]["content"] in everything and rows[0]["messages"][1]["content"] in everything


def test_assistant_only_loss_with_qwens_own_template_masks_every_system_and_user_turn(tiny_model_dir, tmp_path):
    """The embedded base's tokenizer has Qwen2.5's chat template, which has no generation markers:
    TRL swaps in its training variant. On a multi-turn row the loss then falls on both replies
    (each with its end-of-turn token) and on nothing of the system prompt or either user turn."""
    from trl.chat_template_utils import qwen2_5_chat_template

    from rp_pipeline.training.common import load_model_and_tokenizer
    from rp_pipeline.training.sft import SFTJob, build_trainer

    model, tokenizer = load_model_and_tokenizer(tiny_model_dir, [])
    tokenizer.chat_template = qwen2_5_chat_template
    turns = [
        ("system", "你是小雨，一个开心的咖啡师。"),
        ("user", "你好！今天忙吗？"),
        ("assistant", "有点忙呢<emotion>neutral</emotion>"),
        ("user", "那我晚点来"),
        ("assistant", "好呀，等你<emotion>happy</emotion>"),
    ]
    texts = [text for _, text in turns]
    row = {"messages": [{"role": role, "content": text} for role, text in turns]}
    cfg = SFTJob(
        base_model_dir=tiny_model_dir,
        train_file=write_jsonl(tmp_path / "train.jsonl", [row]),
        output_dir=tmp_path / "out",
        max_length=256,
    )
    trainer = build_trainer(cfg, model, tokenizer, [row], [], tmp_path / "out", [])
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels, ids = batch["labels"][0], batch["input_ids"][0]
    trained = tokenizer.decode(ids[labels != -100])
    assert trained == "".join(f"\n{reply}<|im_end|>\n" for reply in (texts[2], texts[4]))
    assert not any(text in trained for text in (texts[0], texts[1], texts[3]))
    assert texts[0] in tokenizer.decode(ids)  # the system prompt is in the input, only not in the loss


def test_full_sft_saves_the_whole_model_and_reports_held_out_loss(tiny_model_dir, tmp_path):
    """`method: full` trains every parameter (no adapter) and saves safetensors that reload;
    held-out rows are never trained on and their loss falls; DPO then adds its LoRA on top."""
    from transformers import AutoModelForCausalLM

    cfg = {
        "base_model_dir": str(tiny_model_dir),
        "train_file": str(write_jsonl(tmp_path / "train.jsonl", chat_rows(10))),
        "output_dir": str(tmp_path / "model"),
        "method": "full",
        "max_steps": 6,
        "learning_rate": 1e-3,
        "max_length": 128,
        "eval_rows": 2,
    }
    sft = run_training_script("sft", cfg, tmp_path)
    m = _metrics(sft, "model")
    out = tmp_path / "model"
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    assert (m["method"], m["train_rows"], m["eval_rows"], m["steps"]) == ("full", 8, 2, 6)
    assert m["eval_loss"] < m["eval_loss_before"]
    tuned = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = [n for n, p in tuned.named_parameters() if not (p == base.state_dict()[n]).all()]
    assert len(changed) > len(list(tuned.parameters())) // 2  # every layer moved, not an adapter's worth

    dpo_cfg = {
        "base_model_dir": str(out),
        "sft_adapters": [],
        "pairs_file": str(write_jsonl(tmp_path / "pairs.jsonl", pair_rows(2))),
        "output_dir": str(tmp_path / "dpo"),
        "max_steps": 1,
        "max_length": 128,
    }
    dpo = run_training_script("dpo", dpo_cfg, tmp_path)
    assert _metrics(dpo, "dpo")["steps"] == 1


def test_a_killed_sft_run_resumes_from_its_last_complete_checkpoint(tiny_model_dir, tmp_path):
    """SIGKILL after the first checkpoint; the same job run again resumes there (the steps it
    reports start after it) and ends on the step count of a run never interrupted; the
    checkpoints go once the adapter is published."""
    from rp_pipeline.training.common import checkpoints_dir

    cfg = {
        "base_model_dir": str(tiny_model_dir),
        "train_file": str(write_jsonl(tmp_path / "train.jsonl", chat_rows(16))),
        "output_dir": str(tmp_path / "adapter"),
        "max_steps": 40,
        "save_steps": 4,
        "max_length": 128,
    }
    left = kill_after_first_checkpoint("sft", cfg, tmp_path)
    checkpoints = checkpoints_dir(tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()
    step = int(left.name.removeprefix("checkpoint-"))
    assert 4 <= step < 40

    resumed = run_training_script("sft", cfg, tmp_path)
    m = _metrics(resumed, "adapter")
    assert m["resumed_from_step"] == step and m["steps"] == 40
    assert [s for s, _ in m["loss_history"]] == list(range(step + 1, 41))
    assert f"resuming from {left}" in resumed.proc.stderr
    assert not checkpoints.exists()


def test_a_killed_dpo_run_resumes_too(tiny_model_dir, sft_run, tmp_path):
    """DPO keeps checkpoints the same way: killed after its first, run again, it resumes there."""
    from rp_pipeline.training.common import checkpoints_dir

    assert sft_run.ok, sft_run.proc.stderr[-3000:]
    cfg = {
        "base_model_dir": str(tiny_model_dir),
        "sft_adapters": [str(sft_run.workdir / "adapter")],
        "pairs_file": str(write_jsonl(tmp_path / "pairs.jsonl", pair_rows(8))),
        "output_dir": str(tmp_path / "adapter"),
        "max_steps": 30,
        "save_steps": 3,
        "max_length": 128,
    }
    step = int(kill_after_first_checkpoint("dpo", cfg, tmp_path).name.removeprefix("checkpoint-"))
    checkpoints = checkpoints_dir(tmp_path / "adapter")

    m = _metrics(run_training_script("dpo", cfg, tmp_path), "adapter")
    assert m["resumed_from_step"] == step and m["steps"] == 30
    assert [s for s, _ in m["loss_history"]] == list(range(step + 1, 31))
    assert not checkpoints.exists()
