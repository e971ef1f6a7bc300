"""Batch chat generation for evaluation, from a dense model (+ adapters) or an int8 one.

Each request is rendered with the model's own chat template (``add_generation_prompt``),
and only the new tokens are decoded. Every row is sampled with its own seed derived from
the job seed and the row id, so a row's output does not depend on the file's order.
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Literal

from pydantic import DirectoryPath, Field, FilePath, NonNegativeFloat, NonNegativeInt, PositiveInt, model_validator

from rp_pipeline.core.atomic import write_text_atomic
from rp_pipeline.training.common import (
    JobConfig,
    load_model_and_tokenizer,
    quiet_libraries,
    read_jsonl,
    run_script,
    seed_everything,
)


class GenerateJob(JobConfig):
    model_dir: DirectoryPath
    kind: Literal["dense", "quantized"]
    adapters: list[DirectoryPath] = Field(default_factory=list)
    requests_file: FilePath
    output_file: Path
    max_new_tokens: PositiveInt = 64
    temperature: NonNegativeFloat = 0.7  # 0 means greedy
    top_p: float = Field(default=0.9, gt=0, le=1)
    seed: NonNegativeInt = 0

    @model_validator(mode="after")
    def _adapters_only_for_dense(self):
        if self.kind == "quantized" and self.adapters:
            raise ValueError("adapters: a quantized model already has its adapters merged; leave it empty")
        return self


def load_requests(path: Path) -> list[dict[str, Any]]:
    """Rows are {"id", "messages"} for one reply, or {"id", "messages", "user_turns"} to play a
    scripted conversation: each user turn is appended and answered in turn (evaluation)."""
    out = []
    for i, row in enumerate(read_jsonl(path)):
        if not isinstance(row.get("messages"), list) or "id" not in row:
            raise ValueError(f"{path}: row {i} needs 'id' and a 'messages' list")
        turns = row.get("user_turns", [])
        if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            raise ValueError(f"{path}: row {i}: 'user_turns' must be a list of strings")
        out.append({"id": str(row["id"]), "messages": row["messages"], "user_turns": turns})
    return out


def _eos_ids(model, tokenizer) -> list[int]:
    """Stop on the tokenizer's eos and anything the generation config lists (Qwen: both
    <|im_end|> and <|endoftext|>)."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def generate_job(cfg: GenerateJob, pipes) -> dict[str, Any]:
    """Generate one reply per request and write them as JSONL."""
    started = time.perf_counter()
    quiet_libraries()
    import torch

    if cfg.kind == "quantized":
        from rp_pipeline.training.quantize import load_quantized

        model, tokenizer = load_quantized(cfg.model_dir)
    else:
        model, tokenizer = load_model_and_tokenizer(cfg.model_dir, cfg.adapters)
        if torch.cuda.is_available():
            model = model.to("cuda")
    model.eval()
    requests = load_requests(cfg.requests_file)
    eos = _eos_ids(model, tokenizer)
    pipes.log.info(f"generate: {len(requests)} requests with {cfg.kind} model {cfg.model_dir}")

    def reply(messages: list[dict[str, str]], seed: int) -> tuple[str, int, float]:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
        seed_everything(seed)
        sampling = {"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p}
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(
                **inputs,
                max_new_tokens=cfg.max_new_tokens,
                eos_token_id=eos,
                pad_token_id=tokenizer.pad_token_id,
                **(sampling if cfg.temperature > 0 else {"do_sample": False}),
            )
        new = out[0, inputs["input_ids"].shape[1] :]
        return tokenizer.decode(new, skip_special_tokens=True).strip(), int(new.shape[0]), time.perf_counter() - t0

    rows, total_new, total_gen_s = [], 0, 0.0
    for req in requests:
        messages, replies, new_tokens, seconds = list(req["messages"]), [], 0, 0.0
        seed = cfg.seed ^ zlib.crc32(req["id"].encode("utf-8"))
        for turn, user in enumerate(req["user_turns"] or [None]):
            if user is not None:
                messages.append({"role": "user", "content": user})
            content, n, s = reply(messages, seed + turn)
            messages.append({"role": "assistant", "content": content})
            replies.append(content)
            new_tokens, seconds = new_tokens + n, seconds + s
        rows.append(
            {
                "id": req["id"],
                "content": replies[-1],
                "replies": replies,
                "new_tokens": new_tokens,
                "seconds": round(seconds, 4),
            }
        )
        total_new += new_tokens
        total_gen_s += seconds
        pipes.log.info(f"generate: {len(rows)}/{len(requests)} rows, {total_new} tokens")

    out_path = write_text_atomic(cfg.output_file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    metrics = {
        "rows": len(rows),
        "new_tokens": total_new,
        "tokens_per_s": round(total_new / total_gen_s, 3) if total_gen_s > 0 else 0.0,
        "runtime_s": round(time.perf_counter() - started, 3),
        "output_file": str(out_path),
    }
    pipes.log.info(f"generate: {metrics}")
    return metrics


if __name__ == "__main__":
    sys.exit(run_script(GenerateJob, generate_job))
