"""Preference pairs for DPO (field notes 002: pairs sampled from the model itself and ranked).

Three sources:
- regenerated: during simulation a character reply broke a rule and was regenerated; the
  accepted reply is chosen, the broken attempt rejected, with the same context.
- self_sample: for a kept turn, the character model is sampled again; a sample that breaks
  a rule is the rejected side.
- judge_ranked: the kept reply and the rule-clean samples of the same turn are scored by the
  judge in context; the best is chosen and the worst rejected when they differ by at least
  a margin (rules catch what is wrong, ranking teaches what is better).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rp_pipeline.core.atomic import atomic_dir
from rp_pipeline.core.chat import ChatModel, Messages
from rp_pipeline.core.ids import content_id, stable_seed
from rp_pipeline.core.judging import rate
from rp_pipeline.core.models import CleanedDialogue, Dialogue, PairOrigin, PersonaCard, PreferencePair
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet, check_character_reply
from rp_pipeline.core.simulate import SWITCH_TURNS


def _pair(
    cleaned: CleanedDialogue, index: int, chosen: str, rejected: str, codes: list[str], origin: PairOrigin
) -> PreferencePair:
    prompt = cleaned.messages[:index]
    return PreferencePair(
        id=content_id("pair", {"prompt": [m.model_dump() for m in prompt], "chosen": chosen, "rejected": rejected}),
        persona_id=cleaned.persona_id,
        origin=origin,
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
        rejected_codes=codes,
        parent_ids=[cleaned.id],
    )


def regenerated_pairs(cleaned: CleanedDialogue, dialogue: Dialogue) -> list[PreferencePair]:
    """Pairs from rejected attempts on turns that survived cleaning."""
    pairs = []
    # cleaned.messages[2k+2] is the assistant reply to dialogue.turns[2k+2]
    for index in range(2, len(cleaned.messages), 2):
        turn = dialogue.turns[index]
        for attempt in turn.rejected:
            pairs.append(
                _pair(
                    cleaned,
                    index,
                    cleaned.messages[index].content,
                    attempt.content,
                    [v.code for v in attempt.violations],
                    "regenerated",
                )
            )
    return pairs


@dataclass(frozen=True)
class SampleRequest:
    """One reply to sample from the policy: the conversation before an assistant turn of a
    cleaned dialogue, with a seed of its own. `switch`: the turn answers a user who asked for
    another language (a switch dialogue's turn in SWITCH_TURNS)."""

    id: str
    index: int
    messages: Messages
    seed: int
    switch: bool = False


def self_sample_requests(cleaned: CleanedDialogue, samples_per_turn: int = 1) -> list[SampleRequest]:
    # messages[2k] is the reply to the user's turn k
    return [
        SampleRequest(
            id=f"{cleaned.id}:{index}:{k}",
            index=index,
            messages=[m.model_dump() for m in cleaned.messages[:index]],
            seed=stable_seed("self-sample", cleaned.id, index, k),
            switch=cleaned.switch_language is not None and index // 2 in SWITCH_TURNS,
        )
        for index in range(2, len(cleaned.messages), 2)
        for k in range(samples_per_turn)
    ]


def limit_requests(requests: list[SampleRequest], limit: int, seed: int) -> list[SampleRequest]:
    """At most `limit` of the requests (0: all of them), a seeded pick that does not depend on
    their order; the picked ones keep it. Switch turns are picked first: asked for another
    language, the policy answers in it most often (the learn run's character broke its language
    on 58 of 94 tries there), and those mistakes are the pairs that teach it to hold."""
    if not limit or len(requests) <= limit:
        return requests
    ranked = sorted(requests, key=lambda r: (not r.switch, content_id("pick", [seed, r.id])))
    picked = {r.id for r in ranked[:limit]}
    return [r for r in requests if r.id in picked]


def pairs_from_samples(
    cleaned: CleanedDialogue, rules: RuleSet, samples: Mapping[str, str], samples_per_turn: int = 1
) -> tuple[list[PreferencePair], dict[int, list[str]]]:
    """Rule-breaking samples as pairs against the kept reply (the policy's own mistakes, for
    DPO to push away from), and the rule-clean samples per assistant turn index (candidates
    for `judge_ranked_pairs`). `samples`: request id -> text; a request without one is skipped."""
    pairs: list[PreferencePair] = []
    clean: dict[int, list[str]] = {}
    for request in self_sample_requests(cleaned, samples_per_turn):
        if (text := samples.get(request.id)) is None:
            continue
        text = text.strip()
        codes = [v.code for v in check_character_reply(text, cleaned.language, rules)]
        kept = cleaned.messages[request.index].content
        if codes:
            pairs.append(_pair(cleaned, request.index, kept, text, codes, "self_sample"))
        elif text != kept:
            clean.setdefault(request.index, []).append(text)
    return pairs, clean


async def sample_replies(policy: ChatModel, requests: list[SampleRequest]) -> dict[str, str]:
    """The policy's reply to every request, as the character."""
    texts = await asyncio.gather(*(policy.complete("character", r.messages, seed=r.seed) for r in requests))
    return {r.id: t.text for r, t in zip(requests, texts, strict=True)}


async def judge_ranked_pairs(
    judge_llm: ChatModel,
    prompts: Prompts,
    card: PersonaCard,
    cleaned: CleanedDialogue,
    candidates: dict[int, list[str]],
    min_margin: float = 1.0,
    max_turns: int | None = None,
) -> list[PreferencePair]:
    """For each turn with rule-clean alternatives, the judge scores the kept reply and every
    alternative as the last reply of the conversation so far (mean of the four dimensions);
    best vs worst becomes a pair when the gap is at least `min_margin`. A failed verdict
    leaves that candidate out. `max_turns` bounds the judge calls per dialogue."""

    async def score(index: int, k: int, reply: str) -> float | None:
        turns = [
            {"role": "character" if m.role == "assistant" else m.role, "content": m.content}
            for m in cleaned.messages[1:index]
        ] + [{"role": "character", "content": reply}]
        verdict = await rate(judge_llm, prompts, card, turns, f"rank:{cleaned.id}:{index}:{k}")
        return None if verdict is None else verdict.overall

    pairs = []
    for index, alternatives in sorted(candidates.items())[:max_turns]:
        replies = [cleaned.messages[index].content, *alternatives]
        scores = await asyncio.gather(*(score(index, k, r) for k, r in enumerate(replies)))
        scored = sorted((s, r) for s, r in zip(scores, replies, strict=True) if s is not None)
        if len(scored) >= 2 and scored[-1][0] - scored[0][0] >= min_margin:
            pairs.append(_pair(cleaned, index, scored[-1][1], scored[0][1], ["ranked_lower"], "judge_ranked"))
    return pairs


def to_trl(pair: PreferencePair) -> dict:
    """TRL's conversational preference format."""
    return {
        "prompt": [m.model_dump() for m in pair.prompt],
        "chosen": [{"role": "assistant", "content": pair.chosen}],
        "rejected": [{"role": "assistant", "content": pair.rejected}],
    }


PAIRS_DATASET_NAME = "rp_pairs"
_SHAREGPT_ROLE = {"user": "human", "assistant": "gpt"}


def to_sharegpt_pair(pair: PreferencePair) -> dict:
    """LLaMA-Factory's ShareGPT preference row: the conversation up to the user's turn, the
    system prompt apart, and the chosen and rejected replies as single messages."""
    turns = [m for m in pair.prompt if m.role != "system"]
    return {
        "id": pair.id,
        "system": next((m.content for m in pair.prompt if m.role == "system"), ""),
        "conversations": [{"from": _SHAREGPT_ROLE[m.role], "value": m.content} for m in turns],
        "chosen": {"from": "gpt", "value": pair.chosen},
        "rejected": {"from": "gpt", "value": pair.rejected},
    }


def llama_factory_pairs_info(file_name: str) -> dict:
    """The `dataset_info.json` entry of the pairs: `ranking: true` makes it a preference dataset
    (DPO, RM stages), with LLaMA-Factory's documented ShareGPT columns and tags."""
    return {
        PAIRS_DATASET_NAME: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "ranking": True,
            "columns": {"messages": "conversations", "system": "system", "chosen": "chosen", "rejected": "rejected"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
        }
    }


PAIRS_FILES = {"trl": "pairs.jsonl", "sharegpt": "pairs_sharegpt.json", "dataset_info": "dataset_info.json"}


def export_pairs(pairs: list[PreferencePair], out_dir: Path) -> dict[str, Path]:
    """TRL's JSONL (what DPO trains on) and LLaMA-Factory's ShareGPT file with its
    `dataset_info.json` (`--dataset_dir OUT_DIR --dataset rp_pairs`), renamed into place as one
    directory: a kill mid-export leaves the previous complete export or none."""
    with atomic_dir(out_dir) as staging:
        paths = {kind: staging / name for kind, name in PAIRS_FILES.items()}
        paths["trl"].write_text("".join(json.dumps(to_trl(p), ensure_ascii=False) + "\n" for p in pairs), "utf-8")
        sharegpt = [to_sharegpt_pair(p) for p in pairs]
        paths["sharegpt"].write_text(json.dumps(sharegpt, ensure_ascii=False, indent=1), "utf-8")
        info = llama_factory_pairs_info(PAIRS_FILES["sharegpt"])
        paths["dataset_info"].write_text(json.dumps(info, indent=2), "utf-8")
    return {kind: out_dir / name for kind, name in PAIRS_FILES.items()}
