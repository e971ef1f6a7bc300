"""The LLM resource's clients."""

from __future__ import annotations

import yaml

from rp_pipeline.defs.resources import LLMResource


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
    params = [d["litellm_params"] for d in resource.policy_client().deployments("character")]
    assert [p["model"] for p in params] == ["openai/fake-character", "openai/fake-judge"]
    assert not any("extra_body" in p for p in params)
    assert all(d["litellm_params"]["extra_body"] == grammar for d in resource.client().deployments("character"))
