"""Topic keywords per seed sample, and persona cards the LLM synthesizes from samples."""

from dagster import AssetExecutionContext, MetadataValue, asset

from rp_pipeline.core.models import PersonaCard, SeedSample, TopicSet
from rp_pipeline.core.topics import synthesize_personas, write_topics
from rp_pipeline.defs.metadata import llm_metadata, md_table
from rp_pipeline.defs.resources import LineageResource, LLMResource, PipelineResource

GROUP = "generation"
SYNTHESIZED_IDS = "persona_ids"  # metadata the persona sensor reads to add partitions


@asset(
    group_name=GROUP,
    kinds={"litellm"},
    owners=["team:data"],
    code_version="1",
    description="Topic keywords for each seed sample, written by the topic_writer role and deduplicated.",
)
def topic_keywords(
    context: AssetExecutionContext,
    seed_samples: list[dict],
    pipeline: PipelineResource,
    llm: LLMResource,
    lineage: LineageResource,
) -> list[TopicSet]:
    samples = [SeedSample.model_validate(s) for s in seed_samples]
    client = llm.client()
    topics = client.run(write_topics(client, pipeline.prompts(), samples))
    lineage.record(context, rows=[(t.id, [t.sample_id], {}) for t in topics], calls=client.calls)
    context.add_output_metadata(
        {
            "topic_sets": len(topics),
            "sample": md_table({"sample": t.sample_id, "keywords": ", ".join(t.keywords)} for t in topics[:10]),
            **llm_metadata(client.calls),
        }
    )
    return topics


@asset(
    group_name=GROUP,
    kinds={"litellm"},
    owners=["team:data"],
    code_version="1",
    description="Persona cards written by the persona_writer role from seed samples and their "
    "topics; each becomes a partition of persona_cards next to the authored cards.",
)
def synthesized_personas(
    context: AssetExecutionContext,
    seed_samples: list[dict],
    topic_keywords: list[dict],
    pipeline: PipelineResource,
    llm: LLMResource,
    lineage: LineageResource,
) -> list[PersonaCard]:
    profile = pipeline.load_profile()
    samples = [SeedSample.model_validate(s) for s in seed_samples]
    topics = {t["sample_id"]: TopicSet.model_validate(t) for t in topic_keywords}
    pairs = [(s, topics[s.id]) for s in samples[: profile.n_synthesized_personas]]
    client = llm.client()
    cards = client.run(synthesize_personas(client, pipeline.prompts(), pairs))
    lineage.record(
        context, rows=[(c.id, c.parent_ids, {"name": c.name, "persona_id": c.id}) for c in cards], calls=client.calls
    )
    context.add_output_metadata(
        {
            "personas": len(cards),
            SYNTHESIZED_IDS: MetadataValue.json([c.id for c in cards]),
            "cards": md_table(
                {"id": c.id, "name": c.name, "language": c.language, "occupation": c.occupation} for c in cards
            ),
            "example": MetadataValue.json(cards[0].model_dump(mode="json") if cards else {}),
            **llm_metadata(client.calls),
        }
    )
    return cards
