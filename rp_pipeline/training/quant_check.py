"""Corpus slices for calibration and the held-out check every quantization method reports.

The training corpus (``messages.jsonl``) is ordered by a seeded hash of each row's id, so the
choice does not depend on the file's order and is the same on every run: the first rows are
the held-out slice, the next ones the calibration slice (GPTQ), and the two never overlap.
Held-out rows come first so that changing the number of calibration rows leaves the held-out
slice, and hence the figures of two runs, comparable.

The check renders each held-out row with the model's chat template (tokens capped at
``max_length``), records the reference model's top-1 prediction and negative log-likelihood
at every next-token position, and compares the quantized model on the same tokens: top-1
agreement (pooled over all positions) and the perplexity ratio (quantized / reference).
Only two small vectors per row are kept, never the logits (151k wide for Qwen).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from pydantic import Field, FilePath, NonNegativeInt, PositiveInt

from rp_pipeline.training.common import JobConfig, read_jsonl


class CorpusSliceJob(JobConfig):
    """The fields every quantization script shares: where the corpus is and how to slice it."""

    corpus_file: FilePath  # the corpus's messages.jsonl: {"id", "messages": [{"role", "content"}]}
    heldout_rows: PositiveInt = 16
    calibration_rows: PositiveInt = 64  # used by GPTQ; the other methods only skip them
    max_length: int = Field(default=512, ge=16, description="tokens per rendered row (longer rows are cut)")
    seed: NonNegativeInt = 0


def _row_key(row: dict[str, Any]) -> str:
    if "id" in row:
        return str(row["id"])
    return json.dumps(row["messages"], ensure_ascii=False, sort_keys=True)


def corpus_slices(
    rows: list[dict[str, Any]], heldout_rows: int, calibration_rows: int, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(held-out, calibration): disjoint, chosen by a seeded hash of the row id.

    A corpus smaller than both slices together is split in proportion (at least one row
    each); fewer than two rows cannot give both and is an error."""
    for i, row in enumerate(rows):
        if not isinstance(row.get("messages"), list) or not row["messages"]:
            raise ValueError(f"corpus row {i} has no 'messages' list")
    if len(rows) < 2:
        raise ValueError(f"corpus has {len(rows)} row(s): the held-out and calibration slices need at least 2")
    ordered = sorted(rows, key=lambda r: hashlib.sha256(f"{seed}:{_row_key(r)}".encode()).hexdigest())
    n_held, n_cal = heldout_rows, calibration_rows
    if len(rows) < n_held + n_cal:
        n_held = min(len(rows) - 1, max(1, round(len(rows) * heldout_rows / (heldout_rows + calibration_rows))))
        n_cal = len(rows) - n_held
    return ordered[:n_held], ordered[n_held : n_held + n_cal]


def render_rows(rows: list[dict[str, Any]], tokenizer, max_length: int) -> list[list[int]]:
    """Token ids of each row rendered with the chat template, cut to ``max_length``; rows
    under two tokens (nothing to predict) are dropped."""
    out = []
    for row in rows:
        text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_length]
        if len(ids) >= 2:
            out.append(list(ids))
    return out


def load_slices(cfg: CorpusSliceJob, tokenizer) -> tuple[list[list[int]], list[list[int]]]:
    """(held-out token ids, calibration token ids) for a job config."""
    held, cal = corpus_slices(read_jsonl(cfg.corpus_file), cfg.heldout_rows, cfg.calibration_rows, cfg.seed)
    heldout = render_rows(held, tokenizer, cfg.max_length)
    if not heldout:
        raise ValueError(f"{cfg.corpus_file}: no held-out row renders to 2 tokens or more")
    return heldout, render_rows(cal, tokenizer, cfg.max_length)


def unique_bytes(state: dict) -> int:
    """Bytes of a state dict counting shared (tied) storage once, as safetensors stores it."""
    seen, total = set(), 0
    for t in state.values():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.numel())
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


@dataclass(frozen=True)
class TokenStats:
    """Per held-out row: the model's top-1 next token and the NLL of the true next token."""

    top1: list[Any]  # one LongTensor per row (on CPU)
    nll: list[Any]  # one FloatTensor per row (on CPU)

    @property
    def tokens(self) -> int:
        return sum(int(t.numel()) for t in self.top1)

    def perplexity(self) -> float:
        import torch

        return math.exp(float(torch.cat(self.nll).double().mean()))


def token_stats(model, rows: list[list[int]]) -> TokenStats:
    """Run ``model`` over each row (one at a time: no padding to get wrong) on its own device."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    top1, nll = [], []
    with torch.no_grad():
        for ids in rows:
            inputs = torch.tensor([ids], device=device)
            logits = model(input_ids=inputs).logits[0, :-1].float()
            top1.append(logits.argmax(-1).cpu())
            nll.append(F.cross_entropy(logits, inputs[0, 1:], reduction="none").cpu())
    return TokenStats(top1=top1, nll=nll)


def compare_stats(reference: TokenStats, quantized: TokenStats) -> dict[str, float | int]:
    """Top-1 agreement and perplexity ratio of ``quantized`` against ``reference``, plus the
    largest per-token NLL change (a few tokens gone badly wrong hide in a mean)."""
    if [t.shape for t in reference.top1] != [t.shape for t in quantized.top1]:
        raise ValueError("reference and quantized stats cover different tokens")
    agree = sum(int((r == q).sum()) for r, q in zip(reference.top1, quantized.top1, strict=True))
    worst = max(float((r - q).abs().max()) for r, q in zip(reference.nll, quantized.nll, strict=True))
    ppl_ref, ppl_quant = reference.perplexity(), quantized.perplexity()
    return {
        "heldout_rows": len(reference.top1),
        "heldout_tokens": reference.tokens,
        "top1_agreement": round(agree / reference.tokens, 6),
        "ppl_reference": round(ppl_ref, 6),
        "ppl_quantized": round(ppl_quant, 6),
        "ppl_ratio": round(ppl_quant / ppl_ref, 6),
        "nll_max_abs_diff": round(worst, 6),
    }
