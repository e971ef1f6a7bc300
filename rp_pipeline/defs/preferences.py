"""DPO preference pairs from the cleaned dialogues: regenerated replies, rule-breaking
self-samples and judge-ranked candidates (the thinking is in core/preferences.py)."""

from collections import Counter

from dagster import AssetExecutionContext, AssetIn, MetadataValue, asset

from rp_pipeline.core.artifacts import PairsArtifact
from rp_pipeline.core.ids import content_id
from rp_pipeline.core.models import CleanedDialogue, Dialogue, PersonaCard, PreferencePair
from rp_pipeline.core.preferences import export_pairs, judge_ranked_pairs, regenerated_pairs, self_sample_pairs
from rp_pipeline.defs.corpus import ALL_PERSONAS, in_partition_order
from rp_pipeline.defs.metadata import counts_table, llm_metadata, md_table
from rp_pipeline.defs.resources import LineageResource, LLMResource, PipelineResource

GROUP = "corpus"


@asset(
    group_name=GROUP,
    kinds={"litellm", "jsonl"},
    owners=["team:data"],
    code_version="3",
    ins={
        "cleaned_dialogues": AssetIn(metadata=ALL_PERSONAS),
        "dialogues": AssetIn(metadata=ALL_PERSONAS),
        "persona_cards": AssetIn(metadata=ALL_PERSONAS),
    },
    description="Prompt/chosen/rejected pairs: regenerated replies (the rule-breaking attempt is rejected), "
    "unconstrained self-samples of the character model that break a rule, and judge-ranked "
    "candidates (the kept reply and rule-clean samples of a turn; best vs worst). Written for TRL (JSONL) "
    "and for LLaMA-Factory (ShareGPT with chosen/rejected, registered in dataset_info.json with ranking: true).",
)
def preference_pairs(
    context: AssetExecutionContext,
    cleaned_dialogues: dict[str, list[CleanedDialogue]],
    dialogues: dict[str, list[Dialogue]],
    persona_cards: dict[str, PersonaCard],
    pipeline: PipelineResource,
    llm: LLMResource,
    lineage: LineageResource,
) -> PairsArtifact:
    profile = pipeline.load_profile()
    cleaned = in_partition_order(cleaned_dialogues)
    raw = {d.id: d for d in in_partition_order(dialogues)}
    pairs: list[PreferencePair] = [p for c in cleaned for p in regenerated_pairs(c, raw[c.dialogue_id])]
    policy, judge_llm = llm.policy_client(profile.training.base_model), llm.client()
    context.log.info(f"{len(pairs)} pairs from regenerated replies; self-sampling {len(cleaned)} dialogues")
    if profile.self_samples_per_turn:
        rules, prompts = pipeline.rules(), pipeline.prompts()

        async def sample_and_rank() -> list[PreferencePair]:
            found: list[PreferencePair] = []
            for c in cleaned:
                broken, clean = await self_sample_pairs(policy, rules, c, profile.self_samples_per_turn)
                found += broken
                if profile.ranked_turns_per_dialogue and c.persona_id in persona_cards:
                    found += await judge_ranked_pairs(
                        judge_llm,
                        prompts,
                        persona_cards[c.persona_id],
                        c,
                        clean,
                        profile.ranking_min_margin,
                        profile.ranked_turns_per_dialogue,
                    )
            return found

        pairs += policy.run(sample_and_rank())
    pairs = sorted({p.id: p for p in pairs}.values(), key=lambda p: p.id)
    if not pairs:
        raise ValueError("no preference pairs: no rejected attempts and no rule-breaking self-samples")
    version = content_id("pairs", [p.id for p in pairs])
    paths = export_pairs(pairs, pipeline.data / "preferences" / version)
    out = paths["trl"]
    lineage.record(
        context,
        rows=[(p.id, p.parent_ids, {"origin": p.origin, "persona_id": p.persona_id}) for p in pairs]
        + [(version, [p.id for p in pairs], {"path": str(out)})],
        calls=policy.calls + judge_llm.calls,
    )
    context.add_output_metadata(
        {
            "pairs": len(pairs),
            "origins": counts_table(Counter(p.origin for p in pairs), "origin", "pairs"),
            "rejected_codes": counts_table(Counter(c for p in pairs for c in p.rejected_codes), "code", "pairs"),
            "examples": md_table(
                {"chosen": p.chosen, "rejected": p.rejected, "codes": ",".join(p.rejected_codes)} for p in pairs[:5]
            ),
            "path": MetadataValue.path(str(out)),
            **llm_metadata(policy.calls + judge_llm.calls),
        }
    )
    return PairsArtifact(
        version=version,
        file=str(out),
        sharegpt=str(paths["sharegpt"]),
        dataset_info=str(paths["dataset_info"]),
        pairs=len(pairs),
    )
