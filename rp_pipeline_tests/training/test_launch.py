"""How training is launched: the command for CPU, one GPU and N GPUs with and without DeepSpeed;
the shipped ZeRO configs pass DeepSpeed's own validation; the SFT script runs unchanged under
`accelerate launch`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rp_pipeline.core.launch import DEEPSPEED_DIR, training_command
from rp_pipeline.core.profile import TrainingProfile
from rp_pipeline_tests.training.conftest import chat_rows, offline_env, write_jsonl

MODULE = ["-m", "rp_pipeline.training.sft", "--config", "cfg.json"]
LAUNCH = ["py", "-m", "accelerate.commands.launch", "--num_machines", "1"]


def test_one_device_runs_the_module_and_more_run_under_accelerate_launch():
    assert training_command("sft", "cfg.json", python="py") == ["py", *MODULE]
    assert training_command("sft", "cfg.json", python="py", gpus=1) == ["py", *MODULE]
    assert training_command("sft", "cfg.json", python="py", gpus=4) == [
        *LAUNCH,
        "--num_processes",
        "4",
        "--multi_gpu",
        *MODULE,
    ]
    zero3 = training_command("sft", "cfg.json", python="py", gpus=8, deepspeed=DEEPSPEED_DIR / "zero3.json")
    assert zero3 == [
        *LAUNCH,
        "--num_processes",
        "8",
        "--use_deepspeed",
        "--deepspeed_config_file",
        str(DEEPSPEED_DIR / "zero3.json"),
        *MODULE,
    ]
    one_gpu_zero2 = training_command("dpo", "c.json", python="py", gpus=1, deepspeed="/data/ds.json")
    assert one_gpu_zero2[5:9] == ["--num_processes", "1", "--use_deepspeed", "--deepspeed_config_file"]
    with pytest.raises(ValueError, match="at least one GPU"):
        training_command("sft", "cfg.json", python="py", deepspeed="/data/ds.json")
    with pytest.raises(ValueError, match="deepspeed needs gpus"):
        TrainingProfile(deepspeed="zero3")


@pytest.mark.parametrize(("stage", "number"), [("zero2", 2), ("zero3", 3)])
def test_the_shipped_deepspeed_configs_pass_deepspeeds_validation(stage, number, tmp_path):
    """The "auto" values filled from training arguments as the Trainer does, then DeepSpeed's
    own config class checks the result (batch sizes must agree, the stage must exist)."""
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    def validated(path) -> DeepSpeedConfig:
        args = TrainingArguments(
            output_dir=str(tmp_path), per_device_train_batch_size=2, gradient_accumulation_steps=4, use_cpu=True
        )
        hf = HfTrainerDeepSpeedConfig(str(path))
        hf.trainer_config_process(args)
        model = type("Model", (), {"config": type("Config", (), {"hidden_size": 896})()})()
        hf.trainer_config_finalize(args, model, num_training_steps=10)
        return DeepSpeedConfig(hf.config)

    config = validated(DEEPSPEED_DIR / f"{stage}.json")
    assert config.zero_optimization_stage == number
    assert (config.train_micro_batch_size_per_gpu, config.gradient_accumulation_steps) == (2, 4)

    broken = json.loads((DEEPSPEED_DIR / f"{stage}.json").read_text())
    broken["train_batch_size"] = 9  # not micro batch x accumulation x devices
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(Exception, match="batch"):
        validated(tmp_path / "broken.json")


def test_sft_completes_a_step_under_accelerate_launch_on_cpu(tiny_model_dir, tmp_path):
    config = {
        "base_model_dir": str(tiny_model_dir),
        "train_file": str(write_jsonl(tmp_path / "train.jsonl", chat_rows(4))),
        "output_dir": str(tmp_path / "adapter"),
        "max_steps": 1,
        "max_length": 128,
    }
    (tmp_path / "cfg.json").write_text(json.dumps(config))
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--num_processes", "1"]
    command = [*launch, "--cpu", "--mixed_precision", "no", "--dynamo_backend", "no", *MODULE]
    done = subprocess.run(command, cwd=tmp_path, env=offline_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "adapter" / "metrics.json").read_text())
    assert metrics["steps"] == 1 and "step 1/1 loss=" in done.stderr
