"""DPO preference pairs from the cleaned dialogues: regenerated replies, rule-breaking
samples of the SFT model (on-policy) and judge-ranked candidates (the thinking is in
core/preferences.py)."""

from collections import Counter

from dagster import AssetExecutionContext, AssetIn, MetadataValue, Output, asset

from rp_pipeline.core.artifacts import Checkpoint, CorpusArtifact, PairsArtifact
from rp_pipeline.core.ids import content_id
from rp_pipeline.core.models import CleanedDialogue, Dialogue, PersonaCard, PreferencePair
from rp_pipeline.core.preferences import (
    export_pairs,
    judge_ranked_pairs,
    limit_requests,
    pairs_from_samples,
    regenerated_pairs,
    self_sample_requests,
)
from rp_pipeline.defs.corpus import ALL_PERSONAS, in_partition_order
from rp_pipeline.defs.launchers import TrainingLauncher
from rp_pipeline.defs.metadata import counts_table, llm_metadata, md_table
from rp_pipeline.defs.resources import LineageResource, LLMResource, PipelineResource
from rp_pipeline.defs.sampling import sample_checkpoint

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
    "on-policy samples of the SFT model that break a rule (its own mistakes), and judge-ranked "
    "candidates (the kept reply and rule-clean samples of a turn; best vs worst). Written for TRL (JSONL) "
    "and for LLaMA-Factory (ShareGPT with chosen/rejected, registered in dataset_info.json with ranking: true).",
)
def preference_pairs(
    context: AssetExecutionContext,
    cleaned_dialogues: dict[str, list[CleanedDialogue]],
    dialogues: dict[str, list[Dialogue]],
    persona_cards: dict[str, PersonaCard],
    sft_checkpoint: Checkpoint,
    training_corpus: CorpusArtifact,
    pipeline: PipelineResource,
    llm: LLMResource,
    trainer: TrainingLauncher,
    lineage: LineageResource,
) -> Output[PairsArtifact]:
    profile = pipeline.load_profile()
    cleaned = in_partition_order(cleaned_dialogues)
    raw = {d.id: d for d in in_partition_order(dialogues)}
    pairs: list[PreferencePair] = [p for c in cleaned for p in regenerated_pairs(c, raw[c.dialogue_id])]
    judge_llm = llm.client()
    with lineage.billing(context, judge_llm):
        per_turn = profile.self_samples_per_turn
        requests = limit_requests(
            [r for c in cleaned for r in self_sample_requests(c, per_turn)], profile.self_sample_limit, profile.seed
        )
        context.log.info(
            f"{len(pairs)} pairs from regenerated replies; sampling {len(requests)} replies from the SFT model "
            f"{sft_checkpoint.version} ({len(cleaned)} dialogues)"
        )
        work_dir = pipeline.work / "preferences" / "samples" / sft_checkpoint.version
        corpus = training_corpus.for_scripts(pipeline.work)
        samples, policy_calls = sample_checkpoint(
            context, trainer, llm, profile, sft_checkpoint, corpus, requests, work_dir
        )
        if per_turn:
            rules, prompts = pipeline.rules(), pipeline.prompts()

            async def rank(candidates: list[tuple[CleanedDialogue, dict[int, list[str]]]]) -> list[PreferencePair]:
                found: list[PreferencePair] = []
                for c, clean in candidates:
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

            candidates = []
            for c in cleaned:
                broken, clean = pairs_from_samples(c, rules, samples, per_turn)
                pairs += broken
                if profile.ranked_turns_per_dialogue and c.persona_id in persona_cards:
                    candidates.append((c, clean))
            pairs += judge_llm.run(rank(candidates))
        pairs = sorted({p.id: p for p in pairs}.values(), key=lambda p: p.id)
        if not pairs:
            raise ValueError("no preference pairs: no rejected attempts and no rule-breaking self-samples")
        version = content_id("pairs", [p.id for p in pairs])
        paths = export_pairs(pairs, pipeline.work / "preferences" / version)
        out = paths["trl"]
        lineage.record(
            context,
            rows=[(p.id, p.parent_ids, {"origin": p.origin, "persona_id": p.persona_id}) for p in pairs]
            + [(version, [p.id for p in pairs], {"path": str(out)})],
            calls=policy_calls + judge_llm.calls,
        )
    metadata = {
        "pairs": len(pairs),
        "origins": counts_table(Counter(p.origin for p in pairs), "origin", "pairs"),
        "rejected_codes": counts_table(Counter(c for p in pairs for c in p.rejected_codes), "code", "pairs"),
        "examples": md_table(
            {"chosen": p.chosen, "rejected": p.rejected, "codes": ",".join(p.rejected_codes)} for p in pairs[:5]
        ),
        "path": MetadataValue.path(str(out)),
        "self_samples": len(samples),
        "on_policy_model": sft_checkpoint.version,
        **llm_metadata(policy_calls + judge_llm.calls),
    }
    # an Output, not a bare value: sampling through Pipes may have reported events in this step
    artifact = PairsArtifact(
        version=version,
        file=str(out),
        sharegpt=str(paths["sharegpt"]),
        dataset_info=str(paths["dataset_info"]),
        pairs=len(pairs),
    )
    return Output(artifact, metadata=metadata)
