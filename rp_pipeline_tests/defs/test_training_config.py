"""The training scripts' configs as the assets (and benchmarks/learning.py) write them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from rp_pipeline.core.artifacts import Checkpoint
from rp_pipeline.core.base_models import BaseModelSpec
from rp_pipeline.core.profile import Profile, TrainingProfile
from rp_pipeline.defs.training import dpo_job_config, sft_job_config


def test_lora_and_full_sft_differ_only_in_method_learning_rate_and_output():
    spec = BaseModelSpec(max_length=4096)
    base = {"base_model_dir": "/m/base"}

    def config(method: Literal["lora", "full"]) -> dict:
        training = TrainingProfile(method=method, sft_steps=24, sft_eval_rows=8, warmup_ratio=0.1)
        return sft_job_config(
            Profile(name="p", seed=5, training=training), spec, base, "/c/messages.jsonl", Path(method)
        )

    lora, full = config("lora"), config("full")
    assert (lora["learning_rate"], full["learning_rate"]) == (2e-4, 1e-5)
    assert (lora["method"], full["method"], lora["output_dir"], full["output_dir"]) == ("lora", "full", "lora", "full")
    same = {k: v for k, v in lora.items() if k not in ("method", "learning_rate", "output_dir")}
    assert same == {k: v for k, v in full.items() if k not in ("method", "learning_rate", "output_dir")}
    assert (same["max_steps"], same["eval_rows"], same["seed"], same["train_file"]) == (24, 8, 5, "/c/messages.jsonl")


def test_dpo_starts_from_the_sft_model_with_its_adapters():
    profile = Profile(name="p", training=TrainingProfile(dpo_steps=7))
    full = Checkpoint(
        version="sft-1", stage="sft", method="full", base_model_dir="/m/base", model_dir="/m/sft", corpus_version="c"
    )
    lora = Checkpoint(version="sft-2", stage="sft", base_model_dir="/m/base", adapters=["/m/a"], corpus_version="c")
    spec = BaseModelSpec(max_length=4096)
    on_full = dpo_job_config(profile, spec, full, "/p/pairs.jsonl", Path("out"))
    on_lora = dpo_job_config(profile, spec, lora, "/p/pairs.jsonl", Path("out"))
    assert (on_full["base_model_dir"], on_full["sft_adapters"]) == ("/m/sft", [])
    assert (on_lora["base_model_dir"], on_lora["sft_adapters"]) == ("/m/base", ["/m/a"])
    assert on_full["max_steps"] == 7 and on_full["pairs_file"] == "/p/pairs.jsonl"
