"""Supervised fine-tuning of the base chat model on the role-play corpus: a LoRA adapter, or
every parameter (`method: full`; the seeds found full fine-tuning fits characters better).

Run as ``python -m rp_pipeline.training.sft --config cfg.json`` (or under ``accelerate
launch`` / Dagster Pipes). LoRA saves only the adapter: the base stays shared and unchanged,
and DPO, quantization and eval merge it when they need a dense model. Full fine-tuning saves
the whole model as safetensors. The loss is on the character's replies only by default
(`assistant_only_loss`: TRL masks the system prompt and the user turns with the chat
template's generation markers, swapping in its training template for Qwen2.5's). A seeded
slice of the corpus (`eval_rows`) is held out and its loss reported before and after training.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, FilePath, NonNegativeInt, PositiveFloat, PositiveInt

from rp_pipeline.training.common import (
    JobConfig,
    LossHistory,
    ensure_dense_base,
    has_dense_weights,
    load_model_and_tokenizer,
    message_token_counter,
    optional_kernels,
    prepare_output,
    publish_dir,
    quiet_libraries,
    quiet_trainer,
    read_jsonl,
    run_script,
    seed_everything,
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
    method: Literal["lora", "full"] = "lora"
    lora_target_modules: str | list[str] = "all-linear"  # the base model's (assets/models/base_models.yaml)
    assistant_only_loss: bool = True
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    eval_rows: NonNegativeInt = 0  # corpus rows held out (seeded) for the evaluation loss
    save_steps: NonNegativeInt = 0  # a resumable checkpoint every N steps (0: none)


def hold_out(rows: list[dict[str, Any]], count: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, eval): `count` rows drawn with `seed`, never all of them (one row always trains)."""
    count = min(count, len(rows) - 1)
    if count <= 0:
        return rows, []
    held = set(random.Random(seed).sample(range(len(rows)), count))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


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


def lora_config(r: int, alpha: int, target_modules: str | list[str] = "all-linear"):
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=target_modules, task_type="CAUSAL_LM")


def build_trainer(cfg: SFTJob, model, tokenizer, rows, eval_rows, output_dir: Path, callbacks: list):
    """TRL's SFTTrainer as this script trains: a LoRA or every parameter, the loss masked to the
    assistant turns when `assistant_only_loss` (TRL tokenizes with `assistant_masks`)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(output_dir),
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5 name; TRL defaults it on
        max_length=cfg.max_length,
        assistant_only_loss=cfg.assistant_only_loss,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float under 1 is a share of the steps
        per_device_eval_batch_size=cfg.per_device_train_batch_size,
        logging_steps=1,
        include_num_input_tokens_seen="non_padding",
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=2,  # the latest and the one before, in case the latest was cut short
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=cfg.seed,
        **train_precision(),
        **optional_kernels()["trainer"],
    )
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_target_modules) if cfg.method == "lora" else None,
        callbacks=callbacks,
    )


def train(cfg: SFTJob, pipes) -> dict[str, Any]:
    """Fine-tune with TRL's SFTTrainer (a LoRA adapter or every parameter) and save the result with metrics.json."""
    started = time.perf_counter()
    import torch
    from accelerate import PartialState

    quiet_libraries()
    seed_everything(cfg.seed)
    torch.manual_seed(cfg.seed)
    if not has_dense_weights(cfg.base_model_dir):
        pipes.log.info(f"sft: converting {cfg.gguf_file} to dense safetensors in {cfg.base_model_dir} (once)")
    with PartialState().main_process_first():  # one rank converts a GGUF, the others then reuse it
        base = ensure_dense_base(cfg.base_model_dir, cfg.gguf_file)
    rows, eval_rows = hold_out(load_messages(cfg.train_file), cfg.eval_rows, cfg.seed)
    model, tokenizer = load_model_and_tokenizer(base, [])
    loaded = len(rows)
    rows, too_long = split_to_fit(rows, tokenizer, cfg.max_length)
    eval_rows, _ = split_to_fit(eval_rows, tokenizer, cfg.max_length)
    if not rows:
        raise ValueError(f"no training row fits max_length={cfg.max_length} tokens; raise max_length")
    pipes.log.info(
        f"sft ({cfg.method}): {loaded} rows ({len(rows)} after splitting at max_length, {too_long} over-long "
        f"exchanges left out), {len(eval_rows)} held out, base {base}, "
        f"{sum(p.numel() for p in model.parameters()):,} params"
    )

    staging, checkpoints, resume, resumed_from = prepare_output(cfg.output_dir, cfg.save_steps, pipes.log, "sft")
    history = LossHistory.create(pipes.log)
    trainer = build_trainer(cfg, model, tokenizer, rows, eval_rows, checkpoints, [history])
    quiet_trainer(trainer)
    eval_before = trainer.evaluate()["eval_loss"] if eval_rows else None
    t_train = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    train_s = time.perf_counter() - t_train
    eval_after = trainer.evaluate()["eval_loss"] if eval_rows else None
    # handles DeepSpeed/FSDP gathering; writes the adapter (LoRA) or the model (full) as safetensors + tokenizer
    trainer.save_model(str(staging))
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
        "method": cfg.method,
        "resumed_from_step": resumed_from,
        "eval_rows": len(eval_rows),
        "eval_loss_before": eval_before,
        "eval_loss": eval_after,
        **history.summary(),
        "train_runtime_s": round(train_s, 3),
        "runtime_s": round(time.perf_counter() - started, 3),
    }
    write_json(staging / "metrics.json", metrics)
    publish_dir(staging, cfg.output_dir)
    shutil.rmtree(checkpoints, ignore_errors=True)  # published: nothing left to resume
    saved = "adapter" if cfg.method == "lora" else "model"
    pipes.log.info(
        f"sft: saved the {saved} to {cfg.output_dir} (final loss {metrics['final_loss']}, "
        f"held-out loss {eval_before} -> {eval_after})"
    )
    return {**metrics, "output_dir": str(cfg.output_dir)}


if __name__ == "__main__":
    sys.exit(run_script(SFTJob, train))
