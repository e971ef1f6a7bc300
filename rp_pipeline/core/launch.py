"""The command that runs a training script: plain `python -m` for one device, `accelerate
launch` for several GPUs, with a DeepSpeed ZeRO config when the profile names one. Every
launcher (local subprocess, Docker, Kubernetes) runs this same command; only where it runs
differs. The scripts themselves are unchanged under either."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

DeepSpeedStage = Literal["zero2", "zero3"]
DEEPSPEED_DIR = Path(__file__).resolve().parents[2] / "docker" / "deepspeed"


def deepspeed_config(stage: DeepSpeedStage) -> Path:
    """The shipped ZeRO config of `stage` (its "auto" values are filled by transformers from
    the training arguments)."""
    path = DEEPSPEED_DIR / f"{stage}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no DeepSpeed config for {stage}")
    return path


def training_command(
    script: str, config_path: str | Path, *, python: str, gpus: int = 0, deepspeed: str | Path | None = None
) -> list[str]:
    """`python -m rp_pipeline.training.<script> --config <path>` on CPU or one GPU without
    DeepSpeed; otherwise the same module under `accelerate launch` with one process per GPU
    (with `deepspeed`, a ZeRO config file where the script runs, or DDP without it)."""
    if gpus < 0:
        raise ValueError(f"gpus must be 0 (CPU) or more, got {gpus}")
    if deepspeed is not None and gpus == 0:
        raise ValueError("DeepSpeed needs at least one GPU (training.gpus)")
    module = ["-m", f"rp_pipeline.training.{script}", "--config", str(config_path)]
    if gpus <= 1 and deepspeed is None:
        return [python, *module]
    launch = [python, "-m", "accelerate.commands.launch", "--num_machines", "1", "--num_processes", str(gpus)]
    if deepspeed is not None:
        launch += ["--use_deepspeed", "--deepspeed_config_file", str(deepspeed)]
    elif gpus > 1:
        launch += ["--multi_gpu"]
    return [*launch, *module]
