"""DPO on preference pairs, on top of the SFT model.

The SFT adapter is merged into the base first and a NEW LoRA is trained with TRL's
DPOTrainer; with ``ref_model=None`` TRL computes the reference log-probs with that new
adapter disabled, i.e. from the merged SFT model itself, so no second model copy is held.
The saved adapter therefore applies on top of base + SFT adapter, in that order.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import DirectoryPath, FilePath, NonNegativeInt, PositiveFloat, PositiveInt

from rp_pipeline.training.common import (
    JobConfig,
    LossHistory,
    load_model_and_tokenizer,
    message_token_counter,
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
from rp_pipeline.training.sft import lora_config

LOGGED = ("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")


class DPOJob(JobConfig):
    base_model_dir: DirectoryPath
    sft_adapters: list[DirectoryPath]  # merged in order into the base: the policy and the reference
    pairs_file: FilePath
    output_dir: Path
    max_steps: PositiveInt = 5
    beta: PositiveFloat = 0.1
    learning_rate: PositiveFloat = 5e-5
    lora_target_modules: str | list[str] = "all-linear"
    lora_r: PositiveInt = 8
    lora_alpha: PositiveInt = 16
    max_length: PositiveInt = 512
    per_device_train_batch_size: PositiveInt = 2
    gradient_checkpointing: bool = False
    seed: NonNegativeInt = 0
    save_steps: NonNegativeInt = 0  # a resumable checkpoint every N steps (0: none)


def _messages(value: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: expected a non-empty list of messages")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def load_pairs(path: Path) -> list[dict[str, Any]]:
    """Conversational preference rows; only prompt/chosen/rejected are kept."""
    return [
        {k: _messages(row.get(k), f"{path}: row {i} '{k}'") for k in ("prompt", "chosen", "rejected")}
        for i, row in enumerate(read_jsonl(path))
    ]


def fit_prompts(pairs: list[dict[str, Any]], count_tokens, max_length: int) -> tuple[list[dict[str, Any]], int]:
    """Shorten each prompt to fit `max_length` with its longer answer by dropping its oldest
    exchanges at turn boundaries: the system prompt (the persona) and the turns the answers
    reply to stay. A late turn of a long dialogue is a pair like any other, where TRL would
    drop it whole. Returns the pairs and how many prompts were shortened."""
    fitted, shortened = [], 0
    for pair in pairs:
        prompt = pair["prompt"]
        system = prompt[:1] if prompt and prompt[0]["role"] == "system" else []
        turns = prompt[len(system) :]
        fixed = max(sum(count_tokens(m["content"]) for m in pair[k]) for k in ("chosen", "rejected"))
        fixed += sum(count_tokens(m["content"]) for m in system)
        costs = [count_tokens(m["content"]) for m in turns]
        start = 0
        # drop whole exchanges from the front: everything up to and including the next reply
        while fixed + sum(costs[start:]) > max_length and any(m["role"] == "assistant" for m in turns[start:]):
            start += next(i for i, m in enumerate(turns[start:]) if m["role"] == "assistant") + 1
        shortened += start > 0
        fitted.append({**pair, "prompt": system + turns[start:]})
    return fitted, shortened


def train(cfg: DPOJob, pipes) -> dict[str, Any]:
    """Train a DPO LoRA on the merged SFT model and save it with metrics.json."""
    started = time.perf_counter()
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    quiet_libraries()
    seed_everything(cfg.seed)
    torch.manual_seed(cfg.seed)
    pairs = load_pairs(cfg.pairs_file)
    model, tokenizer = load_model_and_tokenizer(cfg.base_model_dir, cfg.sft_adapters)
    pairs, shortened = fit_prompts(pairs, message_token_counter(tokenizer), cfg.max_length)
    pipes.log.info(
        f"dpo: {len(pairs)} pairs on base {cfg.base_model_dir} + sft {cfg.sft_adapters}; "
        f"{shortened} prompts shortened to their latest turns to fit max_length={cfg.max_length}"
    )

    staging, checkpoints, resume, resumed_from = prepare_output(cfg.output_dir, cfg.save_steps, pipes.log, "dpo")
    args = DPOConfig(
        output_dir=str(checkpoints),
        max_steps=cfg.max_steps,
        beta=cfg.beta,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        max_length=cfg.max_length,
        activation_checkpointing=cfg.gradient_checkpointing,
        logging_steps=1,
        include_num_input_tokens_seen="non_padding",
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=2,
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=cfg.seed,
        **train_precision(),
    )
    history = LossHistory.create(pipes.log, LOGGED)
    trainer = DPOTrainer(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=Dataset.from_list(pairs),
        processing_class=tokenizer,
        peft_config=lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_target_modules),
        callbacks=[history],
    )
    quiet_trainer(trainer)
    t_train = time.perf_counter()
    if len(trainer.train_dataset) == 0:
        # TRL drops pairs that still do not fit (a system prompt or answer alone over max_length).
        raise ValueError(
            f"all {len(pairs)} preference pairs were dropped: even shortened to their latest turn, their "
            f"prompts are longer than max_length={cfg.max_length} tokens; raise max_length"
        )
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    train_s = time.perf_counter() - t_train
    trainer.save_model(str(staging))
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return {}
    (staging / "training_args.bin").unlink(missing_ok=True)  # a pickle: not shipped with the adapter
    h = history.history

    def last(key: str):
        return h[key][-1][1] if h[key] else None

    metrics = {
        "loss_history": h["loss"],
        "reward_accuracy_history": h["rewards/accuracies"],
        "reward_margin_history": h["rewards/margins"],
        "train_rows": len(pairs),
        "prompts_shortened": shortened,
        "steps": int(trainer.state.global_step),
        "resumed_from_step": resumed_from,
        "final_loss": last("loss"),
        "final_reward_accuracy": last("rewards/accuracies"),
        "final_reward_margin": last("rewards/margins"),
        **history.summary(),
        "train_runtime_s": round(train_s, 3),
        "runtime_s": round(time.perf_counter() - started, 3),
    }
    write_json(staging / "metrics.json", {**metrics, "history": h})
    publish_dir(staging, cfg.output_dir)
    shutil.rmtree(checkpoints, ignore_errors=True)  # published: nothing left to resume
    pipes.log.info(f"dpo: saved adapter to {cfg.output_dir} (final loss {metrics['final_loss']})")
    return {**metrics, "output_dir": str(cfg.output_dir)}


if __name__ == "__main__":
    sys.exit(run_script(DPOJob, train))
