"""Blocking gates before the expensive steps: bad data never reaches training."""

import warnings

from dagster import AssetCheckResult, AssetCheckSeverity, PreviewWarning, asset_check

from rp_pipeline.core.artifacts import CorpusArtifact
from rp_pipeline.core.cleaning.quality import quality_rates
from rp_pipeline.core.models import CleanedDialogue
from rp_pipeline.defs.cleaning import cleaned_dialogues
from rp_pipeline.defs.corpus import training_corpus
from rp_pipeline.defs.personas import personas_partitions

MIN_RATE = 0.99
# Per-partition checks are "preview" in Dagster 1.13; they are what a per-persona gate needs.
warnings.filterwarnings("ignore", category=PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")


def _gate(rates: dict[str, float], **extra) -> AssetCheckResult:
    """Bad rates block (ERROR); no turns at all is a warning: nothing bad can reach training
    from it, but the team should see a persona whose dialogues were all cleaned away."""
    if rates["assistant_turns"] == 0:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            metadata={**rates, **extra, "failing": "no training turns survived cleaning"},
        )
    failing = [k for k in ("format_valid_rate", "in_language_rate") if rates[k] < MIN_RATE]
    return AssetCheckResult(
        passed=not failing,
        severity=AssetCheckSeverity.ERROR,
        metadata={**rates, **extra, "threshold": MIN_RATE, "failing": ", ".join(failing) or "none"},
    )


@asset_check(
    asset=cleaned_dialogues,
    blocking=True,
    partitions_def=personas_partitions,
    description=f"Character turns are in the reply format and the persona's language (>= {MIN_RATE:.0%}).",
)
def cleaned_dialogues_quality(cleaned_dialogues: list[CleanedDialogue]) -> AssetCheckResult:
    rates = quality_rates([(d.language, d.messages) for d in cleaned_dialogues])
    return _gate(rates, dialogues=len(cleaned_dialogues))


@asset_check(
    asset=training_corpus,
    blocking=True,
    description=f"Role-play rows are format-valid and in-language (>= {MIN_RATE:.0%}); general share <= 50%.",
)
def training_corpus_quality(training_corpus: CorpusArtifact) -> AssetCheckResult:
    rows = training_corpus.load_rows()
    roleplay = [(r.language, r.messages) for r in rows if r.source == "roleplay"]
    general_share = round(1 - len(roleplay) / len(rows), 3) if rows else 0.0
    result = _gate(quality_rates(roleplay), rows=len(rows), general_share=general_share)
    if general_share > 0.5:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            metadata={**result.metadata, "failing": "general_share > 0.5"},
        )
    return result
