"""Generation at the issue's scale: 32 dialogues of 20+ turns in one persona partition with
32 calls in flight against a 200 ms fake provider, then a re-materialization that costs nothing;
and the single-call mode chosen per run through Dagster run config."""

from __future__ import annotations

import json
import time

import pytest

from rp_pipeline.core.models import Dialogue
from rp_pipeline.core.reply_format import parse_reply
from rp_pipeline.lineage.store import LineageStore
from rp_pipeline_tests.conftest import make_settings
from rp_pipeline_tests.fake_llm import FakeLLM
from rp_pipeline_tests.pipeline_runs import run_generation

PERSONA = "theo-barnes"
LATENCY_S = 0.2


@pytest.fixture
def slow_fake_llm():
    server = FakeLLM(latency_s=LATENCY_S).start()
    yield server
    server.stop()


# ~80 s on 2 cores: a scale run, left to -m slow; concurrency up to the limit is llm/test_client's and
# a rerun that makes no calls test_generation_assets'
@pytest.mark.slow
def test_32_dialogues_run_concurrently_and_a_rerun_makes_no_calls(tmp_path, monkeypatch, slow_fake_llm):
    fake = slow_fake_llm
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    settings = make_settings(
        tmp_path,
        fake,
        llm={"max_concurrency": 32},
        simulation={
            "min_turns": 20,
            "max_turns": 21,
            "topic_every": 4,
            "moderator_every": 4,
            "max_attempts": 2,
            "dialogues_per_persona": 32,
        },
    )
    started = time.perf_counter()
    first = run_generation(settings, personas=[PERSONA])[PERSONA]
    elapsed = time.perf_counter() - started
    assert first.success
    calls = sum(fake.calls.values())
    dialogues = [
        Dialogue.model_validate(d)
        for d in json.loads((settings.data_dir / "assets" / "dialogues" / f"{PERSONA}.json").read_text())
    ]
    assert len(dialogues) == 32 and len({d.id for d in dialogues}) == 32
    assert all(len(d.turns) == 21 for d in dialogues)
    # all dialogues of the partition ran at once, under the limit; the 200 ms waits overlapped
    # (one call at a time would take calls * 200 ms on the LLM alone)
    assert 16 <= fake.peak_in_flight <= 32
    assert elapsed < calls * LATENCY_S / 2, (elapsed, calls)

    # every character turn is in the reply format, or carries the reasons it is not;
    # every regenerated attempt carries the reasons it was rejected
    character = [t for d in dialogues for t in d.turns[1:] if t.role == "character"]
    assert len(character) == 32 * 10
    for turn in character:
        if turn.violations:
            assert all(v.code for v in turn.violations)
        else:
            parse_reply(turn.content)
    rejected = [a for t in character for a in t.rejected]
    assert rejected and all(a.violations for a in rejected)

    [materialization] = first.asset_materializations_for_node("dialogues")
    meta = materialization.metadata
    assert meta["llm_calls"].value == fake.calls.total() - fake.calls["topic_writer"] - fake.calls["persona_writer"]
    assert meta["prompt_tokens"].value > 0 and "cost_usd" in meta
    assert meta["sample_dialogue"].value.startswith("**Theo Barnes")

    second = run_generation(settings, personas=[PERSONA])[PERSONA]
    assert second.success and sum(fake.calls.values()) == calls
    ledger = (
        LineageStore(settings.data_dir / "lineage")
        .connect()
        .execute(
            "SELECT run_id, count(*), count_if(NOT cache_hit) FROM calls WHERE asset = 'dialogues' GROUP BY run_id"
        )
        .fetchall()
    )
    by_run = {run_id: (total, misses) for run_id, total, misses in ledger}
    assert by_run[first.run_id][1] > 0
    assert by_run[second.run_id] == (by_run[first.run_id][0], 0)  # same requests, all from the cache


def test_single_call_mode_is_chosen_per_run(pipeline_settings, fake_llm):
    run_config = {"ops": {"dialogues": {"config": {"mode": "single_call"}}}}
    result = run_generation(pipeline_settings, personas=[PERSONA], run_config=run_config)[PERSONA]
    assert result.success
    dialogues = json.loads((pipeline_settings.data_dir / "assets" / "dialogues" / f"{PERSONA}.json").read_text())
    assert [d["mode"] for d in dialogues] == ["single_call"]
    assert fake_llm.calls["dialogue_writer"] == 1
    assert not {"character", "user_agent", "scene_agent", "moderator"} & set(fake_llm.calls)
    [materialization] = result.asset_materializations_for_node("dialogues")
    assert materialization.metadata["mode"].value == "single_call"
    cleaned = json.loads((pipeline_settings.data_dir / "assets" / "cleaned_dialogues" / f"{PERSONA}.json").read_text())
    assert cleaned and cleaned[0]["dialogue_id"] == dialogues[0]["id"]
