"""The persona-scale benchmark at a tiny size: its cards are valid and come from the seed tables, every
operation is measured at both sizes with the counts it set up, and a figure past its bound fails it."""

from __future__ import annotations

import importlib.util
import re
import sys

import pytest

from rp_pipeline.core.personas import load_persona_file
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.core.seeds import load_seed_variables
from rp_pipeline.settings import REPO_ROOT

_SPEC = importlib.util.spec_from_file_location("persona_scale", REPO_ROOT / "benchmarks" / "persona_scale.py")
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["persona_scale"] = bench  # dataclasses look their module up there
_SPEC.loader.exec_module(bench)

OPERATIONS = [
    "definitions load",
    "corpus automation, first tick",
    "corpus automation, nothing changed",
    "new sensor, nothing new",
    "removed sensor, nothing removed",
    "status, cache up to date",
    "new sensor, 10 new cards",
    "add the 10 partitions",
    "status, cache rebuilt",
    "materialized partitions",
    "corpus automation, 10 changed",
    "removed sensor, 10 removed",
]


@pytest.fixture(scope="module")
def outcome():
    return bench.run(20, baseline=10, repeat=1, cli=False)


def test_cards_from_the_seed_tables_pass_the_content_checks(tmp_path):
    seeds = load_seed_variables(REPO_ROOT / "assets" / "seeds")
    rules = RuleSet.load(REPO_ROOT / "assets" / "rules")
    pairs = bench.cards_from_seeds(REPO_ROOT / "assets", 40)
    assert len({card.id for card, _ in pairs}) == 40
    assert {card.language for card, _ in pairs} >= {"zh", "en"}
    for card, template in pairs:
        assert card.occupation in seeds.character_occupations and card.occupation != template.occupation
        loaded = load_persona_file(bench.write_card(card, tmp_path), rules)  # raises on a bad card
        assert loaded.model_dump(exclude={"source"}) == card.model_dump(exclude={"source"})


def test_every_operation_is_measured_at_both_sizes_with_a_headline_last(outcome):
    lines, status = bench.render(outcome)
    assert status == 0, lines
    assert re.fullmatch(
        r"setup: 10 personas \(\d+ events\) in [\d.]+ s; 20 personas \(\d+ events\) in [\d.]+ s", lines[0]
    )
    assert lines[1].split()[:1] == ["operation"] and "10 personas" in lines[1] and "20 personas" in lines[1]
    rows = {line.split("  ")[0]: line for line in lines[2:-2]}
    assert list(rows) == OPERATIONS
    assert lines[-2] == "cleaned_dialogues at 20+10 partitions: 18 materialized, 1 failed, 0 in_progress, 11 missing"
    for row in rows.values():
        assert re.search(r"\d+\.\d{3} s +\d+\.\d{3} s +\d+\.\dx$", row), row
    assert re.fullmatch(
        r"20 personas: sensor tick [\d.]+ s, status query [\d.]+ s, definitions load [\d.]+ s, "
        r"corpus automation tick [\d.]+ s \([\d.]+ / [\d.]+ / [\d.]+ / [\d.]+x the 10-persona baseline\)",
        lines[-1],
    )


def test_the_counts_are_what_was_set_up(outcome):
    big = outcome.big
    assert len(big.keys) == 20 and len(set(big.keys)) == 20
    assert (len(big.cleaned), len(big.failed)) == (18, 1)
    assert len(outcome.base.keys) == 10
    assert outcome.baseline.checks == [] and outcome.scale.checks == []


def test_a_figure_past_its_bound_fails_the_benchmark(outcome, monkeypatch):
    monkeypatch.setitem(bench.BOUNDS, "status", 0.0)
    lines, status = bench.render(outcome)
    assert status == 1
    assert any(line.startswith("OVER BOUND: status, cache rebuilt") for line in lines)
    assert lines[-1].startswith("20 personas: ")
