"""Every speed benchmark in quick mode, one subprocess each, into `benchmarks/RESULTS.md`:
the machine (CPU, cores, memory, load), date, commit and versions, one table row per
benchmark (command, headline, wall seconds, the goal from issue 15 and whether the headline
meets it), then each one's full output. `make bench` runs it.

    python benchmarks/run_all.py [--only NAME ...] [--out PATH] [--timeout 600]

A benchmark that exits non-zero, times out or prints no recognizable headline is shown as
such, with the tail of its stderr; quick mode is meant to stay under a minute, and a run
over that gets a warning. Exits 1 when any benchmark failed or timed out (a missed goal is
a result, not a failure).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICK_LIMIT_S = 60.0
# Everything after this line in RESULTS.md is a full-mode run written by hand (minutes to an hour
# each, not part of `make bench`): the runner keeps it when it rewrites the quick-mode report.
FULL_RUNS = "<!-- full-mode runs: kept by run_all.py -->"
#: Packages whose versions move the figures; read from their metadata, nothing is imported.
VERSIONS = ("duckdb", "pyarrow", "pydantic", "dagster", "litellm", "lingua-language-detector")


def _number(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1).replace(",", "")) if match else None


def _at_least(pattern: str, goal: float) -> Callable[[str], str | None]:
    def check(headline: str) -> str | None:
        value = _number(pattern, headline)
        return None if value is None else ("met" if value >= goal else "missed")

    return check


def _lineage(headline: str) -> str | None:
    """p50 < 50 ms counts at 10M events; a quick run's miss is a miss, its pass is not proof."""
    p50 = _number(r"trace p50 at [0-9,]+ events: ([0-9.]+) ms", headline)
    events = _number(r"trace p50 at ([0-9,]+) events", headline)
    if p50 is None or events is None:
        return None
    if p50 >= 50:
        return "missed"
    return "met" if events >= 10_000_000 else "met below 10M events"


def _no_calls_on_rerun(headline: str) -> str | None:
    calls = _number(r"re-run ([0-9]+) calls", headline)
    return None if calls is None else ("met" if calls == 0 else "missed")


def _no_heavy_imports(headline: str) -> str | None:
    match = re.search(r"heavy modules imported: (.+)$", headline)
    return None if match is None else ("met" if match.group(1).strip() == "none" else "missed")


def _pii(headline: str) -> str | None:
    precision = _number(r"precision ([0-9.]+)", headline)
    recall = _number(r"recall ([0-9.]+)", headline)
    if precision is None or recall is None:
        return None
    return "met" if recall >= 0.95 and precision >= 0.90 else "missed"


def _persona_scale(headline: str) -> str | None:
    """persona_scale.py's usable bounds: a sensor or automation tick under 30 s, the status query
    under 10 s, the definitions load under 30 s."""
    bounds = {"sensor tick": 30, "status query": 10, "definitions load": 30, "corpus automation tick": 30}
    values = {name: _number(rf"{name} ([0-9.]+) s", headline) for name in bounds}
    if any(v is None for v in values.values()):
        return None
    return "met" if all(values[name] < bound for name, bound in bounds.items()) else "missed"


@dataclass(frozen=True)
class Benchmark:
    """A script in `benchmarks/`, its quick-mode arguments, its goal and how to read its
    headline (last line) against it: "met", "missed", or None when the line says neither."""

    name: str
    args: tuple[str, ...]
    goal: str
    check: Callable[[str], str | None]


BENCHMARKS = (
    Benchmark(
        "llm_throughput",
        ("--quick",),
        "efficiency >= 0.90 at concurrency 64",
        _at_least(r"efficiency at concurrency 64: ([0-9.]+)", 0.90),
    ),
    Benchmark(
        "cleaning_throughput",
        ("--quick",),
        ">= 20,000 turns/s per core",
        _at_least(r"([0-9][0-9,]*) turns/s per core", 20_000),
    ),
    Benchmark("lineage_query", ("--quick",), "trace p50 < 50 ms at 10M events", _lineage),
    Benchmark("incremental", ("--quick",), "0 LLM calls on a pure re-run", _no_calls_on_rerun),
    Benchmark("load_time", ("--quick",), "no heavy module imported (torch, litellm, ...)", _no_heavy_imports),
    Benchmark("pii_quality", (), "recall >= 0.95, precision >= 0.90", _pii),
    Benchmark(
        "persona_scale",
        ("--quick",),
        "sensor/automation tick < 30 s, status < 10 s, definitions < 30 s (500 personas; 5,000 in full mode)",
        _persona_scale,
    ),
)


@dataclass
class Result:
    benchmark: Benchmark
    command: str
    returncode: int | None  # None: killed at the timeout
    wall_s: float
    stdout: str
    stderr: str

    @property
    def headline(self) -> str:
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""

    @property
    def status(self) -> str:
        if self.returncode is None:
            return "timed out"
        verdict = self.benchmark.check(self.headline) if self.headline else None
        if self.returncode != 0:
            # load_time and incremental exit 1 when they miss their goal: a result, not a crash.
            return f"missed (exit {self.returncode})" if verdict == "missed" else f"failed (exit {self.returncode})"
        return verdict or "no headline figure"

    @property
    def failed(self) -> bool:
        return self.status.startswith(("failed", "timed out"))


def run_one(benchmark: Benchmark, scripts: Path, timeout_s: float) -> Result:
    script = scripts / f"{benchmark.name}.py"
    argv = [sys.executable, str(script), *benchmark.args]
    command = " ".join(
        ["python", str(script.relative_to(REPO) if script.is_relative_to(REPO) else script), *benchmark.args]
    )
    started = time.perf_counter()
    # Its own session, so a timeout ends the fake servers and interpreters it started too.
    with subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as child:
        try:
            out, err = child.communicate(timeout=timeout_s)
            code: int | None = child.returncode
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            out, err = child.communicate()
            code = None
    return Result(benchmark, command, code, time.perf_counter() - started, out, err)


def run_all(
    benchmarks: Sequence[Benchmark],
    out: Path,
    scripts: Path = REPO / "benchmarks",
    timeout_s: float = 600,
    quick_limit_s: float = QUICK_LIMIT_S,
) -> list[Result]:
    """Run `benchmarks` one after another (they measure speed: never two at once), showing
    progress on stdout, and write the report to `out`."""
    load_before = _load()
    results = []
    for i, benchmark in enumerate(benchmarks, 1):
        print(f"[{i}/{len(benchmarks)}] {benchmark.name} {' '.join(benchmark.args)} ...", flush=True)
        result = run_one(benchmark, scripts, timeout_s)
        results.append(result)
        print(f"      {result.status}, {result.wall_s:.1f} s: {result.headline or '(no output)'}", flush=True)
        if result.failed:
            print(_indent(_tail(result.stderr)), flush=True)
    kept = out.read_text(encoding="utf-8").partition(FULL_RUNS)[2] if out.exists() else ""
    text = report(results, load_before, _load(), quick_limit_s)
    out.write_text(text + (f"\n{FULL_RUNS}{kept}" if kept else ""), encoding="utf-8")
    print(f"wrote {out}")
    return results


def report(results: Sequence[Result], load_before: str, load_after: str, quick_limit_s: float) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python benchmarks/run_all.py`): every speed benchmark in quick mode.",
        "Figures from a shared or busy machine are lower bounds; the load average says how busy it was.",
        "",
        *(f"- {key}: {value}" for key, value in machine(load_before, load_after).items()),
        "",
        "| Benchmark | Command | Headline | Wall s | Goal (issue 15) | Status |",
        "|---|---|---|---:|---|---|",
    ]
    for r in results:
        cells = [r.benchmark.name, f"`{r.command}`", r.headline or "(no output)", f"{r.wall_s:.1f}", r.benchmark.goal]
        lines.append("| " + " | ".join(_cell(c) for c in [*cells, r.status]) + " |")
    slow = [r for r in results if r.wall_s > quick_limit_s]
    for r in slow:
        lines.append(
            f"| ⚠ {r.benchmark.name} | quick mode took {r.wall_s:.0f} s, over the {quick_limit_s:.0f} s limit | | | | |"
        )
    lines += ["", "## Output", ""]
    for r in results:
        lines += [f"<details><summary>{r.benchmark.name}: {r.status}, {r.wall_s:.1f} s</summary>", "", "```"]
        lines += [r.stdout.rstrip() or "(no stdout)", "```"]
        if r.failed or r.returncode:
            lines += ["", "stderr (last lines):", "", "```", _tail(r.stderr) or "(empty)", "```"]
        lines += ["", "</details>", ""]
    return "\n".join(lines)


def machine(load_before: str, load_after: str) -> dict[str, str]:
    """Date, commit, CPU, memory, platform and versions, read without importing anything heavy."""
    versions = []
    for package in VERSIONS:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "Date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "Commit": _commit(),
        "CPU": f"{_cpu_model()}, {os.cpu_count()} cores ({usable} usable)",
        "Memory": _memory(),
        "Platform": platform.platform(),
        "Load average (1 min) before / after": f"{load_before} / {load_after}",
        "Versions": ", ".join([f"Python {platform.python_version()}", *versions]),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "unknown"


def _commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{commit} (uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else commit


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _indent(text: str) -> str:
    return "\n".join(f"      {line}" for line in text.splitlines())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHMARKS], help="run only these")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a benchmark is killed")
    args = parser.parse_args(argv)
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    results = run_all(chosen, args.out, timeout_s=args.timeout)
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
