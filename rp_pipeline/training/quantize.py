"""Int8 weight-only quantization of the merged model with optimum-quanto (CPU-capable).

Adapters are merged into the fp32 base and every Linear gets int8 weights (per output
channel). With tied embeddings ``lm_head`` stays fp32: it shares the embedding matrix, so
quantizing it would store a second copy and cost accuracy for no size gain; untied (as the
GGUF-converted Qwen2.5-0.5B is) it is quantized too. The result is saved as
safetensors + ``quantization_map.json`` and immediately reloaded with ``load_quantized``,
the same loader generate.py uses, so the reported agreement is that of the shipped files.

The check (quant_check.py, shared with gptq.py) runs the merged fp32 model and the quantized
one over a held-out slice of the training corpus: top-1 next-token agreement and the
perplexity ratio. For GGUF the model's weights are replaced by their Q8_0 round trip, so the
check measures the weights llama.cpp loads in transformers; llama.cpp's own kernels also
round activations to 8 bits in the dot products, which the check does not model (running a
GGUF in transformers dequantizes it back to fp32, so it would measure the same weights).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import DirectoryPath, Field, FilePath, model_validator

from rp_pipeline.training.common import (
    load_model_and_tokenizer,
    load_tokenizer,
    publish_dir,
    quiet_libraries,
    run_script,
    staging_dir,
    write_json,
)
from rp_pipeline.training.quant_check import CorpusSliceJob, compare_stats, load_slices, token_stats, unique_bytes

WEIGHTS_FILE = "model.safetensors"
QMAP_FILE = "quantization_map.json"
GGUF_FILE = "model.gguf"


class QuantizeJob(CorpusSliceJob):
    base_model_dir: DirectoryPath
    adapters: list[DirectoryPath] = Field(default_factory=list)
    output_dir: Path
    # int8_weight_only: optimum-quanto safetensors, loads in transformers (any base model).
    # gguf_q8_0: llama.cpp GGUF with int8 blocks; needs a template GGUF of the same base.
    method: Literal["int8_weight_only", "gguf_q8_0"] = "int8_weight_only"
    template_gguf: FilePath | None = None

    @model_validator(mode="after")
    def _gguf_needs_template(self):
        if self.method == "gguf_q8_0" and self.template_gguf is None:
            raise ValueError("template_gguf: required for method gguf_q8_0 (tokenizer and metadata come from it)")
        return self


def save_quantized(model, tokenizer, out_dir: Path) -> None:
    from optimum.quanto import quantization_map
    from safetensors.torch import save_model

    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out_dir / WEIGHTS_FILE), metadata={"format": "pt"})  # drops tied duplicates
    (out_dir / QMAP_FILE).write_text(json.dumps(quantization_map(model), indent=1), encoding="utf-8")
    model.config.save_pretrained(out_dir)
    model.generation_config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def load_quantized(model_dir: str | Path):
    """Rebuild the model from config (real CPU tensors, not ``meta``: quanto's requantize
    then copies into them) and load the int8 state with ``requantize``."""
    import torch
    from optimum.quanto import requantize
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    d = Path(model_dir)
    config = AutoConfig.from_pretrained(str(d))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = load_file(str(d / WEIGHTS_FILE))
    qmap = json.loads((d / QMAP_FILE).read_text(encoding="utf-8"))
    requantize(model, state, qmap, device=torch.device("cpu"))
    model.tie_weights()
    current = model.state_dict()
    loaded = {t.untyped_storage().data_ptr() for k, t in current.items() if k in state}  # tied weights count
    missing = [k for k, t in current.items() if k not in state and t.untyped_storage().data_ptr() not in loaded]
    if missing:  # requantize loads with strict=False; a silent random weight would be worse than an error
        raise ValueError(f"{d / WEIGHTS_FILE} lacks weights for {missing[:5]}")
    model.eval()
    return model, load_tokenizer(d)


def quantize_job(cfg: QuantizeJob, pipes) -> dict[str, Any]:
    """Merge, quantize to int8, save, reload and compare with fp32 on held-out corpus rows."""
    started = time.perf_counter()
    quiet_libraries()
    from optimum.quanto import freeze, qint8, quantize

    model, tokenizer = load_model_and_tokenizer(cfg.base_model_dir, cfg.adapters)
    model.eval()
    heldout, _calibration = load_slices(cfg, tokenizer)
    ref = token_stats(model, heldout)
    size_fp32 = unique_bytes(model.state_dict())
    pipes.log.info(f"quantize: merged {len(cfg.adapters)} adapter(s); fp32 weights {size_fp32 / 2**20:.1f} MB")

    staging = staging_dir(cfg.output_dir)
    if cfg.method == "gguf_q8_0":
        from rp_pipeline.training.gguf_export import export_gguf_q8

        export_gguf_q8(
            model, cfg.template_gguf, staging / GGUF_FILE, name=cfg.output_dir.parent.name, fake_quantize=True
        )
        size_int8 = (staging / GGUF_FILE).stat().st_size
        got = token_stats(model, heldout)
    else:
        quantize(model, weights=qint8, exclude="lm_head" if model.config.tie_word_embeddings else None)
        freeze(model)
        save_quantized(model, tokenizer, staging)
        del model
        size_int8 = (staging / WEIGHTS_FILE).stat().st_size
        reloaded, _ = load_quantized(staging)
        got = token_stats(reloaded, heldout)
    metrics = {
        "method": cfg.method,
        "size_fp32_mb": round(size_fp32 / 2**20, 3),
        "size_int8_mb": round(size_int8 / 2**20, 3),
        "size_ratio": round(size_int8 / size_fp32, 4),
        **compare_stats(ref, got),
        "runtime_s": round(time.perf_counter() - started, 3),
    }
    write_json(staging / "metrics.json", metrics)
    publish_dir(staging, cfg.output_dir)
    pipes.log.info(f"quantize: {metrics}")
    return {**metrics, "output_dir": str(cfg.output_dir)}


if __name__ == "__main__":
    sys.exit(run_script(QuantizeJob, quantize_job))
