"""Topic keywords per seed sample."""

from dagster import AssetExecutionContext, asset

from rp_pipeline.core.models import SeedSample, TopicSet
from rp_pipeline.core.topics import write_topics
from rp_pipeline.defs.metadata import llm_metadata, md_table
from rp_pipeline.defs.resources import LineageResource, LLMResource, PipelineResource

GROUP = "generation"


@asset(
    group_name=GROUP,
    kinds={"litellm"},
    owners=["team:data"],
    code_version="3",
    description="Topic keywords for each seed sample, written by the topic_writer role, deduplicated and "
    "language-checked (a keyword not in the sample's language is dropped; a sample left without any is "
    "dropped in lineage with reason wrong_language).",
)
def topic_keywords(
    context: AssetExecutionContext,
    seed_samples: list[SeedSample],
    pipeline: PipelineResource,
    llm: LLMResource,
    lineage: LineageResource,
) -> list[TopicSet]:
    client = llm.client()
    with lineage.billing(context, client):
        topics, drops = client.run(write_topics(client, pipeline.prompts(), seed_samples))
        lineage.record(context, rows=[(t.id, [t.sample_id], {}) for t in topics], drops=drops, calls=client.calls)
    context.add_output_metadata(
        {
            "topic_sets": len(topics),
            "samples_without_topics": md_table(
                {"sample": d.row_id, "reason": d.reason, "detail": d.detail} for d in drops
            ),
            "sample": md_table({"sample": t.sample_id, "keywords": ", ".join(t.keywords)} for t in topics[:10]),
            **llm_metadata(client.calls),
        }
    )
    return topics
