"""Seed variables and the samples drawn from them (field notes 001: tables -> combinations)."""

from dagster import AssetExecutionContext, asset

from rp_pipeline.core.ids import content_id
from rp_pipeline.core.models import SeedSample, SeedVariables
from rp_pipeline.core.seeds import coverage, language_counts, load_seed_variables, sample_seeds
from rp_pipeline.defs.metadata import counts_table, md_table
from rp_pipeline.defs.resources import LineageResource, PipelineResource

GROUP = "generation"


@asset(
    group_name=GROUP,
    kinds={"yaml"},
    owners=["team:data"],
    code_version="1",
    description="The authored seed tables in assets/seeds/: personality types (as behaviour patterns), "
    "occupations, relationships, scenes, languages, emotion labels.",
)
def seed_variables(
    context: AssetExecutionContext, pipeline: PipelineResource, lineage: LineageResource
) -> SeedVariables:
    variables = load_seed_variables(pipeline.assets / "seeds")
    table_id = content_id("vars", variables.model_dump())
    lineage.record(context, rows=[(table_id, [], {"tables": str(len(SeedVariables.model_fields))})])
    context.add_output_metadata(
        {
            "tables": md_table(
                {"table": name, "rows": len(getattr(variables, name))} for name in SeedVariables.model_fields
            ),
            "row_id": table_id,
        }
    )
    return variables


@asset(
    group_name=GROUP,
    kinds={"python"},
    owners=["team:data"],
    code_version="1",
    description="Seeded, reproducible combinations of the seed tables; every personality type and "
    "occupation is used before any repeats.",
)
def seed_samples(
    context: AssetExecutionContext, seed_variables: SeedVariables, pipeline: PipelineResource, lineage: LineageResource
) -> list[SeedSample]:
    variables = seed_variables
    profile = pipeline.load_profile()
    samples = sample_seeds(variables, profile.n_seed_samples, profile.seed)
    table_id = content_id("vars", variables.model_dump())
    lineage.record(context, rows=[(s.id, [table_id], {"language": s.language}) for s in samples])
    context.add_output_metadata(
        {
            "samples": len(samples),
            "coverage": md_table({"table": k, "covered": f"{v:.0%}"} for k, v in coverage(variables, samples).items()),
            "languages": counts_table(language_counts(samples), "language"),
        }
    )
    return samples
