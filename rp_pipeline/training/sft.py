"""LoRA supervised fine-tuning of the base chat model on the role-play corpus.

Run as ``python -m rp_pipeline.training.sft --config cfg.json`` (or under ``accelerate
launch`` / Dagster Pipes). Only the final adapter is saved: the base stays shared and
unchanged, and DPO, quantization and eval merge the adapter when they need a dense model.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from pydantic import FilePath, NonNegativeInt, PositiveFloat, PositiveInt

from rp_pipeline.training.common import (
    JobConfig,
    LossHistory,
    ensure_dense_base,
    has_dense_weights,
    load_model_and_tokenizer,
    message_token_counter,
    publish_dir,
    quiet_libraries,
    quiet_trainer,
    read_jsonl,
    run_script,
    seed_everything,
    staging_dir,
    train_precision,
    write_json,
)


class SFTJob(JobConfig):
    base_model_dir: Path
    gguf_file: FilePath | None = None
    train_file: FilePath
    output_dir: Path
    max_steps: PositiveInt = 10
    learning_rate: PositiveFloat = 2e-4
    lora_r: PositiveInt = 8
    lora_alpha: PositiveInt = 16
    max_length: PositiveInt = 512
    per_device_train_batch_size: PositiveInt = 2
    gradient_accumulation_steps: PositiveInt = 1
    gradient_checkpointing: bool = False  # worth it only for big models on GPU
    seed: NonNegativeInt = 0
    assistant_only_loss: bool = False


def load_messages(path: Path) -> list[dict[str, Any]]:
    """Keep only ``messages`` (extra columns such as ids would confuse TRL's collator)."""
    rows = []
    for i, row in enumerate(read_jsonl(path)):
        msgs = row.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise ValueError(f"{path}: row {i} has no 'messages' list")
        rows.append({"messages": [{"role": m["role"], "content": m["content"]} for m in msgs]})
    return rows


def split_to_fit(rows: list[dict[str, Any]], tokenizer, max_length: int) -> tuple[list[dict[str, Any]], int]:
    """Rows over `max_length` tokens, counted with the model's own tokenizer, split at turn
    boundaries under their system prompt (`core.corpus.split_at_turns`, the same split the
    corpus does with a tokenizer-free estimate), so the trainer never truncates a reply.
    Returns the rows and how many single exchanges were too long to keep."""
    from rp_pipeline.core.corpus import split_at_turns
    from rp_pipeline.core.models import Message

    count = message_token_counter(tokenizer)
    out, too_long = [], 0
    for row in rows:
        split = split_at_turns([Message(**m) for m in row["messages"]], max_length, count)
        out += [{"messages": [m.model_dump() for m in part]} for part in split.parts]
        too_long += split.too_long_exchanges
    return out, too_long


def lora_config(r: int, alpha: int):
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def train(cfg: SFTJob, pipes) -> dict[str, Any]:
    """Fine-tune a LoRA adapter with TRL's SFTTrainer and save it with metrics.json."""
    started = time.perf_counter()
    import torch
    from accelerate import PartialState
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    quiet_libraries()
    seed_everything(cfg.seed)
    torch.manual_seed(cfg.seed)
    if not has_dense_weights(cfg.base_model_dir):
        pipes.log.info(f"sft: converting {cfg.gguf_file} to dense safetensors in {cfg.base_model_dir} (once)")
    with PartialState().main_process_first():  # one rank converts a GGUF, the others then reuse it
        base = ensure_dense_base(cfg.base_model_dir, cfg.gguf_file)
    rows = load_messages(cfg.train_file)
    model, tokenizer = load_model_and_tokenizer(base, [])
    loaded = len(rows)
    rows, too_long = split_to_fit(rows, tokenizer, cfg.max_length)
    if not rows:
        raise ValueError(f"no training row fits max_length={cfg.max_length} tokens; raise max_length")
    pipes.log.info(
        f"sft: {loaded} rows ({len(rows)} after splitting at max_length, {too_long} over-long "
        f"exchanges left out), base {base}, {sum(p.numel() for p in model.parameters()):,} params"
    )

    staging = staging_dir(cfg.output_dir)
    args = SFTConfig(
        output_dir=str(staging),
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5 name; TRL defaults it on
        max_length=cfg.max_length,
        assistant_only_loss=cfg.assistant_only_loss,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=cfg.seed,
        **train_precision(),
    )
    history = LossHistory.create(pipes.log)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(cfg.lora_r, cfg.lora_alpha),
        callbacks=[history],
    )
    quiet_trainer(trainer)
    t_train = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t_train
    trainer.save_model(str(staging))  # handles DeepSpeed/FSDP gathering; writes adapter + tokenizer
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return {}
    (staging / "training_args.bin").unlink(missing_ok=True)  # a pickle: not shipped with the adapter
    losses = history.history["loss"]
    metrics = {
        "loss_history": losses,
        "train_rows": len(rows),
        "steps": int(trainer.state.global_step),
        "final_loss": losses[-1][1] if losses else None,
        "train_runtime_s": round(train_s, 3),
        "runtime_s": round(time.perf_counter() - started, 3),
    }
    write_json(staging / "metrics.json", metrics)
    publish_dir(staging, cfg.output_dir)
    pipes.log.info(f"sft: saved adapter to {cfg.output_dir} (final loss {metrics['final_loss']})")
    return {**metrics, "output_dir": str(cfg.output_dir)}


if __name__ == "__main__":
    sys.exit(run_script(SFTJob, train))
