"""Export a merged Hugging Face model to GGUF with int8 (Q8_0) weights for llama.cpp.

llama.cpp is the fast CPU deployment path (and what Ollama and LM Studio load): the same
servers the pipeline already uses for generation can serve the tuned model. Tokenizer,
chat template and hyper-parameters are copied from a template GGUF of the same base model
(the embedded model ships as one), so only the weights change; every tensor of the
template must be produced with the same shape, or the export fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rp_pipeline.core.atomic import atomic_path

SKIP_KEYS = ("GGUF.", "general.architecture")
Q8_BLOCK = 32


def export_gguf_q8(
    model: Any, template_gguf: Path, out_path: Path, name: str, fake_quantize: bool = False
) -> dict[str, Any]:
    """Write `out_path`; with `fake_quantize` the model's weights are replaced in place by
    their Q8_0 round trip, so its logits afterwards are those llama.cpp will compute."""
    import gguf
    import numpy as np
    import torch

    reader = gguf.GGUFReader(template_gguf)
    arch_name = reader.fields["general.architecture"].contents()
    arch = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch_name]
    n_blocks = int(reader.fields[f"{arch_name}.block_count"].contents())
    names = gguf.get_tensor_name_map(arch, n_blocks)
    expected = {t.name: tuple(int(x) for x in reversed(t.shape)) for t in reader.tensors}

    writer = gguf.GGUFWriter(None, arch_name)  # the file is opened once every tensor is there
    for key, field in reader.fields.items():
        if key.startswith(SKIP_KEYS) or key in ("general.file_type", "general.name"):
            continue
        sub_type = field.types[1] if len(field.types) > 1 else None
        writer.add_key_value(key, field.contents(), field.types[0], sub_type=sub_type)
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)

    written: dict[str, tuple[int, ...]] = {}
    state = model.state_dict()
    if "output.weight" in expected and "lm_head.weight" not in state:  # tied embeddings
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    for hf_name, tensor in state.items():
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None or gguf_name not in expected:
            continue
        data = tensor.detach().float().cpu().numpy()
        if data.shape != expected[gguf_name]:
            raise ValueError(f"{hf_name} -> {gguf_name}: shape {data.shape}, template has {expected[gguf_name]}")
        if data.ndim == 2 and data.shape[-1] % Q8_BLOCK == 0:
            packed = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(gguf_name, packed, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            if fake_quantize:  # the model now computes with exactly the int8 weights written
                restored = gguf.quants.dequantize(packed, gguf.GGMLQuantizationType.Q8_0).reshape(data.shape)
                tensor.data.copy_(torch.from_numpy(restored))
        else:
            writer.add_tensor(gguf_name, data.astype(np.float32))
        written[gguf_name] = data.shape
    missing = sorted(set(expected) - set(written))
    if missing:
        raise ValueError(f"export produced no tensor for {missing[:5]} (of {len(missing)}) in {template_gguf}")
    with atomic_path(out_path) as tmp:
        writer.write_header_to_file(tmp)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return {"tensors": len(written), "gguf_mb": round(out_path.stat().st_size / 2**20, 1)}
