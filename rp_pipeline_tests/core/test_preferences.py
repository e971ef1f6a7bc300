"""Preference pairs from self-samples and judge ranking, against the fake server."""

import json
from pathlib import Path

from rp_pipeline.core.models import CleanedDialogue, Message
from rp_pipeline.core.personas import load_persona_file
from rp_pipeline.core.preferences import judge_ranked_pairs, to_trl
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.llm.cache import ResponseCache
from rp_pipeline.llm.client import LLMClient
from rp_pipeline.llm.config import load_llm_config

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def _dialogue(card) -> CleanedDialogue:
    return CleanedDialogue(
        id="clean-1",
        dialogue_id="dlg-1",
        persona_id=card.id,
        language=card.language,
        messages=[
            Message(role="system", content="persona"),
            Message(role="user", content="今天好累"),
            Message(role="assistant", content="辛苦啦<emotion>sad</emotion>"),
            Message(role="user", content="想吃点甜的"),
            Message(role="assistant", content="我给你留了一块芝士蛋糕<emotion>happy</emotion>"),
        ],
    )


def _judge(fake_llm, tmp_path) -> LLMClient:
    return LLMClient(load_llm_config(fake_llm.write_config(tmp_path / "m.yaml")), ResponseCache(tmp_path / "c.sqlite"))


def test_the_judge_ranks_the_kept_reply_over_a_dull_sample_and_the_pair_keeps_its_context(fake_llm, tmp_path):
    card = load_persona_file(ASSETS / "personas" / "lin-xiaoman.yaml")
    cleaned = _dialogue(card)
    judge = _judge(fake_llm, tmp_path)
    candidates = {2: ["随便吧<emotion>neutral</emotion>"], 4: ["那我们去买奶茶吧<emotion>happy</emotion>"]}

    pairs = judge.run(judge_ranked_pairs(judge, Prompts(ASSETS / "prompts"), card, cleaned, candidates))

    # turn 2: kept 6.5 vs dull 2.25 -> a pair; turn 4: both rate 6.5 -> below the margin, no pair
    assert len(pairs) == 1
    (pair,) = pairs
    assert pair.origin == "judge_ranked" and pair.rejected_codes == ["ranked_lower"]
    assert pair.chosen == "辛苦啦<emotion>sad</emotion>" and pair.rejected.startswith("随便吧")
    assert [m.content for m in pair.prompt] == ["persona", "今天好累"] and pair.parent_ids == ["clean-1"]
    assert to_trl(pair)["rejected"] == [{"role": "assistant", "content": pair.rejected}]
    assert sum(1 for c in judge.calls if c.role == "judge" and not c.cache_hit) == 4


def test_a_failed_verdict_leaves_its_candidate_out_and_max_turns_bounds_the_calls(fake_llm, tmp_path):
    card = load_persona_file(ASSETS / "personas" / "lin-xiaoman.yaml")
    judge = _judge(fake_llm, tmp_path)
    candidates = {2: ["随便吧<emotion>neutral</emotion>"], 4: ["whatever<emotion>neutral</emotion>"]}
    # both verdicts of the first turn fail validation: 2 candidates x (1 try + max_repairs 2)
    fake_llm.queue("judge", *(["not json"] * 6))

    pairs = judge.run(
        judge_ranked_pairs(judge, Prompts(ASSETS / "prompts"), card, _dialogue(card), candidates, max_turns=1)
    )

    assert pairs == []
    assert len(judge.calls) == 6  # turn 4 (it would rank) is past max_turns and never judged


def test_pairs_are_exported_for_trl_and_for_llama_factory_as_a_ranking_dataset(tmp_path):
    """Both files hold every pair; LLaMA-Factory's entry has `ranking: true` and its ShareGPT
    columns, each conversation alternates human/gpt and ends on the user's turn, and the
    chosen and rejected replies are single gpt messages (what its preference loader reads)."""
    from datasets import load_dataset

    from rp_pipeline.core.models import PreferencePair
    from rp_pipeline.core.preferences import PAIRS_DATASET_NAME, export_pairs

    prompt = [
        Message(role="system", content="你是林小满"),
        Message(role="user", content="今天好累"),
        Message(role="assistant", content="辛苦啦<emotion>sad</emotion>"),
        Message(role="user", content="想吃点甜的"),
    ]
    pairs = [
        PreferencePair(
            id=f"pair-{i}",
            persona_id="lin-xiaoman",
            origin="self_sample",
            prompt=prompt,
            chosen="我给你留了一块芝士蛋糕<emotion>happy</emotion>",
            rejected=f"作为一个AI，我无法吃东西 {i}",
            rejected_codes=["assistant_speak"],
            parent_ids=["clean-1"],
        )
        for i in range(3)
    ]
    paths = export_pairs(pairs, tmp_path / "pairs")
    trl = load_dataset("json", data_files=str(paths["trl"]), split="train")
    assert len(trl) == 3 and trl[0]["rejected"] == [{"role": "assistant", "content": "作为一个AI，我无法吃东西 0"}]

    info = json.loads(paths["dataset_info"].read_text(encoding="utf-8"))[PAIRS_DATASET_NAME]
    assert info["ranking"] is True and info["formatting"] == "sharegpt"
    columns, tags = info["columns"], info["tags"]
    rows = json.loads((paths["dataset_info"].parent / info["file_name"]).read_text(encoding="utf-8"))
    assert len(rows) == 3
    for row in rows:
        turns = row[columns["messages"]]
        assert [t[tags["role_tag"]] for t in turns] == ["human", "gpt", "human"]
        assert row[columns["system"]] == "你是林小满"
        assert row[columns["chosen"]] == {"from": "gpt", "value": "我给你留了一块芝士蛋糕<emotion>happy</emotion>"}
        assert row[columns["rejected"]][tags["role_tag"]] == tags["assistant_tag"]


def test_on_policy_samples_that_break_a_rule_become_rejected_and_clean_ones_candidates():
    """One request per assistant turn and sample, each with its own seed; a sample that breaks a
    rule is the rejected side against the kept reply, a clean one is a candidate for ranking,
    and a turn without a sample (the sampler failed) is skipped."""
    from rp_pipeline.core.preferences import pairs_from_samples, self_sample_requests
    from rp_pipeline.core.rules import RuleSet

    cleaned = _dialogue(load_persona_file(ASSETS / "personas" / "lin-xiaoman.yaml"))
    requests = self_sample_requests(cleaned, samples_per_turn=2)
    assert [(r.index, r.id) for r in requests] == [
        (2, "clean-1:2:0"),
        (2, "clean-1:2:1"),
        (4, "clean-1:4:0"),
        (4, "clean-1:4:1"),
    ]
    assert len({r.seed for r in requests}) == 4
    assert requests[2].messages[-1] == {"role": "user", "content": "想吃点甜的"}
    samples = {
        "clean-1:2:0": "作为一个AI，我没有感觉。",
        "clean-1:2:1": "抱抱你<emotion>sad</emotion>",
        "clean-1:4:0": "我给你留了一块芝士蛋糕<emotion>happy</emotion>",  # the kept reply itself: no candidate
    }
    pairs, clean = pairs_from_samples(cleaned, RuleSet.load(ASSETS / "rules"), samples, samples_per_turn=2)
    assert [(p.rejected, p.chosen) for p in pairs] == [("作为一个AI，我没有感觉。", "辛苦啦<emotion>sad</emotion>")]
    assert pairs[0].origin == "self_sample" and "assistant_speak" in pairs[0].rejected_codes
    assert clean == {2: ["抱抱你<emotion>sad</emotion>"]}


def test_a_sample_limit_keeps_a_seeded_pick_that_does_not_depend_on_the_order():
    """`self_sample_limit` bounds how many replies are sampled from the SFT model: the same
    requests whatever their order, another pick with another seed, all of them without a limit."""
    from rp_pipeline.core.preferences import limit_requests, self_sample_requests

    cleaned = _dialogue(load_persona_file(ASSETS / "personas" / "lin-xiaoman.yaml"))
    requests = self_sample_requests(cleaned, samples_per_turn=5)  # 2 turns x 5
    picked = limit_requests(requests, 4, seed=1)
    assert len(picked) == 4 and [r.id for r in picked] == [r.id for r in requests if r in picked]
    assert {r.id for r in limit_requests(list(reversed(requests)), 4, seed=1)} == {r.id for r in picked}
    assert any({r.id for r in limit_requests(requests, 4, seed=s)} != {r.id for r in picked} for s in range(2, 6))
    assert limit_requests(requests, 0, seed=1) == requests and limit_requests(requests, 99, seed=1) == requests


def test_a_sample_limit_picks_the_replies_to_a_language_switch_first():
    """In a switch dialogue the user's turns 2 and 3 ask for another language; the policy's
    replies there are sampled before any other turn's, whatever the seed."""
    from rp_pipeline.core.preferences import limit_requests, self_sample_requests

    card = load_persona_file(ASSETS / "personas" / "lin-xiaoman.yaml")
    plain = _dialogue(card)
    switch = plain.model_copy(
        update={
            "id": "clean-2",
            "switch_language": "en",
            "messages": [
                *plain.messages[:3],
                Message(role="user", content="Can we speak English? Just for today"),
                Message(role="assistant", content="不行哦，在我店里就说中文<emotion>happy</emotion>"),
                Message(role="user", content="Come on, one sentence in English!"),
                Message(role="assistant", content="一句也不行，尝尝新豆子吧<emotion>happy</emotion>"),
            ],
        }
    )
    requests = self_sample_requests(plain, 2) + self_sample_requests(switch, 2)
    assert [r.index for r in requests if r.switch] == [4, 4, 6, 6]
    for seed in range(4):
        picked = limit_requests(requests, 5, seed=seed)
        assert {(r.id, r.index) for r in picked if r.switch} == {(r.id, r.index) for r in requests if r.switch}
        assert len(picked) == 5
