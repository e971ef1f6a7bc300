"""The LLM resource's clients."""

from __future__ import annotations

import json

from rp_pipeline.defs.resources import LLMResource
from rp_pipeline.llm.embedded import API_BASES_ENV
from rp_pipeline.settings import REPO_ROOT


def test_a_role_client_needs_only_the_server_of_that_roles_model(fake_llm, tmp_path, monkeypatch):
    """The cleaner reads endings on the 1.5B; asking it must not start the 0.5B the map also names."""
    path = tmp_path / "m.yaml"
    path.write_text((REPO_ROOT / "assets" / "models" / "embedded.yaml").read_text())
    monkeypatch.setenv(API_BASES_ENV, json.dumps({"embedded-1.5b": fake_llm.api_base}))  # only the 1.5B "runs"
    resource = LLMResource(config_path=str(path), cache_path=str(tmp_path / "c.sqlite"))
    with resource.yield_for_execution(None):
        cleaner = resource.role_client("cleaner")
        assert cleaner.routed_model("cleaner") == "openai/embedded-1.5b"
        assert cleaner.embedded == {"embedded-1.5b": fake_llm.api_base}


def test_the_served_client_needs_only_the_server_of_the_model_under_evaluation(tmp_path):
    """The demo's map names the 1.5B writer too; evaluating the tuned 0.5B must not need it."""
    path = tmp_path / "m.yaml"
    path.write_text((REPO_ROOT / "assets" / "models" / "embedded.yaml").read_text())
    resource = LLMResource(config_path=str(path), cache_path=str(tmp_path / "c.sqlite"))
    client = resource.served_client("http://127.0.0.1:9/v1", "int8-abc", max_tokens=40)
    params = client.deployments("character")[0]["litellm_params"]
    assert params["model"] == "openai/int8-abc" and params["api_base"] == "http://127.0.0.1:9/v1"
    assert "extra_body" not in params and params["max_tokens"] == 40
