"""The multi-agent simulator against the fake server (no Dagster)."""

from __future__ import annotations

import re

from rp_pipeline.core.models import EMOTIONS, TopicSet
from rp_pipeline.core.personas import load_persona_file
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.reply_format import parse_reply
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.core.seeds import load_seed_variables, sample_seeds
from rp_pipeline.core.simulate import DialogueSimulator, SimulationConfig, SimulationMode, assign_samples
from rp_pipeline.llm.client import LLMClient
from rp_pipeline.llm.config import load_llm_config
from rp_pipeline.settings import REPO_ROOT
from rp_pipeline_tests.fake_llm import BAD_REPLY, SCENE_TOPICS, Cut

ASSETS = REPO_ROOT / "assets"
LIN = load_persona_file(ASSETS / "personas" / "lin-xiaoman.yaml")
E = "<emotion>{}</emotion>".format


SAMPLE = sample_seeds(load_seed_variables(ASSETS / "seeds"), 1, seed=0)[0]


def simulate(fake_llm, tmp_path, card=LIN, keywords=("咖啡", "猫"), **config):
    client = LLMClient(load_llm_config(fake_llm.write_config(tmp_path / "m.yaml")))
    sample = SAMPLE
    topics = TopicSet(id="topic-x", sample_id=sample.id, keywords=list(keywords))
    sim = DialogueSimulator(
        client,
        Prompts(ASSETS / "prompts"),
        RuleSet.load(ASSETS / "rules"),
        SimulationConfig(**{"min_turns": 5, "max_turns": 9, "topic_every": 2, "moderator_every": 2, **config}),
    )
    return client.run(sim.simulate(card, sample, topics)), fake_llm


def requests(fake, role: str) -> list[dict]:
    return [r for r in fake.requests if r["model"] == f"fake-{role}"]


def test_agents_alternate_and_character_replies_parse(fake_llm, tmp_path):
    fake_llm.queue("character", BAD_REPLY)
    dialogue, fake = simulate(fake_llm, tmp_path)
    assert [t.role for t in dialogue.turns[:3]] == ["character", "user", "character"]
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


def test_the_scene_topic_goes_to_the_character_not_the_user(fake_llm, tmp_path):
    dialogue, fake = simulate(fake_llm, tmp_path)
    topic = SCENE_TOPICS["Chinese"]  # the scene agent answers in the persona's language
    topics = [(t.role, t.topic) for t in dialogue.turns if t.topic]
    assert topics and all(role == "character" and t == topic for role, t in topics)
    assert dialogue.turns[2].topic == topic  # the first reply already brings one up
    hints = [r["messages"][0]["content"] for r in requests(fake, "character")]
    assert any(f"Bring up: {topic}." in h for h in hints)
    assert not any(topic in r["messages"][0]["content"] for r in requests(fake, "user_agent"))
    scene = requests(fake, "scene_agent")[0]["messages"][0]["content"]
    assert LIN.occupation in scene and LIN.specialty in scene  # the topic is chosen for this card


def test_an_authored_card_gets_no_keywords_written_for_another_occupation(fake_llm, tmp_path):
    dialogue, fake = simulate(fake_llm, tmp_path, keywords=("咖啡", "猫"))
    assert not {"咖啡", "猫"} & {t.topic for t in dialogue.turns}
    assert all("咖啡, 猫" not in r["messages"][0]["content"] for r in requests(fake, "scene_agent"))


def test_the_synthesized_card_gets_its_sample_keywords_in_its_language(fake_llm, tmp_path):
    own = LIN.model_copy(update={"source": "synthesized", "parent_ids": [SAMPLE.id, "topic-x"]})
    fake_llm.queue("scene_agent", "a rainy-day film")  # English for a Chinese persona
    dialogue, fake = simulate(fake_llm, tmp_path, card=own, keywords=("coffee beans", "猫咪"))
    # the first topic is the sample's in-language keyword; the scene agent's English one is
    # replaced by an unused in-language keyword, and there is none left
    assert [t.topic for t in dialogue.turns if t.topic] == ["猫咪"]
    scene = requests(fake, "scene_agent")[0]["messages"][0]["content"]
    assert "猫咪" in scene and "coffee beans" not in scene


def test_user_agent_and_character_are_told_the_same_relationship(fake_llm, tmp_path):
    dialogue, fake = simulate(fake_llm, tmp_path)
    assert dialogue.user.relationship == LIN.relation_to_user
    prompt = requests(fake, "user_agent")[0]["messages"][0]["content"]
    assert LIN.relation_to_user in prompt
    assert LIN.relation_to_user in requests(fake, "character")[0]["messages"][0]["content"]


def test_the_user_agent_sees_replies_without_tags_or_label_words(fake_llm, tmp_path):
    fake_llm.queue("character", "好啊 Neutral" + E("neutral") + "你呢" + E("happy"))
    dialogue, fake = simulate(fake_llm, tmp_path)
    assert dialogue.turns[0].content == LIN.opening_line and "<emotion>" in LIN.opening_line
    for request in requests(fake, "user_agent"):
        prompt = request["messages"][0]["content"]
        transcript = prompt.split("The chat so far:", 1)[1].split("Write your next message", 1)[0]
        assert "<" not in transcript and ">" not in transcript
        labels = [w for w in re.findall(r"[A-Za-z]+", transcript) if w.lower() in EMOTIONS]
        assert not labels, transcript
    first = requests(fake, "user_agent")[0]["messages"][0]["content"]
    assert "早啊冰块先生" in first  # the words themselves are there


def test_a_reply_cut_by_the_token_limit_is_regenerated(fake_llm, tmp_path):
    cut = "今天店里来了一位特别奇怪的客人" + E("surprised")  # rule-clean text, but the limit fell in it
    fake_llm.queue("character", Cut(cut))
    dialogue, _ = simulate(fake_llm, tmp_path)
    reply = dialogue.turns[2]
    assert [(a.content, [v.code for v in a.violations]) for a in reply.rejected] == [(cut, ["truncated"])]
    assert reply.content != cut and not reply.violations


def test_a_reply_that_echoes_the_opening_line_is_regenerated(fake_llm, tmp_path):
    fake_llm.queue("character", LIN.opening_line)
    dialogue, _ = simulate(fake_llm, tmp_path)
    reply = dialogue.turns[2]
    assert [v.code for v in reply.rejected[0].violations] == ["echo"]
    assert reply.content != LIN.opening_line and not reply.violations


def test_a_degenerate_user_turn_is_regenerated(fake_llm, tmp_path):
    fake_llm.queue("user_agent", "う" * 40)
    dialogue, fake = simulate(fake_llm, tmp_path)
    first = dialogue.turns[1]
    assert first.role == "user" and "う" not in first.content and not first.violations
    retry = requests(fake, "user_agent")[1]["messages"][0]["content"]
    assert "rejected (user_degenerate" in retry


def test_a_user_turn_that_never_passes_is_kept_with_its_violations(fake_llm, tmp_path):
    refusal = "I'm sorry, but I can't help with that."
    fake_llm.queue("user_agent", *[refusal] * 2)
    dialogue, _ = simulate(fake_llm, tmp_path, max_attempts=2)
    first = dialogue.turns[1]
    assert first.content == refusal
    assert "user_assistant_speak" in {v.code for v in first.violations}
    assert not dialogue.turns[3].violations  # the next user turn is fine again


def test_assign_samples_prefers_the_persona_language():
    samples = sample_seeds(load_seed_variables(ASSETS / "seeds"), 40, seed=1)
    picked = assign_samples(LIN, samples, 3)
    assert len(picked) == 3 and {s.language for s in picked} == {"zh"} and len({s.id for s in picked}) == 3


def test_a_user_turn_cut_by_the_token_limit_is_regenerated_and_a_last_cut_one_is_marked(fake_llm, tmp_path):
    fake_llm.queue("user_agent", Cut("我感觉到了一种"))
    dialogue, _ = simulate(fake_llm, tmp_path)
    first = dialogue.turns[1]
    assert first.content != "我感觉到了一种" and not first.cut and not first.violations

    fake_llm.queue("user_agent", *[Cut("我感觉到了一种")] * 2)
    dialogue, _ = simulate(fake_llm, tmp_path, max_attempts=2)
    first = dialogue.turns[1]
    assert first.content == "我感觉到了一种" and first.cut
    assert [v.code for v in first.violations] == ["user_truncated"]


def test_a_language_switch_dialogue_has_the_user_ask_and_insist_in_another_language(fake_llm, tmp_path):
    plain, plain_fake = simulate(fake_llm, tmp_path, max_turns=7, min_turns=7)
    plain_requests = list(plain_fake.requests)
    never, _ = simulate(fake_llm, tmp_path, max_turns=7, min_turns=7, language_switch_share=0.0)
    assert plain.switch_language is None and never.id == plain.id  # the share alone leaves ids alone

    fake_llm.requests.clear()
    dialogue, fake = simulate(fake_llm, tmp_path, max_turns=7, min_turns=7, language_switch_share=1.0)
    assert dialogue.switch_language == "en" and dialogue.id != plain.id
    users = [t for t in dialogue.turns if t.role == "user"]
    prompts = [r["messages"][0]["content"] for r in requests(fake, "user_agent")]
    assert "is in English, not Chinese: in it you ask" in prompts[1] and "insist once" in prompts[2]
    assert "in Chinese only" in prompts[0]
    assert all(not t.violations for t in users)
    assert not re.search(r"[\u4e00-\u9fff]", users[1].content + users[2].content)  # the fake writes as told
    assert re.search(r"[\u4e00-\u9fff]", users[0].content)
    replies = [t for t in dialogue.turns[1:] if t.role == "character"]
    assert len(replies) == 3 and all(not t.violations for t in replies)
    # the character is told at generation time, never in the training system prompt
    character_systems = [r["messages"][0]["content"] for r in requests(fake, "character")]
    assert all("You only ever text the user in Chinese" in s for s in character_systems)
    assert "You only ever text" not in dialogue.system_prompt
    assert not any("You only ever text" in r["messages"][0]["content"] for r in plain_requests)


def test_an_english_character_gets_a_user_switching_to_chinese(fake_llm, tmp_path):
    riley = load_persona_file(ASSETS / "eval" / "personas" / "riley-park.yaml")
    dialogue, fake = simulate(fake_llm, tmp_path, card=riley, keywords=("coffee",), language_switch_share=1.0)
    assert dialogue.switch_language == "zh"
    prompts = [r["messages"][0]["content"] for r in requests(fake, "user_agent")]
    assert "is in Chinese, not English: in it you ask" in prompts[1]
    users = [t for t in dialogue.turns if t.role == "user"]
    assert re.search(r"[\u4e00-\u9fff]", users[1].content) and not users[1].violations
