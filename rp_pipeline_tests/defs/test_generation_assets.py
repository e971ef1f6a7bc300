"""Materialize the generation half of the graph against the fake server."""

from __future__ import annotations

import json

from dagster import DagsterInstance

from rp_pipeline.defs.build import build_definitions
from rp_pipeline.defs.personas import sync_persona_partitions
from rp_pipeline.lineage.store import LineageStore


def run_generation(settings, personas: list[str] | None = None):
    instance = DagsterInstance.get()
    defs = build_definitions(settings)
    assert defs.get_job_def("prepare_job").execute_in_process(instance=instance).success
    synthesized = json.loads((settings.data_dir / "assets" / "synthesized_personas.json").read_text())
    sync_persona_partitions(instance, settings.assets_dir / "personas", [c["id"] for c in synthesized])
    results = {}
    for key in personas or instance.get_dynamic_partitions("personas"):
        results[key] = defs.get_job_def("persona_job").execute_in_process(
            instance=instance, partition_key=key, raise_on_error=False)
    return defs, instance, results


def test_generation_materializes_every_persona(pipeline_settings, fake_llm):
    _, instance, results = run_generation(pipeline_settings)
    assert len(results) == 7  # 6 authored + 1 synthesized
    assert all(r.success for r in results.values()), [k for k, r in results.items() if not r.success]
    cleaned = json.loads((pipeline_settings.data_dir / "assets" / "cleaned_dialogues" / "lin-xiaoman.json").read_text())
    assert cleaned and cleaned[0]["messages"][0]["role"] == "system"
    assert "Scene" not in cleaned[0]["messages"][0]["content"]  # the scene never reaches training
    store = LineageStore(pipeline_settings.data_dir / "lineage")
    calls = store.cost_summary()
    assert sum(row["calls"] for row in calls) > 0
    assert fake_llm.calls["character"] > 0 and fake_llm.calls["moderator"] > 0
