"""The shipped evaluation assets (issue 12): held-out persona cards, scripted scenarios and the
judge calibration set load, agree with each other and meet the minimums the issue sets."""

from __future__ import annotations

from collections import Counter
from functools import cache

import pytest
import yaml
from pydantic import ValidationError

from rp_pipeline.core.evaluation import load_scenarios
from rp_pipeline.core.judging import CalibrationItem
from rp_pipeline.core.judging import Turn as CalibrationTurn
from rp_pipeline.core.langid import detect_language
from rp_pipeline.core.models import PersonaCard
from rp_pipeline.core.personas import load_persona_file
from rp_pipeline.core.reply_format import parse_reply
from rp_pipeline.core.rules import RuleSet, check_character_reply
from rp_pipeline.settings import REPO_ROOT

ASSETS = REPO_ROOT / "assets"
EVAL = ASSETS / "eval"
RULES = RuleSet.load(ASSETS / "rules")

MIN_PERSONAS, MIN_PERSONA_LANGUAGES, MIN_USER_TURNS, MIN_LANGUAGE_SWITCHES = 8, 4, 6, 4
MIN_ITEMS, MIN_ITEMS_PER_LANGUAGE, CALIBRATION_LANGUAGES = 60, 12, ("zh", "en", "ja", "es")
MIN_PER_CATEGORY = {
    "assistant_speak": 4,
    "code_or_list": 4,
    "wrong_language": 4,
    "goodbye": 4,
    "user_echo": 4,
    "opening_echo": 4,
    "stage_direction": 4,
    "out_of_knowledge": 4,
    "near_tie": 8,
}


@cache
def eval_cards() -> dict[str, PersonaCard]:
    return {c.id: c for c in map(load_persona_file, sorted((EVAL / "personas").glob("*.yaml")))}


@cache
def calibration_files() -> dict[str, list[dict]]:
    paths = sorted((EVAL / "calibration").glob("*.yaml"))
    return {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in paths}


def item_problems(language: str, item: CalibrationItem, cards: dict[str, PersonaCard]) -> list[str]:
    """What is wrong with one validated item of `<language>.yaml` against the eval cards."""
    card = cards.get(item.persona)
    if card is None:
        return [f"unknown eval persona {item.persona!r}"]
    problems = []
    if not item.id.startswith(f"{language}-") or card.language != language:
        problems.append(f"id {item.id!r} / persona language {card.language!r} do not match the file {language!r}")
    if item.conversation[0].content != card.opening_line:
        problems.append("the conversation does not start with the card's opening line")
    last_user = item.conversation[-1].content
    acceptable = {"better": item.better, "worse": item.worse} if item.tie else {"better": item.better}
    for name, reply in acceptable.items():
        if found := check_character_reply(reply, card.language, RULES, last_user):
            problems.append(f"{name} breaks the reply rules: {[v.code for v in found]}")
    for turn in item.conversation[1:]:
        if turn.role == "character" and (found := check_character_reply(turn.content, card.language, RULES)):
            problems.append(f"a character turn of the conversation breaks the reply rules: {[v.code for v in found]}")
    parse_reply(item.worse)  # a worse reply fails its category, not the format
    return problems


def test_eval_personas_are_enough_held_out_cards_in_enough_languages():
    cards = eval_cards()
    assert len(cards) >= MIN_PERSONAS
    assert len({c.language for c in cards.values()}) >= MIN_PERSONA_LANGUAGES
    for card in cards.values():
        for line in [*card.speaking_examples, card.opening_line]:
            assert check_character_reply(line, card.language, RULES) == [], (card.id, line)
    training = [load_persona_file(p) for p in sorted((ASSETS / "personas").glob("*.yaml"))]
    for field in ("id", "name", "occupation", "opening_line"):
        assert not {getattr(c, field) for c in training} & {getattr(c, field) for c in cards.values()}, field


def test_scenarios_give_every_eval_persona_long_scripts_with_language_switches():
    cards = eval_cards()
    scenarios = load_scenarios(EVAL / "scenarios.yaml", cards)
    assert len({s.id for s in scenarios}) == len(scenarios)
    assert {s.persona_id for s in scenarios} == set(cards)
    assert min(len(s.user_turns) for s in scenarios) >= MIN_USER_TURNS

    def switches(scenario) -> bool:
        """The user writes in the persona's language and, later or earlier, in another one."""
        detected = {detect_language(turn) for turn in scenario.user_turns} - {None}
        return cards[scenario.persona_id].language in detected and len(detected) > 1

    assert sum(map(switches, scenarios)) >= MIN_LANGUAGE_SWITCHES


def test_calibration_set_is_valid_and_meets_the_minimums():
    cards = eval_cards()
    items = {lang: [CalibrationItem.model_validate(raw) for raw in raws] for lang, raws in calibration_files().items()}
    problems = {i.id: p for lang, group in items.items() for i in group if (p := item_problems(lang, i, cards))}
    assert problems == {}
    ids = [i.id for group in items.values() for i in group]
    assert len(ids) == len(set(ids)) >= MIN_ITEMS
    per_language = {lang: len(group) for lang, group in items.items() if len(group) >= MIN_ITEMS_PER_LANGUAGE}
    assert set(CALIBRATION_LANGUAGES) <= set(per_language), per_language
    per_category = Counter(i.category for group in items.values() for i in group)
    assert {c: n for c, n in MIN_PER_CATEGORY.items() if per_category[c] < n} == {}, per_category


def test_calibration_set_holds_the_failures_quoted_in_the_issues():
    worse = [raw["worse"] for group in calibration_files().values() for raw in group]
    lao_chen = [raw["worse"] for raw in calibration_files()["zh"] if raw["persona"] == "lao-chen-jianbing"]
    assert any("```python" in reply for reply in lao_chen)  # the 52-year-old vendor's code block
    assert any(reply.startswith("好的，我可以帮你写一封请假邮件。") and "请告诉我" in reply for reply in worse)
    assert any(reply.startswith("1. **Cost**: AI is a powerful tool") for reply in worse)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"conversation": [{"role": "user", "content": "hi"}, {"role": "character", "content": "x"}]}, "alternate"),
        ({"worse": "上车上车<emotion>happy</emotion>"}, "same reply"),
        ({"category": "near_tie"}, "tie: true"),
        ({"category": "rudeness"}, "category"),
        ({"judge_hint": "pick better"}, "Extra inputs"),
    ],
)
def test_malformed_calibration_items_are_rejected(change, message):
    raw = {
        "id": "zh-x-01",
        "persona": "wu-deming",
        "category": "goodbye",
        "conversation": [{"role": "character", "content": "a"}, {"role": "user", "content": "b"}],
        "better": "上车上车<emotion>happy</emotion>",
        "worse": "拜拜<emotion>happy</emotion>",
        **change,
    }
    with pytest.raises(ValidationError, match=message):
        CalibrationItem.model_validate(raw)


def test_item_problems_names_a_broken_item():
    card = eval_cards()["wu-deming"]
    item = CalibrationItem(
        id="en-goodbye-99",
        persona="wu-deming",
        category="goodbye",
        conversation=[CalibrationTurn(role="character", content="开车"), CalibrationTurn(role="user", content="拜拜")],
        better="好嘛，拜拜<emotion>happy</emotion>",
        worse="慢走<emotion>happy</emotion>",
    )
    problems = item_problems("en", item, eval_cards())
    assert any("do not match the file" in p for p in problems)
    assert any("opening line" in p for p in problems)
    assert any(p.startswith("better breaks the reply rules") and "goodbye" in p for p in problems)
    assert item_problems("zh", item.model_copy(update={"persona": "nobody"}), eval_cards()) == [
        "unknown eval persona 'nobody'"
    ]
    good = item.model_copy(
        update={
            "id": "zh-goodbye-99",
            "conversation": [CalibrationTurn(role="character", content=card.opening_line), *item.conversation[1:]],
            "better": "急啥，雨还没停<emotion>neutral</emotion>",
        }
    )
    assert item_problems("zh", good, eval_cards()) == []


def test_a_checkpoint_names_the_weights_its_method_needs():
    from rp_pipeline.core.artifacts import Checkpoint

    common = {"version": "v", "stage": "sft", "base_model_dir": "/base", "corpus_version": "c"}
    lora = Checkpoint(**common, adapters=["/a"])
    full = Checkpoint(**common, method="full", model_dir="/full")
    assert (lora.dense_dir, full.dense_dir, full.base_model_dir) == ("/base", "/full", "/base")
    with pytest.raises(ValueError, match="adapters: a LoRA checkpoint has at least one adapter"):
        Checkpoint(**common)
    with pytest.raises(ValueError, match="model_dir: set exactly when method is full"):
        Checkpoint(**common, method="full")
