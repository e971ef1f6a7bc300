"""The multi-agent simulator against the fake server (no Dagster)."""

from __future__ import annotations

from rp_pipeline.core.models import TopicSet
from rp_pipeline.core.personas import load_persona_file
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.reply_format import parse_reply
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.core.seeds import load_seed_variables, sample_seeds
from rp_pipeline.core.simulate import DialogueSimulator, SimulationConfig, SimulationMode
from rp_pipeline.llm.client import LLMClient
from rp_pipeline.llm.config import load_llm_config
from rp_pipeline.settings import REPO_ROOT
from rp_pipeline_tests.fake_llm import BAD_REPLY

ASSETS = REPO_ROOT / "assets"


def simulate(fake_llm, tmp_path, **config):
    client = LLMClient(load_llm_config(fake_llm.write_config(tmp_path / "m.yaml")))
    card = load_persona_file(ASSETS / "personas" / "lin-xiaoman.yaml")
    sample = sample_seeds(load_seed_variables(ASSETS / "seeds"), 1, seed=0)[0]
    topics = TopicSet(id="topic-x", sample_id=sample.id, keywords=["咖啡", "猫"])
    sim = DialogueSimulator(
        client,
        Prompts(ASSETS / "prompts"),
        RuleSet.load(ASSETS / "rules"),
        SimulationConfig(min_turns=5, max_turns=9, topic_every=2, moderator_every=2, **config),
    )
    return client.run(sim.simulate(card, sample, topics)), fake_llm


def test_agents_alternate_and_character_replies_parse(fake_llm, tmp_path):
    fake_llm.queue("character", BAD_REPLY)
    dialogue, fake = simulate(fake_llm, tmp_path)
    assert [t.role for t in dialogue.turns[:3]] == ["character", "user", "character"]
    assert dialogue.turns[1].topic == "咖啡"  # the first user turn opens with the sample's topic
    assert any(t.topic == "a rainy-day film" for t in dialogue.turns)  # then the scene agent injects topics
    for turn in dialogue.turns:
        if turn.role == "character" and not turn.violations:
            parse_reply(turn.content)
    # every rule-breaking first attempt was regenerated and kept as a rejected attempt
    rejected = [a for t in dialogue.turns for a in t.rejected]
    assert rejected and all({"assistant_speak", "bad_format"} <= {v.code for v in a.violations} for a in rejected)
    # the character never sees the user card; the user agent does
    character_prompts = [r for r in fake.requests if r["model"] == "fake-character"]
    assert all(dialogue.user.occupation not in r["messages"][0]["content"] for r in character_prompts)
    user_prompts = [r for r in fake.requests if r["model"] == "fake-user_agent"]
    assert all(dialogue.user.occupation in r["messages"][0]["content"] for r in user_prompts)
    assert "# Scene" not in dialogue.system_prompt


def test_unparseable_moderator_lets_the_dialogue_run_to_max_turns(fake_llm, tmp_path):
    fake_llm.queue("moderator", *["not json"] * 12)
    dialogue, _ = simulate(fake_llm, tmp_path)
    assert dialogue.stop_reason == "max_turns" and len(dialogue.turns) == 9


def test_moderator_can_stop_early(fake_llm, tmp_path):
    fake_llm.queue("moderator", '{"stop": true, "reason": "goodbye loop"}')
    dialogue, _ = simulate(fake_llm, tmp_path)
    assert dialogue.stop_reason == "moderator" and len(dialogue.turns) == 5


def test_single_call_writes_the_whole_dialogue_and_records_violations(fake_llm, tmp_path):
    dialogue, fake = simulate(fake_llm, tmp_path, mode=SimulationMode.single_call)
    assert dict(fake.calls) == {"dialogue_writer": 1}
    assert dialogue.mode == "single_call" and dialogue.stop_reason == "single_call"
    assert 5 <= len(dialogue.turns) <= 9 and len(dialogue.turns) % 2 == 1
    assert [t.role for t in dialogue.turns] == ["character", "user"] * (len(dialogue.turns) // 2) + ["character"]
    assert dialogue.turns[0].content == load_persona_file(ASSETS / "personas" / "lin-xiaoman.yaml").opening_line
    character = [t for t in dialogue.turns[1:] if t.role == "character"]
    bad = character[1]  # the fake writer's second character message is assistant-speak without tags
    assert bad.content == BAD_REPLY and {"assistant_speak", "bad_format"} <= {v.code for v in bad.violations}
    for turn in character:
        if turn is not bad:
            assert not turn.violations, turn
            parse_reply(turn.content)


def test_single_call_output_that_never_validates_is_recorded(fake_llm, tmp_path):
    wrong_order = '{"turns": [{"role": "character", "content": "hi"}, {"role": "user", "content": "yo"}]}'
    fake_llm.queue("dialogue_writer", *[wrong_order] * 3)
    dialogue, _ = simulate(fake_llm, tmp_path, mode=SimulationMode.single_call)
    assert dialogue.stop_reason == "invalid_output" and len(dialogue.turns) == 1
    assert "turns alternate user, character" in fake_llm.requests[-1]["messages"][-1]["content"]
