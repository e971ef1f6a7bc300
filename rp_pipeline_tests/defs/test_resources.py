"""The LLM resource's clients."""

from __future__ import annotations

import json

import yaml

from rp_pipeline.defs.resources import LLMResource
from rp_pipeline.llm.embedded import API_BASES_ENV
from rp_pipeline.settings import REPO_ROOT


def test_policy_client_samples_the_character_without_provider_constraints(fake_llm, tmp_path):
    path = fake_llm.write_config(tmp_path / "m.yaml")
    raw = yaml.safe_load(path.read_text())
    grammar = {"grammar": 'root ::= "hi"'}
    raw["roles"]["character"].update(
        extra_body=grammar,
        fallbacks=[{"model": "openai/fake-judge", "api_base": fake_llm.api_base, "extra_body": grammar}],
    )
    path.write_text(yaml.safe_dump(raw))
    resource = LLMResource(config_path=str(path), cache_path=str(tmp_path / "c.sqlite"))
    params = [d["litellm_params"] for d in resource.policy_client("embedded").deployments("character")]
    assert [p["model"] for p in params] == ["openai/fake-character", "openai/fake-judge"]
    assert not any("extra_body" in p for p in params)
    assert all(d["litellm_params"]["extra_body"] == grammar for d in resource.client().deployments("character"))


def test_the_policy_is_the_bundled_base_model_when_a_larger_bundled_model_writes(fake_llm, tmp_path, monkeypatch):
    """The demo's dialogues come from the 1.5B model but training starts from the 0.5B: the
    self-samples DPO learns from must be the 0.5B's own."""
    raw = yaml.safe_load((REPO_ROOT / "assets" / "models" / "embedded.yaml").read_text())
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(raw))
    # both bundled models "served" by the fake server: nothing is started
    monkeypatch.setenv(API_BASES_ENV, json.dumps({"embedded": fake_llm.api_base, "embedded-1.5b": fake_llm.api_base}))
    resource = LLMResource(config_path=str(path), cache_path=str(tmp_path / "c.sqlite"))
    with resource.yield_for_execution(None):
        assert resource.client().routed_model("character") == "openai/embedded-1.5b"
        policy = resource.policy_client("embedded")
        assert policy.routed_model("character") == "openai/embedded"
        assert "extra_body" not in policy.deployments("character")[0]["litellm_params"]
        # a model trained from another base samples from the writer, as before
        assert resource.policy_client("/models/my-7b").routed_model("character") == "openai/embedded-1.5b"


def test_the_served_client_needs_only_the_server_of_the_model_under_evaluation(tmp_path):
    """The demo's map names the 1.5B writer too; evaluating the tuned 0.5B must not need it."""
    path = tmp_path / "m.yaml"
    path.write_text((REPO_ROOT / "assets" / "models" / "embedded.yaml").read_text())
    resource = LLMResource(config_path=str(path), cache_path=str(tmp_path / "c.sqlite"))
    client = resource.served_client("http://127.0.0.1:9/v1", "int8-abc", max_tokens=40)
    params = client.deployments("character")[0]["litellm_params"]
    assert params["model"] == "openai/int8-abc" and params["api_base"] == "http://127.0.0.1:9/v1"
    assert "extra_body" not in params and params["max_tokens"] == 40
