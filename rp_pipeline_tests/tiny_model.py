"""A tiny Qwen2-shaped chat model built in-process, so training tests never touch a hub.

The tokenizer is a byte-level BPE trained on a few multilingual lines (zh/en/es/ja plus the
reply-format tags), so any text encodes; the chat template is ChatML like Qwen's, with
``{% generation %}`` markers so TRL's ``assistant_only_loss`` can find assistant tokens.
Building it takes well under a second.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

CORPUS = [
    "你好，我是小雨，今天天气很好。<emotion>happy</emotion>",
    "我们一起去公园散步吧，好不好？<emotion>neutral</emotion>",
    "别难过，我会一直陪着你的。<emotion>sad</emotion>",
    "Hello! I'm Mia, a barista who loves rainy days.<emotion>happy</emotion>",
    "What are you reading today? Tell me about it.<emotion>surprised</emotion>",
    "<img><prompt>a cozy cafe at night</prompt><includePerson>true</includePerson></img>",
    "<img><prompt>cherry blossoms by the river</prompt><includePerson>false</includePerson></img>",
    "¡Hola! Me llamo Lucía y trabajo en una librería.<emotion>happy</emotion>",
    "¿Quieres tomar un café conmigo esta tarde?<emotion>neutral</emotion>",
    "こんにちは、私はハルです。よろしくお願いします。<emotion>happy</emotion>",
    "今日は雨ですね。一緒に映画を見ませんか？<emotion>neutral</emotion>",
    "You are a role-play character. Stay in character and reply briefly.",
    "system user assistant angry disgusted fearful happy neutral sad surprised other",
]


def build_tokenizer():
    """Train a byte-level BPE on CORPUS and wrap it as a fast tokenizer with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_model(out_dir: str | Path) -> Path:
    """Write a random-weight tiny Qwen2 causal LM + tokenizer (safetensors) to ``out_dir``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = Qwen2Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


_GGUF_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def build_tiny_gguf(model_dir: str | Path, out_file: str | Path) -> Path:
    """Write the tiny model as an F32 GGUF (llama.cpp's qwen2 names, tokenizer and chat
    template in the metadata), to exercise the GGUF -> safetensors path the embedded model
    takes. F32 keeps the round trip exact."""
    import json

    import gguf
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    cfg = model.config
    w = gguf.GGUFWriter(str(out_file), "qwen2")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    spec = json.loads(tok.backend_tokenizer.to_str())
    added = {t["content"]: t["id"] for t in spec["added_tokens"]}
    by_id = {i: t for t, i in {**spec["model"]["vocab"], **added}.items()}
    tokens = [by_id[i] for i in range(len(by_id))]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in added else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in spec["model"]["merges"]])
    w.add_eos_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id)
    w.add_chat_template(tok.chat_template)

    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":  # tied: llama.cpp writes no output.weight
            continue
        if name == "model.embed_tokens.weight":
            gguf_name = "token_embd.weight"
        elif name == "model.norm.weight":
            gguf_name = "output_norm.weight"
        else:  # model.layers.<i>.<rest>
            _, _, layer, rest = name.split(".", 3)
            gguf_name = f"blk.{layer}.{_GGUF_LAYER_NAMES[rest]}"
        w.add_tensor(gguf_name, tensor.numpy().astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(out_file)
