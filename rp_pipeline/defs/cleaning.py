"""Cleaned dialogues per persona partition: the same code as `rp clean` (core/cleaning/)."""

from collections import Counter

from dagster import AssetExecutionContext, asset

from rp_pipeline.core.cleaning import clean_rows, dialogue_row, to_drops
from rp_pipeline.core.cleaning.endings import ROLE as ENDINGS_ROLE
from rp_pipeline.core.cleaning.endings import EndingReading, ending_queries, find_unfinished
from rp_pipeline.core.ids import content_id
from rp_pipeline.core.models import CleanedDialogue, Dialogue
from rp_pipeline.defs.metadata import counts_table, llm_metadata
from rp_pipeline.defs.personas import personas_partitions
from rp_pipeline.defs.resources import LineageResource, LLMResource, PipelineResource

GROUP = "dialogues"


@asset(
    group_name=GROUP,
    partitions_def=personas_partitions,
    kinds={"python"},
    owners=["team:data"],
    code_version="4",
    description="Dialogues cleaned into training turns by the same code as `rp clean`: PII and debris "
    "repaired, then cut before the first turn with a wrong or mixed language, assistant-speak, "
    "stage directions, goodbyes, meta commentary, bad format, echoes, a reply cut short (in Chinese and "
    "Japanese read by the model map's `cleaner` when it has one) or a degenerate loop; "
    "exact/near duplicates and over-frequent openings removed. Every cut, drop and repair is "
    "recorded in lineage with its reason code.",
)
def cleaned_dialogues(
    context: AssetExecutionContext,
    dialogues: list[Dialogue],
    pipeline: PipelineResource,
    lineage: LineageResource,
    llm: LLMResource,
) -> list[CleanedDialogue]:
    profile = pipeline.load_profile()
    raw = {d.id: d for d in dialogues}
    rows = [dialogue_row(d) for d in raw.values()]
    reading, calls, endings_by = EndingReading({}, 0, 0), [], "rules only: the model map has no `cleaner` role"
    if ENDINGS_ROLE in llm.config().roles and ending_queries(rows):
        client = llm.role_client(ENDINGS_ROLE)
        endings_by = client.routed_model(ENDINGS_ROLE)
        with lineage.billing(context, client):
            reading = client.run(find_unfinished(client, rows, profile.cleaning.ending_min_probability))
        calls = client.calls
    result = clean_rows(rows, pipeline.rules(), profile.cleaning, reading.unfinished)
    repaired = Counter(r.id for r in result.reports if r.action == "repair")
    kept = [
        CleanedDialogue(
            id=content_id("clean", [m.model_dump() for m in row.messages]),
            dialogue_id=row.id,
            persona_id=raw[row.id].persona_id,
            language=row.language,
            messages=row.messages,
            repaired_turns=repaired[row.id],
            switch_language=row.switch_language,
        )
        for row in result.kept
    ]
    lineage.record(
        context,
        rows=[(c.id, [c.dialogue_id], {"persona_id": c.persona_id}) for c in kept],
        drops=to_drops(result.reports),
        calls=calls,
    )
    actions = result.action_counts()
    context.add_output_metadata(
        {
            "dialogues_in": len(dialogues),
            "dialogues_kept": len(kept),
            "dialogues_cut": actions["cut"],
            "dialogues_dropped": actions["drop"],
            "training_turns": sum((len(c.messages) - 1) // 2 for c in kept),
            "repaired_turns": actions["repair"],
            "flags_by_code": counts_table(result.code_counts(), "code", "turns"),
            "endings_read_by": endings_by,
            "endings_asked": reading.asked,
            "endings_read_as_cut": sum(len(turns) for turns in reading.unfinished.values()),
            "endings_unread": reading.unread,
            **llm_metadata(calls),
        }
    )
    return kept
