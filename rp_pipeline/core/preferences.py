"""Preference pairs for DPO (field notes 002: pairs sampled from the model itself and ranked).

Two sources, both grounded in the reply rules rather than taste:
- regenerated: during simulation a character reply broke a rule and was regenerated; the
  accepted reply is chosen, the broken attempt rejected, with the same context.
- self_sample: for a kept turn, the character model is sampled again; a sample that breaks
  a rule is the rejected side.
"""

from __future__ import annotations

import asyncio

from rp_pipeline.core.ids import content_id, stable_seed
from rp_pipeline.core.models import CleanedDialogue, Dialogue, PreferencePair
from rp_pipeline.core.rules import RuleSet, check_character_reply
from rp_pipeline.llm.client import LLMClient


def _pair(cleaned: CleanedDialogue, index: int, chosen: str, rejected: str, codes: list[str], origin: str) -> PreferencePair:
    prompt = cleaned.messages[:index]
    return PreferencePair(
        id=content_id("pair", {"prompt": [m.model_dump() for m in prompt], "chosen": chosen, "rejected": rejected}),
        persona_id=cleaned.persona_id, origin=origin, prompt=prompt, chosen=chosen, rejected=rejected,
        rejected_codes=codes, parent_ids=[cleaned.id],
    )


def regenerated_pairs(cleaned: CleanedDialogue, dialogue: Dialogue) -> list[PreferencePair]:
    """Pairs from rejected attempts on turns that survived cleaning."""
    pairs = []
    # cleaned.messages[2k+2] is the assistant reply to dialogue.turns[2k+2]
    for index in range(2, len(cleaned.messages), 2):
        turn = dialogue.turns[index]
        for attempt in turn.rejected:
            pairs.append(_pair(cleaned, index, cleaned.messages[index].content, attempt.content,
                               [v.code for v in attempt.violations], "regenerated"))
    return pairs


async def self_sample_pairs(
    llm: LLMClient, rules: RuleSet, cleaned: CleanedDialogue, samples_per_turn: int = 1
) -> list[PreferencePair]:
    async def sample(index: int, k: int) -> PreferencePair | None:
        prompt = [m.model_dump() for m in cleaned.messages[:index]]
        text = (await llm.complete("character", prompt, seed=stable_seed("self-sample", cleaned.id, index, k))).strip()
        violations = check_character_reply(text, cleaned.language, rules)
        if not violations:
            return None
        return _pair(cleaned, index, cleaned.messages[index].content, text, [v.code for v in violations], "self_sample")

    jobs = [sample(i, k) for i in range(2, len(cleaned.messages), 2) for k in range(samples_per_turn)]
    return [p for p in await asyncio.gather(*jobs) if p is not None]


def to_trl(pair: PreferencePair) -> dict:
    """TRL's conversational preference format."""
    return {
        "prompt": [m.model_dump() for m in pair.prompt],
        "chosen": [{"role": "assistant", "content": pair.chosen}],
        "rejected": [{"role": "assistant", "content": pair.rejected}],
    }

