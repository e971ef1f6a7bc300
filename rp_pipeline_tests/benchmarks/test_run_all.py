"""`make bench`'s runner: each benchmark a subprocess, its headline read against its goal, and a
report that shows failures, timeouts and slow quick runs instead of hiding them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from rp_pipeline.settings import REPO_ROOT

_SPEC = importlib.util.spec_from_file_location("run_all", REPO_ROOT / "benchmarks" / "run_all.py")
assert _SPEC is not None and _SPEC.loader is not None
run_all = importlib.util.module_from_spec(_SPEC)
sys.modules["run_all"] = run_all
_SPEC.loader.exec_module(run_all)

SCRIPTS = {
    "fast": 'print("warming up")\nprint("LLM efficiency at concurrency 64: 0.95 (goal 0.90)")',
    "slow_miss": 'import time\ntime.sleep(0.6)\nprint("LLM efficiency at concurrency 64: 0.26 (goal 0.90)")',
    "crash": 'import sys\nprint("half a line")\nsys.stderr.write("Traceback\\nValueError: boom\\n")\nsys.exit(3)',
    "miss_exit": 'print("code location load: 1.2 s; heavy modules imported: torch")\nraise SystemExit(1)',
    "mute": 'print("all done")',
    "hang": "import time\ntime.sleep(30)",
}


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    """Stand-ins for the real scripts, plus one listed that is not there (as cleaning_throughput.py
    is on a branch without it)."""
    for name, body in SCRIPTS.items():
        (tmp_path / f"{name}.py").write_text(body + "\n", encoding="utf-8")
    return tmp_path


def bench(name: str, check) -> object:
    return run_all.Benchmark(name, ("--quick",), f"goal of {name}", check)


def test_results_show_met_missed_failed_timed_out_and_slow(scripts: Path, tmp_path: Path) -> None:
    llm, heavy = run_all.BENCHMARKS[0].check, run_all.BENCHMARKS[4].check
    chosen = [
        bench("fast", llm),
        bench("slow_miss", llm),
        bench("crash", llm),
        bench("missing", llm),
        bench("miss_exit", heavy),
        bench("mute", llm),
        bench("hang", llm),
    ]
    out = tmp_path / "RESULTS.md"

    results = run_all.run_all(chosen, out, scripts=scripts, timeout_s=3, quick_limit_s=0.5)

    assert [r.status for r in results] == [
        "met",
        "missed",
        "failed (exit 3)",
        "failed (exit 2)",
        "missed (exit 1)",
        "no headline figure",
        "timed out",
    ]
    assert [r.failed for r in results] == [False, False, True, True, False, False, True]
    assert results[-1].wall_s < 10
    text = out.read_text(encoding="utf-8")
    for key in ("- Date:", "- Commit:", "- CPU:", "- Memory:", "- Load average", "- Versions: Python"):
        assert key in text
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "LLM efficiency at concurrency 64: 0.95" in rows["fast"] and rows["fast"].endswith("| met |")
    assert rows["crash"].endswith("| failed (exit 3) |") and "half a line" in rows["crash"]
    assert "over the 0 s limit" in rows["⚠ slow_miss"] and "⚠ fast" not in rows
    assert "ValueError: boom" in text and "can't open file" in text  # stderr tails of the failures
    assert text.count("<details>") == len(chosen)


@pytest.mark.parametrize(
    ("index", "headline", "verdict"),
    [
        (0, "LLM efficiency at concurrency 64: 0.26 (goal 0.90; latency 0.25 s per call)", "missed"),
        (0, "LLM efficiency at concurrency 64: 0.93 (latency 0.25 s per call)", "met"),
        (1, "cleaning: 7,811 turns/s per core (goal 20,000; baseline 9,120)", "missed"),
        (1, "cleaning throughput: 21,000 turns/s per core", "met"),
        (2, "lineage trace p50 at 1,000,000 events: 207.3 ms (goal < 50 ms at 10M)", "missed"),
        (2, "lineage trace p50 at 1,000,000 events: 41.0 ms (goal < 50 ms at 10M)", "met below 10M events"),
        (2, "lineage trace p50 at 10,010,000 events: 41.0 ms (goal < 50 ms at 10M)", "met"),
        (3, "incremental: re-run 0 calls; one added persona 9 (~10 per persona)", "met"),
        (3, "incremental: re-run 4 calls; one added persona 9 (~10 per persona)", "missed"),
        (4, "code location load: 1.36 s = 2.26x import dagster; heavy modules imported: none", "met"),
        (4, "code location load: 9.1 s = 6.00x import dagster; heavy modules imported: torch", "missed"),
        (5, "overall: precision 1.00 recall 0.96 (tp 48, fp 0, fn 2)", "met"),
        (5, "overall: precision 0.85 recall 1.00 (tp 50, fp 9, fn 0)", "missed"),
        (5, "something else entirely", None),
    ],
)
def test_each_goal_is_read_from_its_headline(index: int, headline: str, verdict: str | None) -> None:
    assert run_all.BENCHMARKS[index].check(headline) == verdict


def test_the_pii_benchmark_headline_is_the_one_the_runner_reads(capsys) -> None:
    result = run_all.run_one(run_all.BENCHMARKS[5], REPO_ROOT / "benchmarks", timeout_s=120)

    assert result.returncode == 0 and result.status == "met", result.stderr
    assert result.command == "python benchmarks/pii_quality.py"


def test_a_rewrite_keeps_the_full_mode_runs_written_by_hand(scripts: Path, tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    full = "## Full-mode runs\n5,000 personas: 1.5 s\n"
    out.write_text(f"# old quick report\n| fast | stale |\n\n{run_all.FULL_RUNS}\n{full}")
    run_all.run_all([bench("fast", run_all.BENCHMARKS[0].check)], out, scripts=scripts, timeout_s=3)
    text = out.read_text()
    assert "stale" not in text and "| fast |" in text
    assert text.count(run_all.FULL_RUNS) == 1 and text.endswith(full)
