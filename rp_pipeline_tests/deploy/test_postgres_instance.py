"""The compose deployment's instance (docker/dagster.yaml) against a real Postgres: the
project's jobs run on it and their runs, events, materializations and persona partitions are
read back from the database, and the `gpu` pool admits one step at a time."""

from __future__ import annotations

import json

from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from rp_pipeline.defs.build import build_definitions
from rp_pipeline.defs.personas import sync_persona_partitions
from rp_pipeline_tests.conftest import make_settings

PREPARE_ASSETS = ["seed_variables", "seed_samples", "topic_keywords", "synthesized_personas"]
PERSONA_ASSETS = ["persona_cards", "dialogues", "cleaned_dialogues"]


def test_the_compose_instance_is_postgres_with_a_run_queue_and_a_gpu_pool_of_one(compose_instance):
    from dagster._core.launcher import DefaultRunLauncher
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    instance = compose_instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    assert isinstance(instance.run_launcher, DefaultRunLauncher)
    concurrency = instance.get_concurrency_config()
    assert concurrency.pool_config.default_pool_limit == 1
    assert concurrency.run_queue_config is not None
    assert concurrency.run_queue_config.max_concurrent_runs == 4
    assert [limit["key"] for limit in concurrency.run_queue_config.tag_concurrency_limits] == ["dagster/backfill"]

    # Two training runs want the `gpu` pool: the second waits until the first frees its slot.
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default("gpu")
    assert storage.claim_concurrency_slot("gpu", "run-a", "sft_checkpoint").is_claimed
    assert not storage.claim_concurrency_slot("gpu", "run-b", "sft_checkpoint").is_claimed
    storage.free_concurrency_slots_for_run("run-a")
    assert storage.claim_concurrency_slot("gpu", "run-b", "sft_checkpoint").is_claimed


def test_jobs_on_the_compose_instance_leave_their_runs_and_materializations_in_postgres(
    compose_instance, postgres, tmp_path, fake_llm
):
    instance = compose_instance
    settings = make_settings(tmp_path, fake_llm)
    defs = build_definitions(settings)
    prepare = defs.resolve_job_def("prepare_job").execute_in_process(instance=instance)
    assert prepare.success
    synthesized = json.loads((settings.data_dir / "assets" / "synthesized_personas.json").read_text())
    added = sync_persona_partitions(instance, settings.assets_dir / "personas", [c["id"] for c in synthesized])
    persona = added[0]
    partition_run = defs.resolve_job_def("persona_job").execute_in_process(instance=instance, partition_key=persona)
    assert partition_run.success

    # Straight from the database, not through Dagster's API: what a restarted webserver will see.
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, status FROM runs")
        assert dict(cur.fetchall()) == {
            prepare.run_id: DagsterRunStatus.SUCCESS.value,
            partition_run.run_id: DagsterRunStatus.SUCCESS.value,
        }
        cur.execute(
            "SELECT run_id, asset_key, partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        )
        # asset_key holds the key as a JSON list of its path
        materialized = {(run, json.loads(key)[0], part) for run, key, part in cur.fetchall()}
        assert materialized == {(prepare.run_id, name, None) for name in PREPARE_ASSETS} | {
            (partition_run.run_id, name, persona) for name in PERSONA_ASSETS
        }
        cur.execute("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'personas'")
        assert sorted(row[0] for row in cur.fetchall()) == sorted(added)
    conn.close()

    # A second instance on the same database (another webserver or daemon) reads the same history.
    with DagsterInstance.get() as other:
        records = other.fetch_materializations(AssetKey("cleaned_dialogues"), limit=10).records
        assert [r.partition_key for r in records] == [persona]
        assert other.get_dynamic_partitions("personas") == added
