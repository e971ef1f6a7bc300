"""The LLM throughput benchmark at small levels: every call reaches the fake provider, in its
own process and in ours, and the run ends on the headline."""

from __future__ import annotations

import importlib.util
import re
import sys

from rp_pipeline.settings import REPO_ROOT

_SPEC = importlib.util.spec_from_file_location("llm_throughput", REPO_ROOT / "benchmarks" / "llm_throughput.py")
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["llm_throughput"] = bench
_SPEC.loader.exec_module(bench)


def test_every_call_reaches_the_provider_in_its_own_process_and_in_ours(tmp_path):
    for own_process in (True, False):
        level = bench.run(3, 3, 0.02, tmp_path, own_process=own_process)
        assert level.calls == level.served == 3 * 5  # five calls per five-turn dialogue, none lost or doubled
        assert level.loop_cpu > 0 and 0 < level.efficiency(0.02) <= 1.05


def test_a_small_run_prints_both_setups_the_ceiling_and_the_headline_last(capsys):
    assert bench.main(["--quick", "--latency", "0.05", "--levels", "1,3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "fake provider in its own process:" and "fake provider in our process (as before):" in lines
    level = re.compile(r"  concurrency  [13]: .* -> efficiency \d\.\d\d; our CPU per call")
    assert sum(bool(level.match(ln)) for ln in lines) == 4
    assert any(ln.startswith("ceiling: at ") for ln in lines)
    assert re.fullmatch(
        r"LLM efficiency at concurrency 3: \d\.\d\d \(goal 0\.90; latency 0\.05 s per call; "
        r"fake provider in its own process, \d\.\d\d in ours\)",
        lines[-1],
    )
