"""Persona partitions: the sensor backfills only new cards (two new cards: two partitions, two
runs); a malformed card fails only its own
partition with the file and the field (or line) in the error."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance, build_sensor_context

from rp_pipeline.defs.build import build_definitions, resources
from rp_pipeline_tests.conftest import make_settings
from rp_pipeline_tests.fake_llm import FakeLLM
from rp_pipeline_tests.pipeline_runs import run_generation


def _write_card(personas_dir: Path, key: str, text: str | None = None, **changes) -> None:
    if text is None:
        raw = yaml.safe_load((personas_dir / "theo-barnes.yaml").read_text())
        raw.update(id=key, **changes)
        text = yaml.safe_dump({k: v for k, v in raw.items() if v is not None}, allow_unicode=True)
    (personas_dir / f"{key}.yaml").write_text(text, encoding="utf-8")


def _materializations(instance: DagsterInstance, asset: str) -> Counter[str]:
    records = instance.fetch_materializations(AssetKey(asset), limit=1000).records
    return Counter(r.asset_materialization.partition for r in records)


def test_sensor_adds_partitions_and_runs_only_new_personas(pipeline_settings, fake_llm):
    instance = DagsterInstance.get()
    defs = build_definitions(pipeline_settings)
    sensor = defs.resolve_sensor_def("new_personas_sensor")
    pipeline = resources(pipeline_settings)["pipeline"]

    def evaluate():
        return sensor(build_sensor_context(instance=instance, resources={"pipeline": pipeline}))

    def launch(result) -> None:
        """What the daemon does with a sensor result: add the partitions, launch the runs."""
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        job = defs.resolve_job_def("persona_job")
        for run in result.run_requests:
            assert job.execute_in_process(instance=instance, partition_key=run.partition_key).success

    assert defs.resolve_job_def("prepare_job").execute_in_process(instance=instance).success
    synthesized = [
        c["id"] for c in json.loads((pipeline_settings.data_dir / "assets" / "synthesized_personas.json").read_text())
    ]
    authored = sorted(p.stem for p in (pipeline_settings.assets_dir / "personas").glob("*.yaml"))
    first = evaluate()
    assert [r.partition_key for r in first.run_requests] == authored + synthesized
    launch(first)
    before = _materializations(instance, "dialogues")
    assert before == Counter(dict.fromkeys(authored + synthesized, 1))
    assert evaluate().skip_reason  # nothing new

    _write_card(pipeline_settings.assets_dir / "personas", "nora-hale", name="Nora Hale")
    _write_card(pipeline_settings.assets_dir / "personas", "ivo-marsh", name="Ivo Marsh")
    second = evaluate()
    [request] = second.dynamic_partitions_requests
    assert (request.partitions_def_name, list(request.partition_keys)) == ("personas", ["ivo-marsh", "nora-hale"])
    assert [r.partition_key for r in second.run_requests] == ["ivo-marsh", "nora-hale"]
    launch(second)
    new = ["ivo-marsh", "nora-hale"]
    assert sorted(instance.get_dynamic_partitions("personas")) == sorted([*authored, *synthesized, *new])
    assert _materializations(instance, "dialogues") == before + Counter(new)  # the others not re-run
    assert evaluate().skip_reason


BAD_CARDS = {  # partition key -> (how the card is broken, what the error must name)
    "bad-missing": ({"opening_line": None}, ["bad-missing.yaml", "opening_line", "Field required"]),
    "bad-type": ({"age": "very old"}, ["bad-type.yaml", "age", "integer"]),
    "bad-language": ({"language": "xx"}, ["bad-language.yaml", "language", "unknown language 'xx'"]),
    "bad-examples": ({"speaking_examples": []}, ["bad-examples.yaml", "speaking_examples", "at least 1"]),
    "bad-yaml": (
        "name: Theo\nage: 38\nbackground: a farm: in Yorkshire\n",
        ["bad-yaml.yaml", "line 3", "not valid YAML"],
    ),
}


@pytest.fixture(scope="module")
def malformed_run(tmp_path_factory):
    """One generation run over the authored cards plus one malformed card of each kind."""
    root = tmp_path_factory.mktemp("malformed")
    fake = FakeLLM().start()
    settings = make_settings(root, fake)
    for key, (change, _) in BAD_CARDS.items():
        if isinstance(change, str):
            _write_card(settings.assets_dir / "personas", key, text=change)
        else:
            _write_card(settings.assets_dir / "personas", key, **change)
    with pytest.MonkeyPatch.context() as mp:
        (root / "dagster_home").mkdir()
        mp.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        yield run_generation(settings)
    fake.stop()


@pytest.mark.parametrize("key", sorted(BAD_CARDS))
def test_a_malformed_card_fails_only_its_partition(malformed_run, key):
    failure = next(e for e in malformed_run[key].all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert all(part in message for part in BAD_CARDS[key][1]), message
    good = {k: r.success for k, r in malformed_run.items() if k not in BAD_CARDS}
    assert len(good) == 7 and all(good.values()), good  # 6 authored + 1 synthesized
