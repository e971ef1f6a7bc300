"""Shared plumbing for the standalone training scripts (sft, dpo, quantize, generate).

The scripts run outside the Dagster code location (plain ``python``, ``accelerate launch``,
or Dagster Pipes in a container), so this module imports only the standard library (with
``core.atomic``, itself standard library only), pydantic and dagster_pipes at import time;
torch/transformers/peft are imported inside the functions that need them, so a bad config
fails in well under a second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, PositiveInt, ValidationError

from rp_pipeline.core.atomic import replace_dir, write_text_atomic

_log = logging.getLogger("rp_pipeline.training")


class JobConfig(BaseModel):
    """Base of every script config: unknown keys are errors, so a typo never silently
    falls back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # CPU threads for torch (None: torch's default, all cores). Set 1 when the cores are
    # shared with another busy process (e.g. a llama.cpp server): measured on 2 cores, a
    # 0.5B forward+backward took ~6.5 s with 1 thread and 25-40 s with 2 (OpenMP spin-waits).
    cpu_threads: PositiveInt | None = None


C = TypeVar("C", bound=JobConfig)


class ConfigError(Exception):
    """A config file that is unreadable or does not validate; the message names the field."""


def load_config(cls: type[C], path: str | Path) -> C:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        lines = [f"invalid config {path} for {cls.__name__}:"]
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "<root>"
            lines.append(f"  field '{field}': {err['msg']}")
        raise ConfigError("\n".join(lines)) from exc


# ---------------------------------------------------------------- reporting (Pipes)


class _LocalPipes:
    """Stand-in with the two PipesContext methods we use, for runs Dagster did not launch
    (and for non-zero ranks under ``accelerate launch``, so only rank 0 reports)."""

    def __init__(self, quiet: bool = False):
        self.log = logging.getLogger("rp_pipeline.training.local")
        if not self.log.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            self.log.addHandler(handler)
            self.log.propagate = False
        self.log.setLevel(logging.WARNING if quiet else logging.INFO)
        self.materializations: list[dict[str, Any]] = []

    def report_asset_materialization(self, metadata: dict[str, Any] | None = None, **_: Any) -> None:
        self.materializations.append(dict(metadata or {}))
        self.log.info("materialization %s", json.dumps(metadata, ensure_ascii=False))


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"


@contextlib.contextmanager
def pipes_session() -> Iterator[Any]:
    """Yield an object with ``.log.info`` and ``.report_asset_materialization(metadata=)``:
    the real Pipes context when Dagster launched us, else a stderr logger."""
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    if _is_main_rank() and PipesEnvVarParamsLoader().is_dagster_pipes_process():
        with open_dagster_pipes() as pipes:
            yield pipes
    else:
        yield _LocalPipes(quiet=not _is_main_rank())


def run_script(cls: type[C], work: Callable[[C, Any], dict[str, Any]], argv: list[str] | None = None) -> int:
    """The shared ``main``: parse ``--config``, validate, run ``work(cfg, pipes)`` and report
    the metadata it returns. A bad config exits 2 with the field named on stderr."""
    parser = argparse.ArgumentParser(description=work.__doc__)
    parser.add_argument("--config", required=True, help="path to the job's JSON config")
    args, _unknown = parser.parse_known_args(argv)  # Pipes/accelerate may add their own flags
    with pipes_session() as pipes:
        try:
            cfg = load_config(cls, args.config)
        except ConfigError as exc:
            print(str(exc), file=sys.stderr, flush=True)
            if not isinstance(pipes, _LocalPipes):
                pipes.log.error(str(exc))
            raise SystemExit(2) from None
        if cfg.cpu_threads:  # before torch is imported (the scripts import it lazily)
            os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(cfg.cpu_threads)
        keep_freed_memory_on_cpu()
        started = time.perf_counter()
        metadata = work(cfg, pipes)
        metadata.setdefault("runtime_s", round(time.perf_counter() - started, 3))
        if _is_main_rank():
            pipes.report_asset_materialization(metadata=metadata)
    return 0


def keep_freed_memory_on_cpu() -> bool:
    """On CPU, have glibc keep freed memory in the process instead of handing it back.

    glibc serves every block over 32 MiB (activations, gradients, logits) with a fresh mmap
    and unmaps it on free, so each training step faults its gigabytes in again, page by
    page: on the 2-core EPYC VM a first touch ran at 1.6 GB/s against 33 GB/s for memory
    already mapped. Full SFT of the 0.5B there, steps 2-4 of the learn corpus: fp32 32-33 s a
    step as glibc does by default, 21-29 s with freed memory kept; bf16 autocast 27-33 s and
    12-18 s. With mmap off and no trimming the heap is reused from step to step (peak RSS
    unchanged, 12.4 GB).
    Not on a GPU, where host copies of the weights freed after loading would stay resident
    in every rank. True when applied (Linux with glibc)."""
    import ctypes
    import ctypes.util

    import torch

    if torch.cuda.is_available() or sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>; a threshold of -1 turns trimming off (mallopt(3))
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, -1))


# ---------------------------------------------------------------- files


def write_json(path: str | Path, payload: Any) -> None:
    """Write JSON via a temp file + rename so readers never see half a file."""
    write_text_atomic(path, json.dumps(payload, ensure_ascii=False, indent=2))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not valid JSON: {exc}") from exc
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def staging_dir(final: str | Path) -> Path:
    """A sibling work dir for ``final``, emptied of any crashed run's leftovers. The name is
    deterministic so every rank of a multi-process launch writes to the same place."""
    final = Path(final)
    staging = final.with_name(f".{final.name}.partial")
    if _is_main_rank():
        shutil.rmtree(staging, ignore_errors=True)
    return staging


def checkpoints_dir(final: str | Path) -> Path:
    """Where a run of ``final`` keeps its intermediate checkpoints: a sibling that outlives a
    killed run (unlike the staging dir) and goes once ``final`` is published."""
    final = Path(final)
    return final.with_name(f".{final.name}.checkpoints")


def last_checkpoint(directory: str | Path) -> Path | None:
    """The latest complete Trainer checkpoint (``checkpoint-N`` with its ``trainer_state.json``,
    which the Trainer writes last), or None. A checkpoint cut short by a kill is passed over,
    including one killed while writing that file (the Trainer writes it in place: it must parse)."""
    complete = [
        path
        for path in Path(directory).glob("checkpoint-*")
        if path.name.removeprefix("checkpoint-").isdigit() and _complete_state(path / "trainer_state.json")
    ]
    return max(complete, key=lambda path: int(path.name.removeprefix("checkpoint-")), default=None)


def _complete_state(path: Path) -> bool:
    try:
        return "global_step" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError):
        return False


def prepare_output(final: str | Path, save_steps: int, log: Any, script: str) -> tuple[Path, Path, Path | None, int]:
    """(staging dir, checkpoints dir, checkpoint to resume from or None, its step) for a run
    writing ``final``; a resumable checkpoint is only looked for when the run saves them."""
    staging, checkpoints = staging_dir(final), checkpoints_dir(final)
    resume = last_checkpoint(checkpoints) if save_steps else None
    step = int(resume.name.removeprefix("checkpoint-")) if resume else 0
    if resume:
        log.info(f"{script}: resuming from {resume} (step {step}), left by an interrupted run")
    return staging, checkpoints, resume, step


def publish_dir(staging: str | Path, final: str | Path) -> Path:
    """Move a finished staging dir into place: a crash before this leaves ``final``
    untouched (old version or absent), never half written (``core.atomic.replace_dir``)."""
    return replace_dir(staging, final)


# ---------------------------------------------------------------- models


def has_dense_weights(model_dir: str | Path) -> bool:
    d = Path(model_dir)
    return (d / "model.safetensors").is_file() or (d / "model.safetensors.index.json").is_file()


def ensure_dense_base(base_model_dir: str | Path, gguf_file: str | Path | None) -> Path:
    """Return a dir holding fp32 safetensors of the base model, converting a GGUF once.

    Training needs dense weights; the embedded default model ships only as a GGUF, so the
    first run dequantizes it (about a minute for 0.5B) and every later run reuses the result.
    """
    base = Path(base_model_dir)
    if has_dense_weights(base):
        return base
    if gguf_file is None:
        raise FileNotFoundError(f"{base} has no model.safetensors and no gguf_file was given to build it from")
    gguf = Path(gguf_file)
    if not gguf.is_file():
        raise FileNotFoundError(f"gguf_file {gguf} does not exist")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{gguf} carries no chat template; the training scripts need one")
    # dequantize=True makes transformers drop the quantizer, so save_pretrained writes plain weights
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    staging = staging_dir(base)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    base.parent.mkdir(parents=True, exist_ok=True)
    publish_dir(staging, base)
    _log.info("converted %s to dense safetensors in %.1fs", gguf, time.perf_counter() - t0)
    return base


def load_tokenizer(model_dir: str | Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def message_token_counter(tokenizer) -> Callable[[str], int]:
    """Tokens one message costs inside the chat template, counted with the model's own
    tokenizer: its content plus what the template adds around it (role markers; the largest
    over roles, +1 for a BPE merge across the boundary), measured after a system message so a
    template's default system prompt is not counted as overhead."""

    def templated(messages: list[dict[str, str]]) -> int:
        return len(
            tokenizer(tokenizer.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]
        )

    system = [{"role": "system", "content": ""}]
    overhead = 1 + max(
        templated(system),
        *(templated([*system, {"role": r, "content": ""}]) - templated(system) for r in ("user", "assistant")),
    )

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]) + overhead

    return count


def load_model_and_tokenizer(base_model_dir: str | Path, adapters: list[str] | list[Path] = ()):
    """Load the fp32 dense base from safetensors and merge each LoRA adapter in order, so
    later stages (DPO, quantization, eval) see one plain model."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(base_model_dir), dtype=torch.float32, use_safetensors=True, **optional_kernels()["model"]
    )
    if adapters:
        from peft import PeftModel

        for adapter in adapters:
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    tokenizer = load_tokenizer(base_model_dir)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def quiet_libraries() -> None:
    """Progress bars are noise in Pipes/Dagster logs; progress goes through ``pipes.log``."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    if "datasets" in sys.modules:  # not imported just for this: it costs a second or two
        sys.modules["datasets"].disable_progress_bars()


def quiet_trainer(trainer) -> None:
    """Drop the Trainer's stdout printer: LossHistory already logs every step."""
    from transformers import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def seed_everything(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


class LossHistory:
    """A TrainerCallback (built lazily to keep imports light) that keeps every logged value
    per step (with the learning rate) and streams a progress line to the Pipes log: step,
    values, learning rate, input tokens per second (when the Trainer counts them), elapsed
    time and, on a GPU, peak memory. `summary()` is what the run reports as numbers."""

    @staticmethod
    def create(log: Any, keys: tuple[str, ...] = ("loss",)):
        from transformers import TrainerCallback

        class _Callback(TrainerCallback):
            def __init__(self):
                self.history: dict[str, list[list[float]]] = {k: [] for k in (*keys, "learning_rate")}
                self.started = time.perf_counter()
                self.tokens = 0

            def on_train_begin(self, args, state, control, **kwargs):
                self.started = time.perf_counter()

            def on_log(self, args, state, control, logs=None, **kwargs):
                if not logs or not state.is_world_process_zero:
                    return
                step = int(state.global_step)
                seen = {k: float(logs[k]) for k in self.history if k in logs}
                for k, v in seen.items():
                    self.history[k].append([step, v])
                self.tokens = int(getattr(state, "num_input_tokens_seen", 0) or self.tokens)
                if seen.keys() - {"learning_rate"}:
                    parts = " ".join(f"{k}={v:.4g}" for k, v in seen.items())
                    speed = f" tok/s={self.tokens_per_second():.0f}" if self.tokens else ""
                    memory = f" gpu_mem={peak_gpu_memory_mb():.0f}MB" if peak_gpu_memory_mb() else ""
                    log.info(f"step {step}/{state.max_steps} {parts}{speed}{memory} elapsed={self.elapsed():.1f}s")

            def elapsed(self) -> float:
                return time.perf_counter() - self.started

            def tokens_per_second(self) -> float:
                return self.tokens / max(self.elapsed(), 1e-9)

            def summary(self) -> dict[str, Any]:
                return {
                    "learning_rate_history": self.history["learning_rate"],
                    "input_tokens": self.tokens,
                    "tokens_per_second": round(self.tokens_per_second(), 2),
                    "peak_gpu_memory_mb": peak_gpu_memory_mb(),
                }

        return _Callback()


def peak_gpu_memory_mb() -> float | None:
    """Peak CUDA memory this process allocated, in MB; None without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def optional_kernels() -> dict[str, dict[str, Any]]:
    """Faster kernels on a GPU when their packages are installed, never required:
    FlashAttention-2 (with padding-free batching, which needs it) and Liger's fused kernels.
    {"model": from_pretrained kwargs, "trainer": SFT/DPO config kwargs}; empty on CPU."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        return {"model": {}, "trainer": {}}
    model: dict[str, Any] = {}
    trainer: dict[str, Any] = {}
    if importlib.util.find_spec("flash_attn") is not None:
        model["attn_implementation"] = "flash_attention_2"
        trainer["padding_free"] = True
    if importlib.util.find_spec("liger_kernel") is not None:
        trainer["use_liger_kernel"] = True
    return {"model": model, "trainer": trainer}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX). Only then is bf16
    autocast worth it on CPU: elsewhere torch emulates it and a step gets slower, not faster."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def train_precision() -> dict[str, Any]:
    """TrainingArguments for the hardware at hand. CUDA gets bf16 where the GPU supports it.
    A CPU with native bf16 gets bf16 autocast beside ``use_cpu`` (weights and optimizer stay
    fp32; on a 2-core AVX512-BF16 EPYC the matmuls ran 6x faster and a full-parameter step of
    the 0.5B 1.6x: see keep_freed_memory_on_cpu); any other CPU fp32, because TRL's bf16
    default refuses there."""
    import torch

    if torch.cuda.is_available():
        return {"use_cpu": False, "bf16": torch.cuda.is_bf16_supported(), "fp16": False}
    return {"use_cpu": True, "bf16": cpu_has_native_bf16(), "fp16": False}
