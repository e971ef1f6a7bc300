"""A whole generation run against a provider that fails one request in five (every kind of
fault in FAULTS): a fault costs a retry, never data or money. Runs with `-m faults` or `-m slow`."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from rp_pipeline.lineage.store import LineageStore
from rp_pipeline_tests.conftest import make_settings
from rp_pipeline_tests.fake_llm import FAULTS, FakeLLM, Fault
from rp_pipeline_tests.pipeline_runs import run_generation

pytestmark = pytest.mark.faults
DIALOGUES_PER_PERSONA = 5
ENDINGS = {"max_turns", "moderator", "llm_error"}


@pytest.mark.slow  # ~2 minutes, most of it waiting out timeouts and Retry-After
def test_one_request_in_five_failing_costs_retries_not_data_or_money(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    fake = FakeLLM(fault_rate=0.2, fault_seed=11, timeout_fault_s=3.0).start()
    try:
        settings = make_settings(
            tmp_path,
            fake,
            llm={"timeout_s": 2, "num_retries": 2, "max_concurrency": 8},
            n_synthesized_personas=4,  # 6 authored + 4 synthesized cards, 5 dialogues each: 50 dialogues
            simulation={"dialogues_per_persona": DIALOGUES_PER_PERSONA},
        )
        results = run_generation(settings)
    finally:
        fake.stop()
    data = settings.data_dir

    # every kind of fault happened, and no persona partition sank
    assert set(fake.faults_injected) == set(FAULTS), fake.faults_injected
    assert all(r.success for r in results.values()), [k for k, r in results.items() if not r.success]
    synthesized = json.loads((data / "assets" / "synthesized_personas.json").read_text())
    store = LineageStore(data / "lineage")
    con = store.connect()
    card_drops = con.execute(
        "SELECT reason FROM latest_events WHERE asset = 'synthesized_personas' AND kind = 'drop'"
    ).fetchall()
    assert len(synthesized) + len(card_drops) == 4  # every card asked for is there or dropped with a reason
    assert len(results) == 6 + len(synthesized)

    # every planned dialogue exists once, complete or ended with a recorded reason
    dialogues = [d for key in results for d in json.loads((data / "assets" / "dialogues" / f"{key}.json").read_text())]
    assert len(dialogues) == DIALOGUES_PER_PERSONA * len(results) >= 45
    assert len({d["id"] for d in dialogues}) == len(dialogues)
    endings = Counter(d["stop_reason"] for d in dialogues)
    assert set(endings) <= ENDINGS, endings
    assert all(len(d["turns"]) % 2 == 1 for d in dialogues)  # never a user turn left without its reply
    recorded = dict(
        con.execute("SELECT row_id, attrs['stop_reason'] FROM latest_events WHERE asset = 'dialogues'").fetchall()
    )
    assert recorded == {d["id"]: d["stop_reason"] for d in dialogues}
    # no duplicate rows downstream either
    for asset in ("dialogues", "cleaned_dialogues"):
        rows = con.execute(
            "SELECT row_id, count(*) FROM latest_events WHERE asset = ? AND kind = 'row' "
            "GROUP BY ALL HAVING count(*) > 1",
            [asset],
        ).fetchall()
        assert rows == [], asset

    # the ledger bills each answer the provider sent exactly once, and failures as failures
    paid = con.execute(
        "SELECT count(*), sum(prompt_tokens), sum(completion_tokens) FROM calls WHERE ok AND NOT cache_hit"
    ).fetchone()
    assert paid == (
        sum(fake.answered.values()),
        fake.billed_tokens["prompt_tokens"],
        fake.billed_tokens["completion_tokens"],
    )
    failures = con.execute("SELECT error, cost_usd, prompt_tokens FROM calls WHERE NOT ok").fetchall()
    assert all(cost == 0 and tokens == 0 for _, cost, tokens in failures)
    assert all(
        any(kind in error for kind in ("RateLimitError", "InternalServerError", "Timeout")) for error, *_ in failures
    )
    assert endings["llm_error"] <= len(failures)  # a dialogue ends on a failure only when a call really failed
    print(f"faults injected {dict(fake.faults_injected)}; answered {sum(fake.answered.values())}; "
          f"failed calls {len(failures)}; dialogue endings {dict(endings)}")  # fmt: skip
    con.close()


def test_a_provider_that_keeps_answering_429_fails_the_step_saying_why_and_its_calls_are_billed(tmp_path, monkeypatch):
    """Not slow: no retries, so the circuit opens after three failed calls, not after minutes."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    fake = FakeLLM().start()
    try:
        fake.queue("character", *[Fault("rate_limit")] * 100)
        settings = make_settings(
            tmp_path,
            fake,
            llm={"num_retries": 0, "breaker_failures": 3, "max_concurrency": 1},
            simulation={"dialogues_per_persona": 5},  # three end on a failure, the fourth finds the circuit open
        )
        result = run_generation(settings, ["lin-xiaoman"])["lin-xiaoman"]
    finally:
        fake.stop()
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "dialogues"
    error = failure.step_failure_data.error
    message = error.cause.message if error.cause else error.message  # Dagster wraps the asset's exception
    assert "openai/fake-character failed 3 calls in a row" in message and "quota" in message
    assert fake.calls["character"] == 3  # the circuit opened: no call after the third failure
    con = LineageStore(settings.data_dir / "lineage").connect()
    billed = con.execute(
        "SELECT role, ok, count(*) FROM calls WHERE asset = 'dialogues' AND NOT cache_hit GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    con.close()
    # the failed step's calls reached the ledger: the user agent's answers paid, the character's failures
    assert ("character", False, 3) in billed
    assert any(role == "user_agent" and ok and n > 0 for role, ok, n in billed)
