"""Topic keywords are language-checked: a keyword not in the sample's language is dropped, the
writer is asked again while too few survive, and a sample left with none is dropped."""

from __future__ import annotations

import json

import pytest

from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.seeds import load_seed_variables, sample_seeds
from rp_pipeline.core.topics import fits_language, write_topics
from rp_pipeline.llm.client import LLMClient
from rp_pipeline.llm.config import load_llm_config
from rp_pipeline.settings import REPO_ROOT
from rp_pipeline_tests.fake_llm import TOPICS

ASSETS = REPO_ROOT / "assets"


@pytest.mark.parametrize(
    "phrase, language",
    [
        ("下雨天的咖啡馆", "zh"),
        ("猫", "zh"),
        ("雨の日の散歩", "ja"),
        ("花言葉", "ja"),
        ("street food", "en"),
        ("la comida callejera de Sevilla", "es"),
        ("비 오는 날", "ko"),
        ("кофе и книги", "ru"),
    ],
)
def test_a_phrase_in_the_language_fits(phrase, language):
    assert fits_language(phrase, language)


@pytest.mark.parametrize(
    "phrase, language",
    [
        ("coffee beans", "zh"),
        ("cat", "zh"),
        ("雨の日の散歩", "zh"),
        ("咖啡", "en"),
        ("the best coffee in town", "es"),
        ("street food stalls", "ja"),
        ("кофе", "en"),
    ],
)
def test_a_phrase_in_another_language_does_not_fit(phrase, language):
    assert not fits_language(phrase, language)


def _zh_sample():
    return next(s for s in sample_seeds(load_seed_variables(ASSETS / "seeds"), 20, seed=0) if s.language == "zh")


def _write(fake_llm, tmp_path, samples):
    client = LLMClient(load_llm_config(fake_llm.write_config(tmp_path / "m.yaml")))
    return client.run(write_topics(client, Prompts(ASSETS / "prompts"), samples, attempts=2))


def test_keywords_in_the_wrong_language_are_dropped_and_asked_again(fake_llm, tmp_path):
    mixed = {"keywords": ["coffee beans", "雨天", "street food"]}
    fake_llm.queue("topic_writer", json.dumps(mixed))
    [topics], drops = _write(fake_llm, tmp_path, [_zh_sample()])
    assert drops == [] and fake_llm.calls["topic_writer"] == 2  # one in-language keyword: asked again
    assert topics.keywords == ["雨天", *dict.fromkeys(TOPICS["Chinese"])]
    assert "Write every keyword in Chinese, not in English" in fake_llm.requests[0]["messages"][0]["content"]


def test_a_sample_without_any_keyword_in_its_language_is_dropped(fake_llm, tmp_path):
    english = json.dumps({"keywords": ["coffee beans", "rainy days", "street food"]})
    fake_llm.queue("topic_writer", english, english)
    sample = _zh_sample()
    topics, [drop] = _write(fake_llm, tmp_path, [sample])
    assert topics == [] and (drop.row_id, drop.reason) == (sample.id, "wrong_language")
    assert "coffee beans" in drop.detail and "Chinese" in drop.detail


def test_a_sample_the_provider_never_answers_is_dropped_and_the_others_go_on(fake_llm, tmp_path):
    fake_llm.queue("topic_writer", 500)  # no retries below: the first request of the batch gets no answer
    client = LLMClient(load_llm_config(fake_llm.write_config(tmp_path / "m.yaml", num_retries=0)))
    samples = [s for s in sample_seeds(load_seed_variables(ASSETS / "seeds"), 20, seed=0) if s.language == "zh"][:2]
    topics, [drop] = client.run(write_topics(client, Prompts(ASSETS / "prompts"), samples, attempts=2))
    assert drop.reason == "llm_error" and "scripted 500" in drop.detail
    assert {t.sample_id for t in topics} | {drop.row_id} == {s.id for s in samples}


def test_a_sample_whose_writer_never_gives_valid_json_is_dropped_as_invalid_output(fake_llm, tmp_path):
    fake_llm.queue("topic_writer", *["not json at all"] * 6)  # 2 attempts x (1 + 2 repairs)
    sample = _zh_sample()
    topics, [drop] = _write(fake_llm, tmp_path, [sample])
    assert topics == [] and (drop.row_id, drop.reason) == (sample.id, "invalid_output")
    assert "TopicList" in drop.detail
