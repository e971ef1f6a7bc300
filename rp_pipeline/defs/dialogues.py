"""Simulated dialogues (multi-agent or single-call), per persona partition."""

from collections import Counter

from dagster import AssetExecutionContext, Config, MetadataValue, asset
from pydantic import Field

from rp_pipeline.core.models import Dialogue, PersonaCard, SeedSample, TopicSet
from rp_pipeline.core.simulate import DialogueSimulator, SimulationMode, assign_samples, simulate_many
from rp_pipeline.defs.metadata import counts_table, llm_metadata, transcript_markdown
from rp_pipeline.defs.personas import persona_row_id, personas_partitions
from rp_pipeline.defs.resources import LineageResource, LLMResource, PipelineResource

GROUP = "dialogues"


class DialoguesConfig(Config):
    mode: SimulationMode | None = Field(
        None, description="multi_agent or single_call for this run; default: the profile's simulation.mode"
    )


@asset(
    group_name=GROUP,
    partitions_def=personas_partitions,
    kinds={"litellm"},
    owners=["team:data"],
    code_version="3",
    description="Dialogues simulated by four agents (character, user agent, scene agent, moderator), "
    "all of a persona's dialogues at once under the LLM concurrency limit; character replies "
    "that break the reply rules are regenerated, and the rejected attempts are kept for DPO. "
    "Run config `mode: single_call` has one LLM write each dialogue in one call instead.",
)
def dialogues(
    context: AssetExecutionContext,
    config: DialoguesConfig,
    persona_cards: PersonaCard,
    seed_samples: list[SeedSample],
    topic_keywords: list[TopicSet],
    pipeline: PipelineResource,
    llm: LLMResource,
    lineage: LineageResource,
) -> list[Dialogue]:
    profile = pipeline.load_profile()
    simulation = profile.simulation.model_copy(update={"mode": config.mode or profile.simulation.mode})
    card = persona_cards
    topics = {t.sample_id: t for t in topic_keywords}
    with_topics = [s for s in seed_samples if s.id in topics]  # a sample whose keywords were all dropped has none
    jobs = [
        (card, sample, topics[sample.id], i)
        for i, sample in enumerate(assign_samples(card, with_topics, simulation.dialogues_per_persona))
    ]
    client = llm.client()
    simulator = DialogueSimulator(client, pipeline.prompts(), pipeline.rules(), simulation)
    context.log.info(f"simulating {len(jobs)} dialogue(s) for {card.name} ({card.language}), {simulation.mode.value}")
    with lineage.billing(context, client):
        result = client.run(simulate_many(simulator, jobs))
        context.log.info(f"{sum(len(d.turns) for d in result)} turns from {len(client.calls)} LLM calls")
        card_row = persona_row_id(card)
        lineage.record(
            context,
            rows=[
                (d.id, [card_row, d.sample_id, d.topic_id], {"persona_id": card.id, "stop_reason": d.stop_reason})
                for d in result
            ],
            calls=client.calls,
        )
    violations = Counter(v.code for d in result for t in d.turns for a in t.rejected for v in a.violations)
    violations.update(v.code for d in result for t in d.turns for v in t.violations)
    context.add_output_metadata(
        {
            "mode": simulation.mode.value,
            "dialogues": len(result),
            "turns": sum(len(d.turns) for d in result),
            "regenerated_replies": sum(len(t.rejected) for d in result for t in d.turns),
            # why each dialogue ended: max_turns, moderator, single_call, invalid_output, llm_error
            "stop_reasons": counts_table(Counter(d.stop_reason for d in result), "reason", "dialogues"),
            "rule_violations": counts_table(violations, "code", "count"),
            "sample_dialogue": MetadataValue.md(
                transcript_markdown(
                    f"{card.name} — {result[0].scene.place}", [(t.role, t.content) for t in result[0].turns]
                )
            )
            if result
            else MetadataValue.md("_(none)_"),
            **llm_metadata(client.calls),
        }
    )
    return result
