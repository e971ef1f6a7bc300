"""What runs without a person, driven tick by tick with Dagster's testing helpers: the corpus is
rebuilt when persona partitions changed, the model is retrained when the corpus changed enough
(or, weekly, at all), evaluation runs again when the judge configuration changed, and a removed
persona card is reported with what was built from it while its partition stays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    DagsterInstance,
    build_schedule_context,
    build_sensor_context,
    evaluate_automation_conditions,
)

from rp_pipeline.defs.build import build_definitions, resources
from rp_pipeline.defs.evaluation import current_judge_fingerprint
from rp_pipeline_tests.conftest import make_settings
from rp_pipeline_tests.fake_llm import FakeLLM
from rp_pipeline_tests.pipeline_runs import run_generation

CORPUS = AssetSelection.assets("training_corpus")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Every persona partition generated once on the fake provider, with its own instance."""
    root = tmp_path_factory.mktemp("automation")
    fake = FakeLLM().start()
    settings = make_settings(root, fake)
    (root / "dagster_home").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        results = run_generation(settings)
        assert all(r.success for r in results.values())
        yield settings, DagsterInstance.get(), sorted(results)
    fake.stop()


def test_the_corpus_is_rebuilt_once_when_persona_partitions_changed(generated):
    settings, instance, personas = generated
    defs = build_definitions(settings)
    job = defs.resolve_job_def("persona_job")

    def tick(cursor=None):
        return evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=CORPUS, cursor=cursor)

    started = tick()  # the condition reacts to what changes once it runs
    assert started.total_requested == 0
    for key in personas[:2]:
        assert job.execute_in_process(instance=instance, partition_key=key).success
    two_changed = tick(started.cursor)
    assert two_changed.total_requested == 1  # one corpus for both
    assert (
        defs.resolve_job_def("train_job")
        .execute_in_process(instance=instance, asset_selection=[AssetKey("training_corpus")])
        .success
    )
    quiet = tick(two_changed.cursor)
    assert quiet.total_requested == 0  # nothing changed since the corpus
    assert job.execute_in_process(instance=instance, partition_key=personas[-1]).success
    assert tick(quiet.cursor).total_requested == 1


def test_a_removed_card_is_reported_with_its_corpus_versions_and_checkpoints_and_its_partition_stays(generated):
    settings, instance, _ = generated
    defs = build_definitions(settings)
    if instance.get_latest_materialization_event(AssetKey("training_corpus")) is None:
        assert (
            defs.resolve_job_def("train_job")
            .execute_in_process(instance=instance, asset_selection=[AssetKey("training_corpus")])
            .success
        )
    corpus = instance.get_latest_materialization_event(AssetKey("training_corpus")).asset_materialization
    version = corpus.metadata["corpus_version"].value
    # what sft_checkpoint records for a model trained on that corpus (training itself is tested elsewhere)
    lineage = resources(settings)["lineage"]
    lineage.store().write_events(
        [{"run_id": "r", "asset": "sft_checkpoint", "row_id": "sft-x", "parent_ids": [version]}]
    )

    sensor = defs.resolve_sensor_def("removed_personas_sensor")
    pipeline = resources(settings)["pipeline"]

    def tick(cursor=None):
        wiring = {"pipeline": pipeline, "lineage": lineage}
        with build_sensor_context(instance=instance, cursor=cursor, resources=wiring) as context:
            return sensor(context)

    nothing = tick()
    assert nothing.skip_reason and not nothing.asset_events
    (settings.assets_dir / "personas" / "theo-barnes.yaml").unlink()
    removed = tick(nothing.cursor)
    [observation] = removed.asset_events
    assert (observation.asset_key, observation.partition) == (AssetKey("persona_cards"), "theo-barnes")
    assert observation.metadata["corpus_versions"].value == [version]
    assert observation.metadata["checkpoints"].value == ["sft_checkpoint:sft-x"]
    assert "theo-barnes" in instance.get_dynamic_partitions("personas")  # kept until an operator removes it
    again = tick(removed.cursor)
    assert again.skip_reason and not again.asset_events  # reported once


def _report_corpus(instance: DagsterInstance, data: Path, version: str, row_ids: list[str]) -> None:
    """A corpus version as training_corpus leaves it: rows.jsonl on disk and its materialization."""
    (data / "corpus" / version).mkdir(parents=True)
    (data / "corpus" / version / "rows.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in row_ids))
    instance.report_runless_asset_event(AssetMaterialization("training_corpus", metadata={"corpus_version": version}))


def test_a_changed_corpus_triggers_training_on_the_next_tick_and_an_unchanged_one_does_not(tmp_path, fake_llm):
    (tmp_path / "dagster_home").mkdir()
    instance = DagsterInstance.local_temp(str(tmp_path / "dagster_home"))  # schedules need an instance ref
    settings = make_settings(tmp_path, fake_llm)
    defs = build_definitions(settings)
    pipeline = resources(settings)["pipeline"]
    sensor, weekly = defs.resolve_sensor_def("retrain_sensor"), defs.resolve_schedule_def("weekly_retrain_schedule")

    def tick():
        with build_sensor_context(instance=instance, resources={"pipeline": pipeline}) as context:
            return sensor(context)

    def monday():
        with build_schedule_context(instance=instance, resources={"pipeline": pipeline}) as context:
            return weekly.evaluate_tick(context)

    assert "no corpus" in tick().skip_reason.skip_message
    rows = [f"row-{i}" for i in range(100)]
    _report_corpus(instance, settings.data_dir, "corpus-a", rows)
    [first] = tick().run_requests  # never trained: train
    assert first.run_key == "retrain-corpus-a"
    instance.report_runless_asset_event(AssetMaterialization("sft_checkpoint", metadata={"corpus_version": "corpus-a"}))
    assert "trained on the current corpus" in tick().skip_reason.skip_message
    assert not monday().run_requests  # unchanged: the weekly run skips too

    _report_corpus(instance, settings.data_dir, "corpus-b", [*rows[:97], "new-1", "new-2", "new-3"])  # 6/103 changed
    small = tick()
    why = small.skip_reason.skip_message
    assert not small.run_requests and "5.8%" in why and "weekly" in why
    [weekly_run] = monday().run_requests
    assert weekly_run.run_key == "weekly-corpus-b"

    _report_corpus(instance, settings.data_dir, "corpus-c", [*rows[:80], *(f"n-{i}" for i in range(30))])  # 50/130
    [big] = tick().run_requests
    assert big.run_key == "retrain-corpus-c" and big.tags["corpus_version"] == "corpus-c"


def test_a_changed_judge_configuration_evaluates_again(tmp_path, fake_llm):
    instance = DagsterInstance.ephemeral()
    settings = make_settings(tmp_path, fake_llm)
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("judge_config_sensor")
    wiring = resources(settings)

    def tick():
        needed = {"pipeline": wiring["pipeline"], "llm": wiring["llm"]}
        with build_sensor_context(instance=instance, resources=needed) as context:
            return sensor(context)

    assert "no eval scores" in tick().skip_reason.skip_message
    scored_with = current_judge_fingerprint(wiring["pipeline"], wiring["llm"])
    instance.report_runless_asset_event(
        AssetMaterialization("eval_scores", metadata={"judge_fingerprint": scored_with})
    )
    assert "latest scores were made with" in tick().skip_reason.skip_message

    model_map = yaml.safe_load(settings.llm_config_path.read_text())
    model_map["roles"]["judge"]["temperature"] = 0.3
    settings.llm_config_path.write_text(yaml.safe_dump(model_map))
    [request] = tick().run_requests
    assert request.run_key.startswith("judge-") and request.run_key != f"judge-{scored_with}"
    # a calibration item edited changes it as well
    calibration = settings.assets_dir / "eval" / "calibration" / "en.yaml"
    calibration.write_text(calibration.read_text() + "\n# reviewed\n")
    [after_edit] = tick().run_requests
    assert after_edit.run_key != request.run_key
