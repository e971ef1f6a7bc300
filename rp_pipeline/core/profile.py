"""A run profile: every size and knob of one pipeline run in one YAML file.

`assets/profiles/demo.yaml` is small enough for 2 CPU cores; `full.yaml` is the size the
field notes worked at. Switching is one environment variable (RP_PROFILE).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rp_pipeline.core.cleaning import CleaningConfig
from rp_pipeline.core.corpus import CorpusConfig
from rp_pipeline.core.simulate import SimulationConfig

QUANTIZATION_FIELDS = frozenset(
    {"quantization", "heldout_rows", "calibration_rows", "quantization_max_length", "gptq_group_size"}
)


class TrainingProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(default="embedded", description='"embedded" or a local HF model directory (safetensors)')
    sft_steps: int = Field(default=10, ge=1)
    dpo_steps: int = Field(default=5, ge=1)
    max_length: int = Field(default=512, ge=32)
    batch_size: int = Field(default=2, ge=1)
    method: Literal["lora", "full"] = Field(
        default="lora", description="SFT trains a LoRA adapter or every parameter (DPO always adds a LoRA)"
    )
    assistant_only_loss: bool = Field(default=True, description="SFT loss on the character's replies only")
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    sft_eval_rows: int = Field(default=0, ge=0, description="corpus rows held out of SFT for its evaluation loss")
    gpus: int = Field(default=0, ge=0, description="GPUs SFT and DPO run on (0: CPU); more than one: accelerate launch")
    deepspeed: Literal["zero2", "zero3"] | None = Field(
        default=None, description="DeepSpeed ZeRO config from docker/deepspeed/ for SFT and DPO (needs GPUs)"
    )
    checkpoint_every: int = Field(
        default=0,
        ge=0,
        description="SFT and DPO save a resumable checkpoint every N steps (0: never); materializing again "
        "after a killed run resumes from the last complete one",
    )
    retrain_min_change: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="share of corpus rows added or removed since the corpus of the latest SFT checkpoint that "
        "makes the retrain sensor train at once (smaller changes wait for the weekly schedule)",
    )
    lora_r: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=16, ge=1)
    sft_learning_rate: float = Field(default=2e-4, gt=0, description="SFT learning rate with method lora")
    sft_full_learning_rate: float = Field(
        default=1e-5,
        gt=0,
        description="SFT learning rate with method full: every weight moves, LoRA's rate would wreck them",
    )
    dpo_learning_rate: float = 5e-5
    dpo_beta: float = 0.1
    eval_max_new_tokens: int = Field(default=48, ge=1)
    quantization: Literal["int8_weight_only", "gguf_q8_0", "gptq_int8", "gptq_int4"] = Field(
        default="int8_weight_only",
        description="int8_weight_only: optimum-quanto safetensors (any base); gguf_q8_0: a llama.cpp GGUF "
        "(fast on CPU; needs the embedded base, whose GGUF gives tokenizer and metadata); gptq_int8 / "
        "gptq_int4: GPTQ W8A16 / W4A16 with llm-compressor, calibrated on the corpus, a compressed-tensors "
        "checkpoint for vLLM (GPU path; needs the gptq extra in the environment RP_GPTQ_PYTHON names)",
    )
    heldout_rows: int = Field(
        default=16, ge=1, description="corpus rows (never calibrated on) on which every quantization is checked"
    )
    calibration_rows: int = Field(default=64, ge=1, description="corpus rows GPTQ calibrates on")
    quantization_max_length: int = Field(
        default=512, ge=16, description="tokens per corpus row in calibration and the held-out check"
    )
    gptq_group_size: Literal[32, 64, 128] = Field(default=128, description="weights per GPTQ scale (what vLLM serves)")

    def trained_fields(self) -> dict:
        """The fields SFT and DPO depend on (their versions hash these): quantization knobs
        change the quantized model, never the checkpoints it starts from, and how often a run
        saves or on how many devices it runs changes neither (a resumed run keeps its version, so
        it finds its checkpoints)."""
        return self.model_dump(exclude=set(QUANTIZATION_FIELDS) | {"checkpoint_every", "gpus", "deepspeed"})

    def model_post_init(self, __context: object) -> None:
        if self.quantization == "gguf_q8_0" and self.base_model != "embedded":
            raise ValueError("quantization gguf_q8_0 needs base_model: embedded (the template GGUF)")
        if self.deepspeed is not None and self.gpus == 0:
            raise ValueError("deepspeed needs gpus: 1 or more")


class EvaluationProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calibration_threshold: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="the judge's position-consistent agreement on the calibration set needed before its "
        "scores rank model versions",
    )
    pairwise: bool = Field(default=True, description="judge the tuned model against its base, in both orders")


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    seed: int = 0
    n_seed_samples: int = Field(default=8, ge=1)
    n_synthesized_personas: int = Field(default=1, ge=0)
    self_samples_per_turn: int = Field(default=1, ge=0)
    ranked_turns_per_dialogue: int = Field(
        default=2,
        ge=0,
        description="turns per dialogue whose rule-clean self-samples the judge ranks into pairs (0: none)",
    )
    ranking_min_margin: float = Field(default=1.0, ge=0, description="judge score gap (1-10 scale) for a ranked pair")
    self_sample_limit: int = Field(
        default=0,
        ge=0,
        description="at most this many on-policy samples of the SFT model for preference pairs, a seeded pick "
        "of the kept turns (0: every kept turn, `self_samples_per_turn` times)",
    )
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)
    cleaning: CleaningConfig = Field(default_factory=CleaningConfig)
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    training: TrainingProfile = Field(default_factory=TrainingProfile)
    evaluation: EvaluationProfile = Field(default_factory=EvaluationProfile)


def load_profile(path: Path) -> Profile:
    try:
        return Profile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"{path}: invalid run profile: {exc}") from exc


def profile_path(profile: str, assets_dir: Path) -> Path:
    """A profile given by name (assets/profiles/<name>.yaml) or as a path to a YAML file."""
    path = Path(profile)
    return path if path.suffix else assets_dir / "profiles" / f"{profile}.yaml"
