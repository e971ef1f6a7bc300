import pytest
import yaml
from pydantic import BaseModel

from rp_pipeline.llm.cache import ResponseCache
from rp_pipeline.llm.client import LLMClient, StructuredOutputError
from rp_pipeline.llm.config import load_llm_config


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


def test_structured_output_is_repaired_then_gives_up(fake_llm, tmp_path):
    fake_llm.queue("judge", "not json", '{"keywords": ["a"]}')
    c = client(fake_llm, tmp_path, cache=False)
    assert c.run(c.structured("judge", [{"role": "user", "content": "x"}], Keywords, seed=0)).keywords == ["a"]
    assert "That JSON is invalid" in fake_llm.requests[-1]["messages"][-1]["content"]
    fake_llm.queue("judge", "no", "still no", "never")
    with pytest.raises(StructuredOutputError, match="judge.*Keywords"):
        c.run(c.structured("judge", [{"role": "user", "content": "y"}], Keywords, seed=0))


def test_server_errors_are_retried(fake_llm, tmp_path):
    fake_llm.queue("scene_agent", 500, 503)
    c = client(fake_llm, tmp_path, cache=False)
    assert c.run(c.complete("scene_agent", [{"role": "user", "content": "x"}], seed=0)) == "a rainy-day film"
    assert fake_llm.calls["scene_agent"] == 3


def test_switching_a_role_provider_is_a_yaml_change(fake_llm, tmp_path):
    path = fake_llm.write_config(tmp_path / "a.yaml")
    other = yaml.safe_load(path.read_text())
    other["roles"]["character"] = {"model": "deepseek/deepseek-chat", "api_key_env": "DEEPSEEK_API_KEY"}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(other))
    a, b = (LLMClient(load_llm_config(tmp_path / n)) for n in ("a.yaml", "b.yaml"))
    assert a.routed_model("character") == "openai/fake-character"
    assert b.routed_model("character") == "deepseek/deepseek-chat"
    assert a.routed_model("judge") == b.routed_model("judge") == "openai/fake-judge"


def test_keys_come_from_the_environment_and_never_reach_the_ledger(fake_llm, tmp_path, monkeypatch):
    secret = "sk-test-secret-123456"
    monkeypatch.setenv("FAKE_KEY", secret)
    path = fake_llm.write_config(tmp_path / "m.yaml")
    raw = yaml.safe_load(path.read_text())
    raw["roles"]["judge"]["api_key_env"] = "FAKE_KEY"
    path.write_text(yaml.safe_dump(raw))
    fake_llm.queue("judge", 500, 500, 500)
    c = LLMClient(load_llm_config(path), ResponseCache(tmp_path / "c.sqlite"))
    with pytest.raises(Exception):
        c.run(c.complete("judge", [{"role": "user", "content": "x"}], seed=0))
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
