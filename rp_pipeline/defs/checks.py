"""Blocking gates before the expensive steps: bad data never reaches training.

Beyond the format and language rates, they run the content rules of both speakers on every
kept turn (cleaning may be configured or extended differently; the gate does not trust it),
and the corpus gate measures the targets cleaning cannot see: the general-instruction share
reached and the language distribution against the profile's target.
"""

import warnings
from collections.abc import Sequence

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, PreviewWarning, asset_check

from rp_pipeline.core.artifacts import CorpusArtifact
from rp_pipeline.core.cleaning.quality import quality_rates
from rp_pipeline.core.corpus import corpus_gaps, language_distance, language_distribution
from rp_pipeline.core.gates import content_rates
from rp_pipeline.core.models import CleanedDialogue, CorpusRow
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.defs.cleaning import cleaned_dialogues
from rp_pipeline.defs.corpus import training_corpus
from rp_pipeline.defs.personas import personas_partitions
from rp_pipeline.defs.resources import PipelineResource

MIN_RATE = 0.99
RATES = ("format_valid_rate", "in_language_rate", "content_clean_rate")
# Per-partition checks are "preview" in Dagster 1.13; they are what a per-persona gate needs.
warnings.filterwarnings("ignore", category=PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")


def _rates(rows: Sequence[CleanedDialogue | CorpusRow], rules: RuleSet) -> dict:
    content = content_rates([(r.language, r.messages, r.switch_language) for r in rows], rules)
    codes = content.pop("content_codes")
    quality = quality_rates([(r.language, r.messages) for r in rows])
    return {**quality, **content, "content_codes": MetadataValue.json(codes)}


def _gate(rates: dict, gaps: Sequence[str] = (), **extra) -> AssetCheckResult:
    """Bad rates (or a missed corpus target) block (ERROR); no turns at all is a warning for a
    persona: nothing bad can reach training from it, but the team should see a persona whose
    dialogues were all cleaned away (an empty corpus fails in training_corpus itself)."""
    if rates["assistant_turns"] == 0:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            metadata={**rates, **extra, "failing": "no training turns survived cleaning"},
        )
    failing = [k for k in RATES if rates[k] < MIN_RATE] + list(gaps)
    return AssetCheckResult(
        passed=not failing,
        severity=AssetCheckSeverity.ERROR,
        metadata={**rates, **extra, "threshold": MIN_RATE, "failing": "; ".join(failing) or "none"},
    )


@asset_check(
    asset=cleaned_dialogues,
    blocking=True,
    partitions_def=personas_partitions,
    description=f"Kept turns are in the reply format, in the persona's language and break no content rule of "
    f"either speaker (>= {MIN_RATE:.0%} each).",
)
def cleaned_dialogues_quality(cleaned_dialogues: list[CleanedDialogue], pipeline: PipelineResource) -> AssetCheckResult:
    rates = _rates(cleaned_dialogues, pipeline.rules())
    return _gate(rates, dialogues=len(cleaned_dialogues))


@asset_check(
    asset=training_corpus,
    blocking=True,
    description=f"Role-play rows are format-valid, in-language and rule-clean (>= {MIN_RATE:.0%}); the general "
    "share reaches the profile's target (within its tolerance, never over 50%) and the role-play language "
    "distribution is within the profile's tolerance of its target (default: the seed language weights).",
)
def training_corpus_quality(training_corpus: CorpusArtifact, pipeline: PipelineResource) -> AssetCheckResult:
    rows = training_corpus.load_rows()
    roleplay = [r for r in rows if r.source == "roleplay"]
    config = pipeline.load_profile().corpus
    seeds = pipeline.seed_language_weights()
    target = config.languages or seeds
    gaps = corpus_gaps(rows, config, seeds)
    general_share = round(1 - len(roleplay) / len(rows), 3) if rows else 0.0
    if general_share > 0.5:
        gaps.append("general_share > 0.5")
    return _gate(
        _rates(roleplay, pipeline.rules()),
        gaps,
        rows=len(rows),
        general_share=general_share,
        general_share_target=config.general_share,
        languages=MetadataValue.json(language_distribution(roleplay)),
        language_target=MetadataValue.json({k: round(v / sum(target.values()), 3) for k, v in target.items()}),
        language_distance=language_distance(language_distribution(roleplay), target),
        language_tolerance=config.language_tolerance,
    )
