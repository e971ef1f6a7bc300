"""The training corpus: all personas' cleaned dialogues plus general instructions."""

from collections import Counter, defaultdict
from typing import TypeVar

from dagster import AssetExecutionContext, AssetIn, AutomationCondition, MetadataValue, asset

from rp_pipeline.core.artifacts import CorpusArtifact
from rp_pipeline.core.cleaning import ChatRow, to_drops
from rp_pipeline.core.cleaning.corpus_filters import corpus_filters
from rp_pipeline.core.corpus import (
    build_corpus,
    corpus_version,
    export_corpus,
    language_distribution,
    load_general_rows,
)
from rp_pipeline.core.models import CleanedDialogue, Drop
from rp_pipeline.defs.metadata import counts_table
from rp_pipeline.defs.resources import LineageResource, PipelineResource

GROUP = "corpus"
T = TypeVar("T")
ALL_PERSONAS = {"allow_missing_partitions": True}  # one failed persona never blocks the corpus
# Rebuilt once persona partitions changed and none is still running or queued: a backfill of many
# new cards gives one corpus, not one per card. Unlike `eager()`, a missing (failed or not yet
# generated) persona partition does not hold the corpus back.
REBUILD_WHEN_PERSONAS_CHANGE = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("rebuild when persona partitions changed")


def in_partition_order(by_partition: dict[str, list[T]]) -> list[T]:
    """A partitioned upstream's values as one list, in a stable (partition key) order."""
    return [value for key in sorted(by_partition) for value in by_partition[key]]


@asset(
    group_name=GROUP,
    kinds={"huggingface", "parquet"},
    owners=["team:data"],
    code_version="3",
    ins={"cleaned_dialogues": AssetIn(metadata=ALL_PERSONAS)},
    automation_condition=REBUILD_WHEN_PERSONAS_CHANGE,
    description="All cleaned dialogues (cross-persona duplicates and over-frequent openings removed, rows "
    "over cutoff_len split at turn boundaries) plus a share of general instructions, exported as "
    "ShareGPT JSON, OpenAI messages JSONL, a Hugging Face dataset (save_to_disk + Parquet, with a "
    "card) and a LLaMA-Factory dataset_info.json.",
)
def training_corpus(
    context: AssetExecutionContext,
    cleaned_dialogues: dict[str, list[CleanedDialogue]],
    pipeline: PipelineResource,
    lineage: LineageResource,
) -> CorpusArtifact:
    profile = pipeline.load_profile()
    cleaned = in_partition_order(cleaned_dialogues)
    by_id = {c.id: c for c in cleaned}  # the id hashes the messages: one id, one content
    # Duplicates and over-frequent openings across personas; a cut row keeps its cleaned id as its lineage parent.
    kept, reports = corpus_filters(
        [ChatRow(id=c.id, language=c.language, messages=c.messages) for c in cleaned], profile.cleaning
    )
    general = load_general_rows(pipeline.assets / "general_sft" / "general.jsonl")
    seeds = pipeline.seed_language_weights()
    corpus = build_corpus(
        [by_id[r.id].model_copy(update={"messages": r.messages}) for r in kept],
        general,
        profile.corpus,
        language_target=seeds,
    )
    rows = corpus.rows
    codes = Counter(code for r in reports for code in r.codes)
    if not any(r.source == "roleplay" for r in rows):
        removed: dict[str, Counter[str]] = defaultdict(Counter)  # action -> reason code -> count
        for d in lineage.store().drops("cleaned_dialogues"):
            removed[d["action"]][d["reason"]] += d["dropped"]
        for report in reports:
            removed[report.action].update(report.codes)
        reasons = "; ".join(
            f"{action}: " + ", ".join(f"{code} {n}" for code, n in removed[action].most_common())
            for action in ("drop", "cut", "flag", "repair")
            if removed[action]
        )
        raise ValueError(
            f"training corpus has no role-play rows: cleaning kept {len(cleaned)} dialogue(s), the corpus "
            f"filters {len(cleaned) - len(kept)} of those. Per action and reason code: {reasons or 'none recorded'} "
            "(details: `rp lineage drops`)"
        )
    if corpus.general_shortfall:
        context.log.warning(
            f"general share {corpus.general_share:.1%} < target {profile.corpus.general_share:.0%}: "
            f"{corpus.general_wanted} general rows wanted, the pool has {corpus.general_pool}"
        )
    version = corpus_version(rows)
    out_dir = pipeline.data / "corpus" / version
    artifact = export_corpus(rows, out_dir, version)
    lineage.record(
        context,
        rows=[
            (
                r.id,
                r.parent_ids,
                {"source": r.source, "language": r.language, **({"persona_id": r.persona_id} if r.persona_id else {})},
            )
            for r in rows
        ]
        + [(version, [r.id for r in rows], {"path": str(out_dir)})],
        drops=to_drops(reports)
        + [
            Drop(row_id=r.parent_ids[0], reason="language_mix", detail=f"{r.language} over its target share")
            for r in corpus.held_back
        ],
    )
    codes["too_long"] += corpus.too_long_exchanges
    context.add_output_metadata(
        {
            "corpus_version": version,
            "rows": len(rows),
            "general_share": MetadataValue.float(corpus.general_share),
            "general_share_target": MetadataValue.float(profile.corpus.general_share),
            "general_rows_wanted": corpus.general_wanted,
            "general_rows_short": corpus.general_shortfall,
            "languages": counts_table(language_distribution(rows), "language"),
            "held_back_for_language_mix": counts_table(language_distribution(corpus.held_back), "language"),
            "personas": counts_table(Counter(r.persona_id for r in rows if r.persona_id), "persona"),
            "cross_persona_drops_by_code": counts_table(+codes, "code", "count"),
            "dialogues_split_at_cutoff": corpus.split_rows,
            "cutoff_len": profile.corpus.cutoff_len,
            "path": MetadataValue.path(str(out_dir)),
        }
    )
    return artifact
