"""The training corpus (all personas + general instructions) and DPO preference pairs."""

import json
from collections import Counter

from dagster import AssetExecutionContext, AssetIn, MetadataValue, asset

from rp_pipeline.core.cleaning import ChatRow, to_drops
from rp_pipeline.core.cleaning.corpus_filters import corpus_filters
from rp_pipeline.core.corpus import (
    build_corpus,
    corpus_version,
    export_corpus,
    language_distribution,
    load_general_rows,
)
from rp_pipeline.core.ids import content_id
from rp_pipeline.core.models import CleanedDialogue, Dialogue, PersonaCard, PreferencePair
from rp_pipeline.core.preferences import judge_ranked_pairs, regenerated_pairs, self_sample_pairs, to_trl
from rp_pipeline.defs.metadata import counts_table, llm_metadata, md_table
from rp_pipeline.defs.resources import LineageResource, LLMResource, PipelineResource

GROUP = "corpus"
ALL_PERSONAS = {"allow_missing_partitions": True}  # one failed persona never blocks the corpus


def _cleaned(by_partition: dict[str, list[dict]]) -> list[CleanedDialogue]:
    return [CleanedDialogue.model_validate(c) for key in sorted(by_partition) for c in by_partition[key]]


@asset(
    group_name=GROUP,
    kinds={"huggingface", "parquet"},
    owners=["team:data"],
    code_version="2",
    ins={"cleaned_dialogues": AssetIn(metadata=ALL_PERSONAS)},
    description="All cleaned dialogues (cross-persona duplicates and over-frequent openings removed, rows "
    "over cutoff_len split at turn boundaries) plus a share of general instructions, exported as "
    "ShareGPT JSON, OpenAI messages JSONL, a Hugging Face dataset (save_to_disk + Parquet, with a "
    "card) and a LLaMA-Factory dataset_info.json.",
)
def training_corpus(
    context: AssetExecutionContext,
    cleaned_dialogues: dict[str, list[dict]],
    pipeline: PipelineResource,
    lineage: LineageResource,
) -> dict:
    profile = pipeline.load_profile()
    cleaned = _cleaned(cleaned_dialogues)
    by_id = {c.id: c for c in cleaned}  # the id hashes the messages: one id, one content
    # Duplicates and over-frequent openings across personas; a cut row keeps its cleaned id as its lineage parent.
    kept, reports = corpus_filters(
        [ChatRow(id=c.id, language=c.language, messages=c.messages) for c in cleaned], profile.cleaning
    )
    general = load_general_rows(pipeline.assets / "general_sft" / "general.jsonl")
    corpus = build_corpus(
        [by_id[r.id].model_copy(update={"messages": r.messages}) for r in kept], general, profile.corpus
    )
    rows = corpus.rows
    if not rows:
        raise ValueError("training corpus is empty: no cleaned dialogues survived (see cleaned_dialogues drops)")
    version = corpus_version(rows)
    out_dir = pipeline.data / "corpus" / version
    paths = export_corpus(rows, out_dir, version)
    (out_dir / "rows.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in rows), encoding="utf-8")
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
        drops=to_drops(reports),
    )
    sources = Counter(r.source for r in rows)
    codes = Counter(code for r in reports for code in r.codes)
    codes["too_long"] += corpus.too_long_exchanges
    context.add_output_metadata(
        {
            "corpus_version": version,
            "rows": len(rows),
            "general_share": MetadataValue.float(round(sources["general"] / len(rows), 3)),
            "languages": counts_table(language_distribution(rows), "language"),
            "personas": counts_table(Counter(r.persona_id for r in rows if r.persona_id), "persona"),
            "cross_persona_drops_by_code": counts_table(+codes, "code", "count"),
            "dialogues_split_at_cutoff": corpus.split_rows,
            "cutoff_len": profile.corpus.cutoff_len,
            "path": MetadataValue.path(str(out_dir)),
        }
    )
    return {"version": version, "dir": str(out_dir), "rows": len(rows), **{k: str(v) for k, v in paths.items()}}


@asset(
    group_name=GROUP,
    kinds={"litellm", "jsonl"},
    owners=["team:data"],
    code_version="2",
    ins={
        "cleaned_dialogues": AssetIn(metadata=ALL_PERSONAS),
        "dialogues": AssetIn(metadata=ALL_PERSONAS),
        "persona_cards": AssetIn(metadata=ALL_PERSONAS),
    },
    description="Prompt/chosen/rejected pairs: regenerated replies (the rule-breaking attempt is rejected), "
    "unconstrained self-samples of the character model that break a rule, and judge-ranked "
    "candidates (the kept reply and rule-clean samples of a turn; best vs worst).",
)
def preference_pairs(
    context: AssetExecutionContext,
    cleaned_dialogues: dict[str, list[dict]],
    dialogues: dict[str, list[dict]],
    persona_cards: dict[str, dict],
    pipeline: PipelineResource,
    llm: LLMResource,
    lineage: LineageResource,
) -> dict:
    profile = pipeline.load_profile()
    cleaned = _cleaned(cleaned_dialogues)
    raw = {d["id"]: Dialogue.model_validate(d) for key in dialogues for d in dialogues[key]}
    cards = {key: PersonaCard.model_validate(card) for key, card in persona_cards.items()}
    pairs: list[PreferencePair] = [p for c in cleaned for p in regenerated_pairs(c, raw[c.dialogue_id])]
    policy, judge_llm = llm.policy_client(), llm.client()
    context.log.info(f"{len(pairs)} pairs from regenerated replies; self-sampling {len(cleaned)} dialogues")
    if profile.self_samples_per_turn:
        rules, prompts = pipeline.rules(), pipeline.prompts()

        async def sample_and_rank() -> list[PreferencePair]:
            found: list[PreferencePair] = []
            for c in cleaned:
                broken, clean = await self_sample_pairs(policy, rules, c, profile.self_samples_per_turn)
                found += broken
                if profile.ranked_turns_per_dialogue and c.persona_id in cards:
                    found += await judge_ranked_pairs(
                        judge_llm,
                        prompts,
                        cards[c.persona_id],
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
    out = pipeline.data / "preferences" / f"{version}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(to_trl(p), ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
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
    return {"version": version, "file": str(out), "pairs": len(pairs)}
