"""What the unpartitioned assets hand each other: small typed records that point at files.

The heavy data (corpus rows, adapters, GGUF files) stays on disk; these records say where it
is and which versions it came from, so a consumer reads fields instead of string keys and a
malformed hand-off fails at the boundary, naming the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from rp_pipeline.core.judging import Calibration, PairwiseSummary, RubricVerdict
from rp_pipeline.core.models import CorpusRow, Record
from rp_pipeline.core.storage import Location, local_copy, location, published_files

ROWS_FILE = "rows.jsonl"  # every corpus version's own rows, beside its exports


def _rows_lines(corpus_dir: Location) -> list[str]:
    """The rows file's lines; on object storage only once the export was published whole
    (FileNotFoundError, as for a missing version, while its upload is unfinished)."""
    published_files(corpus_dir)
    return (corpus_dir / ROWS_FILE).read_text(encoding="utf-8").splitlines()


def corpus_row_ids(corpus_dir: Location) -> list[str]:
    """The row ids of the corpus version exported to `corpus_dir` (without validating each row)."""
    return [json.loads(line)["id"] for line in _rows_lines(corpus_dir)]


class CorpusArtifact(Record):
    """One corpus version and its exports (see core/corpus.py export_corpus)."""

    version: str
    dir: str
    rows: int = Field(ge=1)
    sharegpt: str
    messages: str
    dataset_info: str
    hf_dataset: str
    parquet: str

    @property
    def rows_file(self) -> Location:
        return location(self.dir) / ROWS_FILE

    def load_rows(self) -> list[CorpusRow]:
        return [CorpusRow.model_validate(json.loads(line)) for line in _rows_lines(location(self.dir))]

    def for_scripts(self, work_dir: Path) -> CorpusArtifact:
        """This version with `messages` as a local file, for the training scripts (they open
        local paths): itself when local; from object storage, once the export is published,
        messages.jsonl is copied to `work_dir/corpus/<version>/` (once per version and machine)."""
        source = location(self.messages)
        if isinstance(source, Path):
            return self
        manifest = published_files(location(self.dir)) or {}
        dest = local_copy(source, work_dir / "corpus" / self.version / source.name, manifest.get(source.name))
        return self.model_copy(update={"messages": str(dest)})


class PairsArtifact(Record):
    """One version of the DPO preference pairs: `file` in TRL's conversational format (what DPO
    trains on), `sharegpt` and `dataset_info` for LLaMA-Factory (`ranking: true`)."""

    version: str
    file: str
    sharegpt: str | None = None  # None for versions written before the LLaMA-Factory export
    dataset_info: str | None = None
    pairs: int = Field(ge=1)


class Checkpoint(Record):
    """A trained model version: LoRA adapters applied in order on a dense model, which is the
    base (`method: lora`) or the fully fine-tuned SFT model in `model_dir` (`method: full`).
    `base_model_dir` is always the model training started from, the baseline evaluation
    compares with."""

    version: str
    stage: Literal["sft", "dpo"]
    base_model_dir: str
    model_dir: str | None = None  # full SFT's weights (safetensors), under the adapters
    adapters: list[str] = Field(default_factory=list)
    corpus_version: str
    corpus_rows: int = 0
    corpus_languages: dict[str, int] = Field(default_factory=dict)  # role-play rows per language
    method: Literal["lora", "full"] = "lora"  # how SFT trained (DPO always adds a LoRA)
    steps: dict[str, int] = Field(default_factory=dict)  # optimizer steps per stage (sft, dpo)
    sft_version: str | None = None  # set on a DPO checkpoint
    pairs_version: str | None = None  # set on a DPO checkpoint

    @model_validator(mode="after")
    def _weights(self) -> Checkpoint:
        if (self.method == "full") != (self.model_dir is not None):
            raise ValueError("model_dir: set exactly when method is full")
        if self.method == "lora" and not self.adapters:
            raise ValueError("adapters: a LoRA checkpoint has at least one adapter")
        return self

    @property
    def dense_dir(self) -> str:
        """The dense model the adapters apply to."""
        return self.model_dir or self.base_model_dir


class QuantizedModel(Record):
    """The servable model: a llama.cpp GGUF file, an optimum-quanto directory, or a GPTQ
    compressed-tensors checkpoint directory (vLLM loads it; transformers with compressed-tensors)."""

    version: str
    format: Literal["gguf", "quanto", "gptq"]
    path: str  # the .gguf file, or the quanto / gptq model directory
    base_gguf: str | None = None  # the base model as GGUF, served beside it in evaluation
    checkpoint: Checkpoint  # what was quantized


class ScenarioResult(Record):
    scenario: str
    replies: list[str]
    verdict: RubricVerdict | None  # None: the judge's verdict did not parse


class ModelEval(Record):
    """One model version played through the eval scenarios."""

    name: Literal["tuned", "base"]
    model_version: str
    scores: dict[str, float]  # judge means per dimension, and judge_failures
    metrics: dict[str, float]  # automatic metrics from the rule engine, each with its _low/_high interval
    reply_values: dict[str, list[float]] = Field(default_factory=dict)  # per reply, for significance tests
    scenarios: list[ScenarioResult]
    pairwise: PairwiseSummary | None = None  # against the baseline (the base model); None for the baseline


class EvalReport(Record):
    evaluated_at: str
    model: QuantizedModel
    calibration: Calibration  # whether the judge's scores may rank anything
    results: list[ModelEval] = Field(min_length=1)
