"""The cleaning throughput benchmark on a small corpus: the profile's stages add up to the
profiled time, language ID is among them, and the last line is the headline with the baseline."""

from __future__ import annotations

import importlib.util
import re
import sys

from rp_pipeline.settings import REPO_ROOT

_PATH = REPO_ROOT / "benchmarks" / "cleaning_throughput.py"
_SPEC = importlib.util.spec_from_file_location("cleaning_throughput", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["cleaning_throughput"] = bench
_SPEC.loader.exec_module(bench)
profiling = sys.modules["profiling"]  # the benchmarks' shared profile attribution, imported by the script


def test_time_is_split_among_callers_stages_and_adds_up():
    """`helper` (1 s of its own) is called from two stages, 3 s of it from `find` and 1 s from
    `search`; `clean_row` is no stage, so its own time is bookkeeping."""
    find, search = ("x/core/rules.py", 1, "find"), ("x/core/rules.py", 2, "search")
    helper, row = ("x/core/util.py", 3, "helper"), ("x/cleaning/rows.py", 4, "clean_row")
    raw = {
        row: (1, 1, 0.5, 6.5, {}),
        find: (1, 1, 1.0, 4.0, {row: (1, 1, 1.0, 4.0)}),
        search: (1, 1, 1.0, 2.0, {row: (1, 1, 1.0, 2.0)}),
        helper: (2, 2, 4.0, 4.0, {find: (1, 1, 3.0, 3.0), search: (1, 1, 1.0, 1.0)}),
    }
    seconds = profiling.attribute(raw, profiling.stage_matcher(bench.STAGES), "bookkeeping")
    phrases, patterns = bench.STAGES[1][0], bench.STAGES[2][0]
    assert seconds == {phrases: 1.0 + 3.0, patterns: 1.0 + 1.0, "bookkeeping": 0.5}


def test_a_small_run_prints_the_profile_the_baseline_and_the_headline_last(capsys):
    assert bench.main(["--turns", "400"]) == 0
    out = capsys.readouterr().out
    table = re.findall(r"^  (.+?)\s+(\d+\.\d\d) s\s+(\d+\.\d)%$", out, re.M)
    assert {label for label, _, _ in table} >= {"language ID (lingua, script runs)", bench.BOOKKEEPING}
    assert abs(sum(float(share) for _, _, share in table) - 100) < 1
    assert re.search(r"lingua itself, timed inside the unprofiled run: \d+ calls", out)
    assert re.fullmatch(
        r"cleaning: [\d,]+ turns/s per core \(goal 20,000; baseline [\d,]+\)", out.strip().splitlines()[-1]
    )
