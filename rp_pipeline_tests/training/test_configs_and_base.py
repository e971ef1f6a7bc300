"""Bad configs fail fast and name the field; ensure_dense_base converts a GGUF once."""

from __future__ import annotations

import pytest

from rp_pipeline.training.common import ensure_dense_base, load_model_and_tokenizer
from rp_pipeline_tests.tiny_model import build_tiny_gguf
from rp_pipeline_tests.training.conftest import run_training_script


@pytest.mark.parametrize(
    ("script", "config", "field"),
    [
        ("sft", {"base_model_dir": "/x", "output_dir": "/y"}, "train_file"),  # missing
        ("sft", {"base_model_dir": "/x", "train_file": "{cfg}", "output_dir": "/y", "max_steps": "ten"}, "max_steps"),
        ("sft", {"base_model_dir": "/x", "train_file": "{cfg}", "output_dir": "/y", "lr": 1e-4}, "lr"),  # typo
        (
            "dpo",
            {"base_model_dir": "/nope", "sft_adapters": ["/nope"], "pairs_file": "{cfg}", "output_dir": "/y"},
            "base_model_dir",
        ),  # must exist
        ("quantize", {"base_model_dir": "{dir}", "output_dir": "/y", "method": "int4"}, "method"),
        (
            "generate",
            {"model_dir": "{dir}", "kind": "dense", "requests_file": "{cfg}", "output_file": "/y", "top_p": 2},
            "top_p",
        ),
        (
            "generate",
            {
                "model_dir": "{dir}",
                "kind": "quantized",
                "adapters": ["{dir}"],
                "requests_file": "{cfg}",
                "output_file": "/y",
            },
            "adapters",
        ),
        ("quantize", {"base_model_dir": "{dir}", "output_dir": "/y", "cpu_threads": 0}, "cpu_threads"),
    ],
)
def test_bad_config_exits_nonzero_naming_the_field(script, config, field, tmp_path):
    cfg_path = tmp_path / f"{script}.json"  # an existing file, for fields that must exist
    config = {
        k: [x.format(cfg=cfg_path, dir=tmp_path) for x in v]
        if isinstance(v, list)
        else v.format(cfg=cfg_path, dir=tmp_path)
        if isinstance(v, str)
        else v
        for k, v in config.items()
    }
    run = run_training_script(script, config, tmp_path, timeout=60)
    assert run.proc.returncode == 2, run.proc.stderr
    assert field in run.proc.stderr
    assert "Traceback" not in run.proc.stderr


def test_unreadable_config_is_a_clear_error(tmp_path):
    run = run_training_script("sft", "{not json", tmp_path, timeout=60)
    assert run.proc.returncode == 2 and "cannot read config" in run.proc.stderr


def test_ensure_dense_base_skips_conversion_when_safetensors_exist(tiny_model_dir):
    weights = tiny_model_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    # a gguf path that does not exist proves no conversion is attempted
    assert ensure_dense_base(tiny_model_dir, "/does/not/exist.gguf") == tiny_model_dir
    assert weights.stat().st_mtime_ns == before


def test_ensure_dense_base_needs_weights_or_gguf(tmp_path):
    with pytest.raises(FileNotFoundError, match="no gguf_file"):
        ensure_dense_base(tmp_path / "empty", None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ensure_dense_base(tmp_path / "empty", tmp_path / "missing.gguf")


def test_ensure_dense_base_converts_gguf_exactly_and_keeps_chat_template(tiny_model_dir, tmp_path):
    import torch

    gguf_file = build_tiny_gguf(tiny_model_dir, tmp_path / "tiny.gguf")
    dense = ensure_dense_base(tmp_path / "dense", gguf_file)
    assert (dense / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind
    ref, ref_tok = load_model_and_tokenizer(tiny_model_dir, [])
    got, got_tok = load_model_and_tokenizer(dense, [])
    assert got_tok.chat_template == ref_tok.chat_template
    text = "你好 hello <emotion>happy</emotion> ¿qué tal? こんにちは"
    ids = ref_tok(text, return_tensors="pt")
    assert got_tok(text, return_tensors="pt")["input_ids"].tolist() == ids["input_ids"].tolist()
    with torch.no_grad():
        assert torch.allclose(ref(**ids).logits, got(**ids).logits, atol=1e-5)  # F32 GGUF: exact round trip


def test_sft_splits_rows_over_max_length_with_the_model_tokenizer(tiny_model_dir):
    from rp_pipeline.training.common import load_tokenizer
    from rp_pipeline.training.sft import split_to_fit

    tokenizer = load_tokenizer(tiny_model_dir)
    system = {"role": "system", "content": "You are Mia, a cheerful barista."}
    exchanges = [
        [
            {"role": "user", "content": f"你好，第{i}次见面"},
            {"role": "assistant", "content": f"还不错，第{i}杯咖啡！<emotion>happy</emotion>"},
        ]
        for i in range(12)
    ]
    long_row = {"messages": [system] + [m for e in exchanges for m in e]}
    rows, too_long = split_to_fit([long_row], tokenizer, max_length=128)
    assert len(rows) > 1 and too_long == 0
    assert all(r["messages"][0] == system for r in rows)
    assert [m for r in rows for m in r["messages"][1:]] == long_row["messages"][1:]
    for row in rows:  # what the trainer will see fits, with the chat template applied
        templated = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        assert len(tokenizer(templated, add_special_tokens=False)["input_ids"]) <= 128
    short = {"messages": long_row["messages"][:3]}
    assert split_to_fit([short], tokenizer, max_length=128) == ([short], 0)
