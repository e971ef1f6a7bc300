import asyncio
import time

import pytest
import yaml
from pydantic import BaseModel

from rp_pipeline.core.chat import LLMCallFailed, StructuredOutputError
from rp_pipeline.core.cleaning.endings import end_probability
from rp_pipeline.llm.cache import ResponseCache
from rp_pipeline.llm.client import LLMClient
from rp_pipeline.llm.config import load_llm_config
from rp_pipeline_tests.fake_llm import Cut, NextTokens


class Keywords(BaseModel):
    keywords: list[str]


def client(fake_llm, tmp_path, cache=True, **overrides):
    config = load_llm_config(fake_llm.write_config(tmp_path / "models.yaml", **overrides))
    return LLMClient(config, ResponseCache(tmp_path / "cache.sqlite") if cache else None)


def test_cache_makes_the_second_run_free(fake_llm, tmp_path):
    messages = [{"role": "user", "content": "topics please"}]
    first = client(fake_llm, tmp_path)
    first.run(first.structured("topic_writer", messages, Keywords, seed=1))
    calls_after_first = sum(fake_llm.calls.values())
    second = client(fake_llm, tmp_path)
    result = second.run(second.structured("topic_writer", messages, Keywords, seed=1))
    assert result.keywords[0] == "coffee"
    assert sum(fake_llm.calls.values()) == calls_after_first
    assert [c.cache_hit for c in second.calls] == [True]


def test_finish_reason_is_returned_and_cached(fake_llm, tmp_path):
    fake_llm.queue("scene_agent", Cut("a rainy-d"))
    messages = [{"role": "user", "content": "x"}]
    first = client(fake_llm, tmp_path)
    answer = first.run(first.complete("scene_agent", messages, seed=0))
    assert (answer.text, answer.finish_reason, answer.cut) == ("a rainy-d", "length", True)
    second = client(fake_llm, tmp_path)
    again = second.run(second.complete("scene_agent", messages, seed=0))
    assert (again.finish_reason, again.cut, second.calls[-1].cache_hit) == ("length", True, True)
    # an entry cached before finish_reason was stored reads as unknown, not as cut
    ResponseCache(tmp_path / "cache.sqlite").put(second.calls[-1].prompt_hash, {"text": "old", "model": "m"})
    old = second.run(second.complete("scene_agent", messages, seed=0))
    assert (old.text, old.finish_reason, old.cut) == ("old", None, False)
    plain = second.run(second.complete("scene_agent", [{"role": "user", "content": "y"}], seed=0))
    assert (plain.finish_reason, plain.cut) == ("stop", False)


def test_next_token_probabilities_are_asked_for_returned_and_cached(fake_llm, tmp_path):
    fake_llm.unfinished_endings = {"一点桂"}
    messages = [{"role": "user", "content": "桂花拿铁"}, {"role": "assistant", "content": "我给你多加一点桂"}]
    first = client(fake_llm, tmp_path)
    answer = first.run(first.complete("cleaner", messages, seed=0, top_logprobs=20))
    sent = fake_llm.requests[-1]
    assert (sent["logprobs"], sent["top_logprobs"], sent["messages"][-1]["role"]) == (True, 20, "assistant")
    assert [t for t, _ in answer.next_tokens] == ["花", "圆", "，"]
    assert answer.next_tokens[0][1] == pytest.approx(0.7)
    second = client(fake_llm, tmp_path)
    again = second.run(second.complete("cleaner", messages, seed=0, top_logprobs=20))
    assert (again.next_tokens, second.calls[-1].cache_hit) == (answer.next_tokens, True)
    # a token that is part of a character (llama.cpp: "" and its bytes) is no end of message
    fake_llm.queue("cleaner", NextTokens(((b"\xe6\xaf", 0.5), ("", 0.2), ("。", 0.1))))
    asked = [*messages, {"role": "user", "content": "?"}]
    partial = second.run(second.complete("cleaner", asked, seed=0, top_logprobs=5))
    assert partial.next_tokens == (("\ufffd", pytest.approx(0.5)), ("", pytest.approx(0.2)), ("。", pytest.approx(0.1)))
    assert end_probability(partial.next_tokens) == pytest.approx(0.3)
    # a plain request asks for no probabilities and gets none
    plain = second.run(second.complete("scene_agent", [{"role": "user", "content": "z"}], seed=0))
    assert "logprobs" not in fake_llm.requests[-1] and plain.next_tokens == ()


def test_structured_output_is_repaired_then_gives_up(fake_llm, tmp_path):
    fake_llm.queue("judge", "not json", '{"keywords": ["a"]}')
    c = client(fake_llm, tmp_path, cache=False)
    assert c.run(c.structured("judge", [{"role": "user", "content": "x"}], Keywords, seed=0)).keywords == ["a"]
    assert "That JSON is invalid" in fake_llm.requests[-1]["messages"][-1]["content"]
    fake_llm.queue("judge", "no", "still no", "never")
    with pytest.raises(StructuredOutputError, match=r"judge.*Keywords"):
        c.run(c.structured("judge", [{"role": "user", "content": "y"}], Keywords, seed=0))


def test_server_errors_are_retried(fake_llm, tmp_path):
    fake_llm.queue("scene_agent", 500, 503)
    c = client(fake_llm, tmp_path, cache=False)
    assert c.run(c.complete("scene_agent", [{"role": "user", "content": "x"}], seed=0)).text == "a rainy-day film"
    assert fake_llm.calls["scene_agent"] == 3


@pytest.mark.parametrize("failure", [500, 429])
def test_a_failing_primary_hands_over_to_its_fallback(fake_llm, tmp_path, failure):
    path = fake_llm.write_config(tmp_path / "m.yaml", num_retries=1)
    raw = yaml.safe_load(path.read_text())
    raw["roles"]["scene_agent"]["fallbacks"] = [
        {"model": "openai/fake-moderator", "api_base": fake_llm.api_base, "temperature": 0.1, "max_tokens": 11}
    ]
    path.write_text(yaml.safe_dump(raw))
    fake_llm.queue("scene_agent", failure, failure)
    c = LLMClient(load_llm_config(path), ResponseCache(tmp_path / "c.sqlite"))
    messages = [{"role": "user", "content": "x"}]
    assert c.run(c.complete("scene_agent", messages, seed=0)).text == '{"stop": false, "reason": "still going"}'
    assert fake_llm.calls["moderator"] == 1
    answered = fake_llm.requests[-1]
    assert answered["model"] == "fake-moderator" and (answered["temperature"], answered["max_tokens"]) == (0.1, 11)
    assert [(r.role, r.model, r.ok, r.cache_hit) for r in c.calls] == [
        ("scene_agent", "openai/fake-moderator", True, False)
    ]
    # the cached answer remembers which model gave it
    c.run(c.complete("scene_agent", messages, seed=0))
    assert (c.calls[-1].model, c.calls[-1].cache_hit) == ("openai/fake-moderator", True)


def test_calls_run_concurrently_up_to_the_limit(fake_llm, tmp_path):
    fake_llm.latency_s = 0.2
    c = client(fake_llm, tmp_path, cache=False, max_concurrency=4)

    async def many():
        return await asyncio.gather(
            *(c.complete("scene_agent", [{"role": "user", "content": f"x{i}"}], seed=i) for i in range(12))
        )

    assert [r.text for r in c.run(many())] == ["a rainy-day film"] * 12
    assert fake_llm.peak_in_flight == 4


def test_a_timed_out_primary_hands_over_to_its_fallback(fake_llm, tmp_path):
    path = fake_llm.write_config(tmp_path / "m.yaml", num_retries=0, timeout_s=0.5)
    raw = yaml.safe_load(path.read_text())
    raw["roles"]["scene_agent"]["fallbacks"] = [{"model": "openai/fake-moderator", "api_base": fake_llm.api_base}]
    path.write_text(yaml.safe_dump(raw))
    fake_llm.role_latency_s["scene_agent"] = 3.0
    c = LLMClient(load_llm_config(path))
    started = time.perf_counter()
    c.run(c.complete("scene_agent", [{"role": "user", "content": "x"}], seed=0))
    assert time.perf_counter() - started < 2.5
    assert [(r.model, r.ok) for r in c.calls] == [("openai/fake-moderator", True)]
    assert fake_llm.calls["scene_agent"] == 1


def test_switching_a_role_provider_is_a_yaml_change(fake_llm, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-deepseek-test")
    path = fake_llm.write_config(tmp_path / "a.yaml")
    other = yaml.safe_load(path.read_text())
    other["roles"]["character"] = {
        "model": "deepseek/deepseek-chat",
        "api_key_env": "DEEPSEEK_API_KEY",
        "temperature": 0.9,
        "fallbacks": [{"model": "anthropic/claude-sonnet-4-5", "api_key_env": "ANTHROPIC_API_KEY"}],
    }
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(other))
    a, b = (LLMClient(load_llm_config(tmp_path / n)) for n in ("a.yaml", "b.yaml"))

    def routed(client, role):
        return [
            (d["model_name"], d["litellm_params"]["model"], d["litellm_params"]["api_base"])
            for d in client.deployments(role)
        ]

    assert routed(a, "character") == [("character", "openai/fake-character", fake_llm.api_base)]
    assert routed(b, "character") == [
        ("character", "deepseek/deepseek-chat", None),
        ("character/fallback-1", "anthropic/claude-sonnet-4-5", None),
    ]
    assert b.deployments("character")[0]["litellm_params"]["api_key"] == "sk-deepseek-test"  # from the env
    assert routed(a, "judge") == routed(b, "judge") == [("judge", "openai/fake-judge", fake_llm.api_base)]
    # the router litellm would call is built from exactly these deployments (no network)
    router = b._get_router()
    deployment = router.get_model_list(model_name="character")[0]
    assert deployment["litellm_params"]["model"] == "deepseek/deepseek-chat"
    assert router.fallbacks == [{"character": ["character/fallback-1"]}]


def test_keys_come_from_the_environment_and_never_reach_the_ledger(fake_llm, tmp_path, monkeypatch):
    secret = "sk-test-secret-123456"
    monkeypatch.setenv("FAKE_KEY", secret)
    path = fake_llm.write_config(tmp_path / "m.yaml")
    raw = yaml.safe_load(path.read_text())
    raw["roles"]["judge"]["api_key_env"] = "FAKE_KEY"
    path.write_text(yaml.safe_dump(raw))
    fake_llm.queue("judge", 500, 500, 500)
    c = LLMClient(load_llm_config(path), ResponseCache(tmp_path / "c.sqlite"))
    with pytest.raises(LLMCallFailed, match="scripted 500") as failed:
        c.run(c.complete("judge", [{"role": "user", "content": "x"}], seed=0))
    assert secret not in str(failed.value) and failed.value.__cause__ is None  # the raw error is not chained
    assert secret not in repr(c.calls)
    assert secret not in (tmp_path / "m.yaml").read_text()


def test_missing_key_variable_is_a_clear_error(fake_llm, tmp_path):
    path = fake_llm.write_config(tmp_path / "m.yaml")
    raw = yaml.safe_load(path.read_text())
    raw["roles"]["judge"]["api_key_env"] = "RP_TEST_UNSET_KEY"
    path.write_text(yaml.safe_dump(raw))
    c = LLMClient(load_llm_config(path))
    with pytest.raises(RuntimeError, match="RP_TEST_UNSET_KEY"):
        c.run(c.complete("judge", [{"role": "user", "content": "x"}], seed=0))


def test_bad_model_map_names_the_file(tmp_path):
    (tmp_path / "m.yaml").write_text("roles: {character: {model: x}}\n")
    with pytest.raises(ValueError, match=r"(?s)m.yaml.*roles missing"):
        load_llm_config(tmp_path / "m.yaml")


def _grammar_map(fake_llm, tmp_path, fallback_body: dict | None = None):
    path = fake_llm.write_config(tmp_path / "models.yaml")
    config = yaml.safe_load(path.read_text())
    character = config["roles"]["character"]
    character["extra_body"] = {"grammar": 'root ::= [^<>$other_scripts]{1,81} "<emotion>happy</emotion>"'}
    if fallback_body is not None:
        character["fallbacks"] = [{"model": "openai/fake-character", "api_base": fake_llm.api_base, **fallback_body}]
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def test_a_grammar_keeps_a_reply_in_the_scripts_of_its_language(fake_llm, tmp_path):
    """`$other_scripts` in a grammar becomes, per request, the letters of the scripts the reply's
    language is not written in: Latin (and kana, hangul...) for Chinese, Han and kana for English;
    a call that names no language gets the grammar without them, as the map had it before."""
    c = LLMClient(load_llm_config(_grammar_map(fake_llm, tmp_path)), ResponseCache(tmp_path / "cache.sqlite"))
    messages = [{"role": "user", "content": "Can we speak English?"}]
    fake_llm.queue("character", *["不行<emotion>happy</emotion>"] * 3)
    for language in ("zh", "en", None):
        c.run(c.complete("character", messages, seed=1, language=language))
    zh, en, plain = (r["grammar"] for r in fake_llm.requests[-3:])
    latin, han, kana = r"\u0041-\u005A", r"\u4E00-\u9FFF", r"\u3040-\u309F"
    assert latin in zh and kana in zh and han not in zh
    assert han in en and kana in en and latin not in en
    assert plain == 'root ::= [^<>]{1,81} "<emotion>happy</emotion>"'
    assert len({call.prompt_hash for call in c.calls}) == 3  # the grammar is part of the request


def test_a_per_language_grammar_needs_the_same_body_on_every_fallback(fake_llm, tmp_path):
    with pytest.raises(ValueError, match=r"(?s)models.yaml.*other_scripts.*same extra_body"):
        load_llm_config(_grammar_map(fake_llm, tmp_path, fallback_body={}))
