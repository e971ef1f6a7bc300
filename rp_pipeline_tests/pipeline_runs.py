"""Run the generation jobs the way `rp demo` does, against a test settings object."""

from __future__ import annotations

import json

from dagster import DagsterInstance, ExecuteInProcessResult

from rp_pipeline.defs.build import build_definitions
from rp_pipeline.defs.personas import sync_persona_partitions
from rp_pipeline.settings import Settings


def run_generation(
    settings: Settings, personas: list[str] | None = None, run_config: dict | None = None
) -> dict[str, ExecuteInProcessResult]:
    """prepare_job, then persona_job for every persona partition (or just `personas`); returns
    results by persona."""
    instance = DagsterInstance.get()
    defs = build_definitions(settings)
    assert defs.resolve_job_def("prepare_job").execute_in_process(instance=instance).success
    synthesized = json.loads((settings.data_dir / "assets" / "synthesized_personas.json").read_text())
    sync_persona_partitions(instance, settings.assets_dir / "personas", [c["id"] for c in synthesized])
    return {
        key: defs.resolve_job_def("persona_job").execute_in_process(
            instance=instance, partition_key=key, run_config=run_config, raise_on_error=False
        )
        for key in personas or instance.get_dynamic_partitions("personas")
    }
