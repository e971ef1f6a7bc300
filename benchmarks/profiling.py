"""Where a benchmark's time goes: a cProfile run's time attributed to named stages.

A stage is entered by one of a few named functions (file suffix, function name). Every other
function belongs to the stages of its callers, its own time split in proportion to the time
spent in it from each caller, so a helper shared by two stages is charged to both and the
stages add up to the profile's total. cProfile's clock is the wall clock by default, and it
charges every Python call, so it inflates Python-heavy stages against native code (lingua,
regular expressions, sockets): shares are a map of where to look, not a measurement.
"""

from __future__ import annotations

import cProfile
import pstats
from collections import defaultdict
from collections.abc import Callable
from typing import Any

Func = tuple[str, int, str]  # (file, line, function name), as pstats names a function
Stages = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (label, (file suffix, function name) that enter it)


def stage_matcher(stages: Stages) -> Callable[[Func], str | None]:
    """The label of the stage a function enters, or None."""

    def stage_of(func: Func) -> str | None:
        filename, _, name = func
        path = filename.replace("\\", "/")
        entered = (label for label, entries in stages if any(path.endswith(f) and name == n for f, n in entries))
        return next(entered, None)

    return stage_of


def attribute(raw: dict, stage_of: Callable[[Func], str | None], default: str) -> dict[str, float]:
    """Seconds per stage from `pstats.Stats.stats` (func -> (cc, nc, tt, ct, callers)): each
    function's own time goes to its stage, or is split among its callers' stages in proportion
    to the time spent in it from each caller; what no stage reaches is `default`."""
    memo: dict[Func, dict[str, float]] = {}

    def shares(func: Func, active: frozenset[Func]) -> dict[str, float]:
        if func in memo:
            return memo[func]
        if stage := stage_of(func):
            return memo.setdefault(func, {stage: 1.0})
        callers = {c: edge for c, edge in raw[func][4].items() if c in raw and c not in active}
        weights = {c: edge[3] or edge[1] for c, edge in callers.items()}
        total = sum(weights.values())
        if not total:
            return memo.setdefault(func, {default: 1.0})
        result: dict[str, float] = defaultdict(float)
        for caller, weight in weights.items():
            for stage, share in shares(caller, active | {func}).items():
                result[stage] += share * weight / total
        return memo.setdefault(func, dict(result))

    seconds: dict[str, float] = defaultdict(float)
    for func, (_, _, own, _, _) in raw.items():
        for stage, share in shares(func, frozenset()).items():
            seconds[stage] += own * share
    return dict(seconds)


def profile_stages(work: Callable[[], Any], stages: Stages, default: str) -> dict[str, float]:
    """Seconds per stage of one profiled `work()`."""
    profiler = cProfile.Profile()
    profiler.runcall(work)
    raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]  # the documented table, untyped
    return attribute(raw, stage_matcher(stages), default)


def table(seconds: dict[str, float], per: tuple[int, str] | None = None) -> list[str]:
    """One line per stage, largest first: seconds and share, and seconds per unit when `per`
    is (count, unit name)."""
    total = sum(seconds.values()) or 1.0
    lines = []
    for label, spent in sorted(seconds.items(), key=lambda item: -item[1]):
        unit = f"  {1000 * spent / per[0]:6.2f} ms/{per[1]}" if per else ""
        lines.append(f"  {label:<48} {spent:6.2f} s  {100 * spent / total:5.1f}%{unit}")
    return lines
