"""GPTQ weight-only quantization (W8A16 / W4A16) of the merged model into a checkpoint vLLM serves.

Library: llm-compressor (``llmcompressor``, the vLLM project's own). Its ``oneshot`` + ``GPTQModifier``
writes a compressed-tensors safetensors checkpoint (``quantization_config`` in config.json)
that vLLM loads natively (Marlin kernels for W4A16/W8A16) and that transformers reloads with
the ``compressed-tensors`` package, which is how the held-out check below reads it back. It
is what vLLM's own quantization docs use. GPTQModel (ModelCloud) is also maintained and
vLLM loads its GPTQ format too, but it builds its kernels at install or first use and pins
more of the stack (numpy, torchao, its own tokenizer helpers), and llm-compressor was
measured here to run GPTQ on CPU on small models (shared/LOCAL_MODELS.md).

llm-compressor pins transformers (0.14.0.1: ``>=5.15,<=5.17``) below the training stack's
5.23, so it is not part of the ``train`` extra: install the ``gptq`` extra into its own
environment (``pip install torch==2.13.0 && pip install -e '.[gptq]'``) and point
``RP_GPTQ_PYTHON`` at that interpreter; defs/quantize.py launches this script with it, the
way vLLM's docs keep llm-compressor and vLLM in separate environments. Only this script
needs it, and it imports the library inside the job, so a bad config fails in well under a
second either way.

Steps: merge the adapters into the fp32 base, take a seeded held-out slice and a disjoint
calibration slice of the training corpus (quant_check.py), record the reference model's
predictions on the held-out rows (bf16 on a GPU that supports it, the dtype that is
quantized and served; else fp32), run GPTQ on the calibration rows, save with the library's
``save_pretrained(save_compressed=True)``, reload the saved files and compare.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import DirectoryPath, Field, field_validator

from rp_pipeline.training.common import (
    load_model_and_tokenizer,
    publish_dir,
    quiet_libraries,
    run_script,
    staging_dir,
    write_json,
)
from rp_pipeline.training.quant_check import CorpusSliceJob, compare_stats, load_slices, token_stats, unique_bytes

SCHEME_BITS = {"int8": 8, "int4": 4}  # W8A16 / W4A16: weights only, activations stay 16-bit
GROUP_SIZES = (32, 64, 128)  # what vLLM's Marlin kernels serve for grouped int4/int8 weights
INSTALL_HINT = (
    "gptq needs llm-compressor, which pins an older transformers than the training stack: install the "
    "'gptq' extra into its own environment (pip install torch==2.13.0 && pip install -e '.[gptq]') and "
    "set RP_GPTQ_PYTHON to its python"
)


class GptqJob(CorpusSliceJob):
    base_model_dir: DirectoryPath
    adapters: list[DirectoryPath] = Field(default_factory=list)
    output_dir: Path
    scheme: Literal["int8", "int4"] = "int4"
    group_size: int = 128
    dampening_frac: float = Field(default=0.01, gt=0, lt=1, description="GPTQ Hessian dampening")
    ignore: list[str] = Field(default_factory=lambda: ["lm_head"], description="modules left unquantized")

    @field_validator("group_size")
    @classmethod
    def _served_group_size(cls, value: int) -> int:
        if value not in GROUP_SIZES:
            raise ValueError(f"must be one of {', '.join(map(str, GROUP_SIZES))} (what vLLM serves), not {value}")
        return value


def gptq_recipe(cfg: GptqJob) -> dict[str, Any]:
    """Keyword arguments of ``GPTQModifier``: every Linear but ``ignore`` gets symmetric int
    weights in groups of ``group_size`` along the input dimension; activations are not quantized."""
    return {
        "config_groups": {
            "group_0": {
                "targets": ["Linear"],
                "weights": {
                    "num_bits": SCHEME_BITS[cfg.scheme],
                    "type": "int",
                    "symmetric": True,
                    "strategy": "group",
                    "group_size": cfg.group_size,
                },
                "input_activations": None,
                "output_activations": None,
            }
        },
        "ignore": list(cfg.ignore),
        "dampening_frac": cfg.dampening_frac,
    }


def oneshot_arguments(cfg: GptqJob, calibration_rows: int) -> dict[str, Any]:
    """Keyword arguments of ``llmcompressor.oneshot`` besides model, dataset and recipe: the
    rows are already tokenized, cut to ``max_length`` and chosen (no shuffling)."""
    return {
        "max_seq_length": cfg.max_length,
        "num_calibration_samples": calibration_rows,
        "shuffle_calibration_samples": False,
    }


def check_group_size(model, cfg: GptqJob) -> None:
    """Every quantized Linear's input width must split into whole groups."""
    import torch

    bad = [
        f"{name} ({module.in_features})"
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and not any(name == i or name.endswith(f".{i}") for i in cfg.ignore)
        and module.in_features % cfg.group_size
    ]
    if bad:
        raise ValueError(f"group_size {cfg.group_size} does not divide the input width of {', '.join(bad[:5])}")


def _dir_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.safetensors"))


def _reference_dtype():
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def gptq_job(cfg: GptqJob, pipes) -> dict[str, Any]:
    """Merge, calibrate on the corpus, GPTQ-quantize, save compressed, reload and compare."""
    started = time.perf_counter()
    os.environ.setdefault("TQDM_DISABLE", "1")  # llm-compressor's per-layer bars; progress goes to pipes.log
    try:
        from datasets import Dataset
        from llmcompressor import oneshot
        from llmcompressor.modifiers.gptq import GPTQModifier
    except ImportError as exc:
        raise RuntimeError(f"{INSTALL_HINT} ({exc})") from exc
    import torch
    from transformers import AutoModelForCausalLM

    quiet_libraries()
    model, tokenizer = load_model_and_tokenizer(cfg.base_model_dir, cfg.adapters)
    check_group_size(model, cfg)
    dtype = _reference_dtype()
    model = model.to(dtype).eval()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    heldout, calibration = load_slices(cfg, tokenizer)
    if not calibration:
        raise ValueError(f"{cfg.corpus_file}: no calibration row renders to 2 tokens or more")
    pipes.log.info(
        f"gptq: merged {len(cfg.adapters)} adapter(s); {len(calibration)} calibration and {len(heldout)} "
        f"held-out rows of at most {cfg.max_length} tokens; {cfg.scheme} group {cfg.group_size} on {device}"
    )
    size_dense = unique_bytes(model.state_dict())
    ref = token_stats(model.to(device), heldout)
    model.to("cpu")  # oneshot onloads layer by layer to the execution device

    dataset = Dataset.from_list([{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in calibration])
    t0 = time.perf_counter()
    oneshot(
        model=model, dataset=dataset, recipe=GPTQModifier(**gptq_recipe(cfg)), **oneshot_arguments(cfg, len(dataset))
    )
    gptq_s = time.perf_counter() - t0
    staging = staging_dir(cfg.output_dir)
    model.save_pretrained(staging, save_compressed=True)
    tokenizer.save_pretrained(staging)
    del model

    reloaded = AutoModelForCausalLM.from_pretrained(str(staging), dtype=dtype).to(device).eval()
    got = token_stats(reloaded, heldout)
    size_q = _dir_bytes(staging)
    metrics = {
        "method": f"gptq_{cfg.scheme}",
        "library": "llmcompressor",
        "scheme": {"int8": "W8A16", "int4": "W4A16"}[cfg.scheme],
        "group_size": cfg.group_size,
        "calibration_rows": len(calibration),
        "reference_dtype": str(dtype).removeprefix("torch."),
        "device": device,
        "size_dense_mb": round(size_dense / 2**20, 3),
        "size_quantized_mb": round(size_q / 2**20, 3),
        "size_ratio": round(size_q / size_dense, 4),
        **compare_stats(ref, got),
        "gptq_s": round(gptq_s, 3),
        "runtime_s": round(time.perf_counter() - started, 3),
    }
    write_json(staging / "metrics.json", metrics)
    publish_dir(staging, cfg.output_dir)
    pipes.log.info(f"gptq: {metrics}")
    return {**metrics, "output_dir": str(cfg.output_dir)}


if __name__ == "__main__":
    sys.exit(run_script(GptqJob, gptq_job))
