"""Persona cards: those the LLM synthesizes from seed samples, and one dynamic partition per
persona (authored file or synthesized card).

A malformed card fails only its own partition, with the file and field in the error.
"""

from pathlib import Path

from dagster import AssetExecutionContext, DagsterInstance, DynamicPartitionsDefinition, MetadataValue, asset

from rp_pipeline.core.ids import content_id
from rp_pipeline.core.models import PersonaCard, SeedSample, TopicSet
from rp_pipeline.core.personas import authored_persona_ids, load_persona_file, synthesize_personas, system_prompt
from rp_pipeline.defs.metadata import llm_metadata, md_table
from rp_pipeline.defs.resources import LineageResource, LLMResource, PipelineResource

personas_partitions = DynamicPartitionsDefinition(name="personas")
GROUP = "personas"
SYNTHESIZED_IDS = "persona_ids"  # metadata the persona sensor reads to add partitions


def persona_row_id(card: PersonaCard) -> str:
    return content_id("card", card.model_dump(mode="json"))


def new_persona_keys(instance: DagsterInstance, personas_dir: Path, synthesized: list[str]) -> list[str]:
    """Authored and synthesized personas that have no partition yet, in a stable order."""
    known = set(instance.get_dynamic_partitions(personas_partitions.name))
    return [key for key in dict.fromkeys(authored_persona_ids(personas_dir) + synthesized) if key not in known]


def sync_persona_partitions(instance: DagsterInstance, personas_dir: Path, synthesized: list[str]) -> list[str]:
    """Add the missing partitions now (scripts; in a deployment the sensor does it); returns them."""
    new = new_persona_keys(instance, personas_dir, synthesized)
    if new:
        instance.add_dynamic_partitions(personas_partitions.name, new)
    return new


@asset(
    group_name="generation",
    kinds={"litellm"},
    owners=["team:data"],
    code_version="2",
    description="Persona cards written by the persona_writer role from seed samples and their "
    "topics, content-checked (a name, distinct tagged in-language examples, a rule-clean opening "
    "line) and rewritten up to the profile's simulation.max_attempts; a card that never passes is "
    "dropped in lineage (reason bad_card). Each card becomes a partition of persona_cards.",
)
def synthesized_personas(
    context: AssetExecutionContext,
    seed_samples: list[SeedSample],
    topic_keywords: list[TopicSet],
    pipeline: PipelineResource,
    llm: LLMResource,
    lineage: LineageResource,
) -> list[PersonaCard]:
    profile = pipeline.load_profile()
    topics = {t.sample_id: t for t in topic_keywords}
    pairs = [(s, topics[s.id]) for s in seed_samples if s.id in topics][: profile.n_synthesized_personas]
    client = llm.client()
    with lineage.billing(context, client):
        cards, drops = client.run(
            synthesize_personas(client, pipeline.prompts(), pipeline.rules(), pairs, profile.simulation.max_attempts)
        )
        lineage.record(
            context,
            rows=[(c.id, c.parent_ids, {"name": c.name, "persona_id": c.id}) for c in cards],
            drops=drops,
            calls=client.calls,
        )
    context.add_output_metadata(
        {
            "personas": len(cards),
            "dropped_cards": md_table({"row": d.row_id, "reason": d.reason, "detail": d.detail} for d in drops),
            SYNTHESIZED_IDS: MetadataValue.json([c.id for c in cards]),
            "cards": md_table(
                {"id": c.id, "name": c.name, "language": c.language, "occupation": c.occupation} for c in cards
            ),
            "example": MetadataValue.json(cards[0].model_dump(mode="json") if cards else {}),
            **llm_metadata(client.calls),
        }
    )
    return cards


@asset(
    group_name=GROUP,
    partitions_def=personas_partitions,
    kinds={"yaml"},
    owners=["team:data"],
    code_version="2",
    description="A validated persona card: assets/personas/<partition>.yaml (form and content checked; "
    "a bad card fails this partition naming file and field), or the synthesized card with that id. "
    "Its system prompt is the card without the scene.",
)
def persona_cards(
    context: AssetExecutionContext,
    synthesized_personas: list[PersonaCard],
    pipeline: PipelineResource,
    lineage: LineageResource,
) -> PersonaCard:
    key = context.partition_key
    path = pipeline.assets / "personas" / f"{key}.yaml"
    synthesized = {c.id: c for c in synthesized_personas}
    if path.exists():
        card = load_persona_file(path, pipeline.rules())
        source = (
            str(path.relative_to(pipeline.assets.parent)) if path.is_relative_to(pipeline.assets.parent) else str(path)
        )
    elif key in synthesized:
        card, source = synthesized[key], "synthesized_personas"
    else:
        raise FileNotFoundError(f"persona {key!r}: no file {path} and no synthesized card with that id")
    parents = [key] if card.source == "synthesized" else []
    lineage.record(
        context, rows=[(persona_row_id(card), parents, {"name": card.name, "persona_id": card.id, "source": source})]
    )
    context.add_output_metadata(
        {
            "name": card.name,
            "language": card.language,
            "source": source,
            "system_prompt": MetadataValue.md(f"```\n{system_prompt(card, pipeline.prompts())}\n```"),
        }
    )
    return card
