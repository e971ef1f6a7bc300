import json
from pathlib import Path

import pytest
import yaml

from rp_pipeline.core.card_checks import check_card, name_problem
from rp_pipeline.core.models import TopicSet
from rp_pipeline.core.personas import PersonaCardError, authored_persona_ids, load_persona_file, synthesize_personas
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.core.seeds import coverage, load_seed_variables, sample_seeds
from rp_pipeline.llm.client import LLMClient
from rp_pipeline.llm.config import load_llm_config
from rp_pipeline.settings import REPO_ROOT

ASSETS = REPO_ROOT / "assets"
RULES = RuleSet.load(ASSETS / "rules")
# The card that reached training in the demo run of issue 11 (its examples, untagged there, are
# tagged here: the writer's schema now requires the tags, see the repair test below).
BAD_DRAFT = {
    "name": "A friendly street-food stall owner",
    "gender": "female",
    "age": 35,
    "background": "Runs a stall.",
    "speaking_examples": ["Welcome to my stall!<emotion>happy</emotion>"] * 4,
    "knowledge_boundary": "Does not know much.",
    "opening_line": "Hello! I'm your AI companion app.<emotion>happy</emotion>",
    "specialty": "noodles",
}


def test_seed_tables_are_complete():
    variables = load_seed_variables(ASSETS / "seeds")
    assert len(variables.character_personalities) == 29
    assert len(variables.user_personalities) == 12
    assert len(variables.character_occupations) == 15
    assert len(set(variables.user_occupations)) == 95
    assert len(variables.languages) >= 15
    assert len(variables.emotions) == 8


def test_sampling_is_reproducible_and_covers_tables():
    variables = load_seed_variables(ASSETS / "seeds")
    first, again = sample_seeds(variables, 29, seed=1), sample_seeds(variables, 29, seed=1)
    assert [s.id for s in first] == [s.id for s in again]
    assert [s.id for s in sample_seeds(variables, 29, seed=2)] != [s.id for s in first]
    cov = coverage(variables, first)
    assert cov["character_personalities"] == 1.0 and cov["character_occupations"] == 1.0
    assert cov["user_personalities"] == 1.0


def test_authored_cards_validate_in_three_languages():
    ids = authored_persona_ids(ASSETS / "personas")
    cards = [load_persona_file(ASSETS / "personas" / f"{i}.yaml") for i in ids]
    assert len(cards) >= 6
    assert len({c.language for c in cards}) >= 3


def _card(tmp_path: Path, key: str, **changes) -> Path:
    raw = yaml.safe_load((ASSETS / "personas" / "theo-barnes.yaml").read_text())
    raw.update(id=key, **changes)
    raw = {k: v for k, v in raw.items() if v is not None}
    path = tmp_path / f"{key}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"opening_line": None}, "opening_line"),
        ({"age": "very old"}, "age"),
        ({"language": "xx"}, "language"),
        ({"speaking_examples": []}, "speaking_examples"),
    ],
)
def test_bad_cards_name_file_and_field(tmp_path, changes, field):
    path = _card(tmp_path, "bad", **changes)
    with pytest.raises(PersonaCardError) as err:
        load_persona_file(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_bad_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: Theo\nage: 38\nbackground: a farm: in Yorkshire\n")
    with pytest.raises(PersonaCardError, match=r"broken.yaml, line 3: not valid YAML: mapping values"):
        load_persona_file(path)


def test_every_shipped_card_passes_the_content_checks():
    paths = sorted((ASSETS / "personas").glob("*.yaml")) + sorted((ASSETS / "eval" / "personas").glob("*.yaml"))
    assert len(paths) == 16  # 6 training cards, 10 held-out eval cards
    for path in paths:
        assert check_card(load_persona_file(path), RULES) == [], path
        load_persona_file(path, RULES)


@pytest.mark.parametrize(
    "name, occupation",
    [
        ("A friendly street-food stall owner", "street-food stall owner"),
        ("Street Food Vendor", "street-food stall owner"),
        ("The Barista", "café barista"),
        ("friendly vendor", "vendor"),
        ("AI Companion", "companion"),
        ("Lin the barista from the corner café", "barista"),
        ("一个友好的摊主", "煎饼摊主"),
        ("咖啡师小林", "咖啡师"),
        ("社区小咖啡馆的店主兼咖啡师", "咖啡师"),
        ("Agent 47", "spy"),
    ],
)
def test_a_description_or_role_is_not_a_name(name, occupation):
    assert name_problem(name, occupation)


@pytest.mark.parametrize(
    "name, occupation",
    [
        ("Mara Quinn", "bike mechanic"),
        ("María de la Cruz", "florista"),
        ("Jean-Luc Picard", "captain"),
        ("Siobhan O'Brien", "nurse"),
        ("Nguyễn Thị Lan", "giáo viên"),
        ("Lena Baker", "baker"),  # a surname that happens to be her trade
        ("Dr. Theo Barnes", "veterinarian"),
        ("陈建国（街坊都叫他老陈）", "地铁口煎饼果子摊摊主"),  # a nickname aside
        ("佐藤ひなた", "花屋の店員"),
        ("김민지", "바리스타"),
    ],
)
def test_a_personal_name_passes(name, occupation):
    assert name_problem(name, occupation) is None


@pytest.mark.parametrize(
    "changes, field, code",
    [
        ({"name": "A grumpy vet"}, "'name'", "bad_name"),
        ({"speaking_examples": ["Biscuit says hi.<emotion>happy</emotion>"] * 2}, "'speaking_examples.1'", "duplicate"),
        ({"speaking_examples": ["Biscuit says hi."]}, "'speaking_examples.0'", "bad_format"),
        ({"speaking_examples": ["饼干向你问好<emotion>happy</emotion>"]}, "'speaking_examples.0'", "wrong_language"),
        ({"opening_line": "As an AI, I'm happy to help!<emotion>happy</emotion>"}, "'opening_line'", "assistant_speak"),
        (
            {"opening_line": "Theo Barnes: You're up early.<emotion>surprised</emotion>"},
            "'opening_line'",
            "name_prefix",
        ),
    ],
)
def test_an_authored_card_with_bad_content_names_file_and_field(tmp_path, changes, field, code):
    path = _card(tmp_path, "bad", **changes)
    load_persona_file(path)  # the form is fine
    with pytest.raises(PersonaCardError) as err:
        load_persona_file(path, RULES)
    message = str(err.value)
    assert str(path) in message and f"field {field}" in message and code in message, message


def _synthesize(fake_llm, tmp_path, attempts):
    client = LLMClient(load_llm_config(fake_llm.write_config(tmp_path / "m.yaml")))
    sample = next(s for s in sample_seeds(load_seed_variables(ASSETS / "seeds"), 20, seed=0) if s.language == "en")
    topics = TopicSet(id="topic-x", sample_id=sample.id, keywords=["street food"])
    pairs = [(sample, topics)]
    return client.run(synthesize_personas(client, Prompts(ASSETS / "prompts"), RULES, pairs, attempts))


def test_a_bad_synthesized_card_is_written_again(fake_llm, tmp_path):
    fake_llm.queue("persona_writer", json.dumps(BAD_DRAFT))
    cards, drops = _synthesize(fake_llm, tmp_path, attempts=2)
    assert [c.name for c in cards] == ["Mara Quinn"] and drops == []
    retry = [r for r in fake_llm.requests if r["model"] == "fake-persona_writer"][1]["messages"][0]["content"]
    assert "Your last card was rejected" in retry and "field 'name'" in retry


def test_a_synthesized_card_that_never_passes_is_dropped_with_its_reasons(fake_llm, tmp_path):
    fake_llm.queue("persona_writer", *[json.dumps(BAD_DRAFT)] * 2)
    cards, [drop] = _synthesize(fake_llm, tmp_path, attempts=2)
    assert cards == [] and drop.reason == "bad_card" and drop.row_id.startswith("syn-")
    for part in ("field 'name'", "field 'speaking_examples.1'", "duplicate_example", "field 'opening_line'"):
        assert part in drop.detail, drop.detail


def test_the_writer_must_tag_examples_and_opening_line(fake_llm, tmp_path):
    untagged = {**BAD_DRAFT, "name": "Rosa Lim", "speaking_examples": ["Welcome!", "Hot noodles here"]}
    fake_llm.queue("persona_writer", json.dumps(untagged))
    cards, drops = _synthesize(fake_llm, tmp_path, attempts=1)
    assert [c.name for c in cards] == ["Mara Quinn"] and drops == []  # the repaired answer
    first, repair = [r for r in fake_llm.requests if r["model"] == "fake-persona_writer"]
    schema = first["response_format"]["schema"]["properties"]
    assert "<emotion>" in schema["opening_line"]["pattern"]  # a constrained decoder writes the tags
    assert "<emotion>" in schema["speaking_examples"]["items"]["pattern"]
    assert "That JSON is invalid" in repair["messages"][-1]["content"]


def test_a_card_the_provider_never_answers_is_dropped_with_llm_error(fake_llm, tmp_path):
    fake_llm.queue("persona_writer", 500, 500, 500)  # the request and its two retries
    cards, [drop] = _synthesize(fake_llm, tmp_path, attempts=2)
    assert cards == [] and drop.reason == "llm_error" and "scripted 500" in drop.detail
    assert fake_llm.calls["persona_writer"] == 3  # no second attempt against a provider that just failed
