"""A canary API key in the environment reaches the provider and nothing else: not the logs, not
Dagster's event log and metadata, not lineage, the response cache, the call ledger or any
exported dataset. Generation and the corpus export run through the fake provider, with one
failed call (its error goes to the ledger), then every file the run wrote is searched."""

from __future__ import annotations

import yaml
from dagster import DagsterInstance, materialize

from rp_pipeline.defs.build import ASSETS, resources
from rp_pipeline_tests.conftest import make_settings
from rp_pipeline_tests.pipeline_runs import run_generation

CANARY = "sk-canary-7d41f0c2e9b84a1c"


def test_a_canary_key_reaches_the_provider_and_no_log_metadata_lineage_cache_or_dataset(
    tmp_path, fake_llm, monkeypatch, capfd
):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("RP_CANARY_API_KEY", CANARY)
    settings = make_settings(tmp_path, fake_llm)
    models = yaml.safe_load(settings.llm_config_path.read_text())
    for role in models["roles"].values():
        role["api_key_env"] = "RP_CANARY_API_KEY"
    settings.llm_config_path.write_text(yaml.safe_dump(models))
    fake_llm.queue("scene_agent", 500)  # one failed try: its error is recorded, redacted

    results = run_generation(settings)
    assert all(r.success for r in results.values())
    corpus = materialize(
        ASSETS, selection=["training_corpus"], instance=DagsterInstance.get(), resources=resources(settings)
    )
    assert corpus.success
    assert fake_llm.authorizations[f"Bearer {CANARY}"] > 0  # the key was really used

    with DagsterInstance.get() as instance:
        for run in instance.get_runs():
            for record in instance.all_logs(run.run_id):
                assert CANARY not in str(record), record.dagster_event_type
    written = [p for root in (settings.data_dir, tmp_path / "home") for p in root.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in written}
    assert {".parquet", ".sqlite", ".jsonl", ".json"} <= kinds  # lineage, cache, exports, assets
    leaked = [p for p in written if CANARY.encode() in p.read_bytes()]
    assert leaked == []
    out, err = capfd.readouterr()
    assert CANARY not in out and CANARY not in err
