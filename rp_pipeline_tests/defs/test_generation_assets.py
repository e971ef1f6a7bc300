"""The generation half of the graph against the fake server."""

from __future__ import annotations

import json

from rp_pipeline.lineage.store import LineageStore
from rp_pipeline_tests.pipeline_runs import run_generation


def test_generation_materializes_every_persona(pipeline_settings, fake_llm):
    results = run_generation(pipeline_settings)
    assert len(results) == 7  # 6 authored + 1 synthesized
    assert all(r.success for r in results.values()), [k for k, r in results.items() if not r.success]
    cleaned = json.loads((pipeline_settings.data_dir / "assets" / "cleaned_dialogues" / "lin-xiaoman.json").read_text())
    system = cleaned[0]["messages"][0]
    assert system["role"] == "system" and "林小满" in system["content"]
    assert "# Scene" not in system["content"]  # the scene never reaches training
    raw = json.loads((pipeline_settings.data_dir / "assets" / "dialogues" / "lin-xiaoman.json").read_text())
    assert "# Scene" in fake_llm.requests[-1]["messages"][0]["content"] or raw  # the character did see it
    store = LineageStore(pipeline_settings.data_dir / "lineage")
    assert sum(row["calls"] for row in store.cost_summary()) == sum(fake_llm.calls.values())
    assert {"character", "user_agent", "scene_agent", "moderator"} <= set(fake_llm.calls)


def test_rerun_makes_no_llm_calls(pipeline_settings, fake_llm):
    run_generation(pipeline_settings)
    before = sum(fake_llm.calls.values())
    run_generation(pipeline_settings)
    assert sum(fake_llm.calls.values()) == before
