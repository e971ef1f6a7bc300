"""training_corpus when cleaning kept no role-play row: it fails and says why, per code."""

from __future__ import annotations

import re

from dagster import AssetKey, DagsterInstance

from rp_pipeline.defs.build import build_definitions
from rp_pipeline_tests.pipeline_runs import run_generation

GOODBYE = "好啦我先下线了，再见<emotion>sad</emotion>"


def test_an_empty_roleplay_corpus_fails_naming_the_drop_reasons(pipeline_settings, fake_llm):
    fake_llm.queue("character", *[GOODBYE] * 400)  # every attempt of every character turn
    assert all(r.success for r in run_generation(pipeline_settings).values())
    defs = build_definitions(pipeline_settings)
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=DagsterInstance.get(), asset_selection=[AssetKey("training_corpus")], raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "training corpus has no role-play rows: cleaning kept 0 dialogue(s)" in message, message
    dropped = re.search(r"Per action and reason code: drop: ((?:[a-z_]+ \d+(?:, )?)+)", message)
    assert dropped and "rp lineage drops" in message, message
    codes = {code: int(n) for code, n in (item.split() for item in dropped.group(1).split(", "))}
    assert codes["goodbye"] == 7  # every persona's one dialogue, dropped at its first goodbye
    assert "; flag: " in message  # the later turns that broke rules too
