"""The labeled cleaning set is well-formed, and the cleaning-quality benchmark scores it right."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from rp_pipeline.core.cleaning import REASON_CODES, CleaningResult, TurnReport
from rp_pipeline.settings import REPO_ROOT

_SPEC = importlib.util.spec_from_file_location("cleaning_quality", REPO_ROOT / "benchmarks" / "cleaning_quality.py")
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["cleaning_quality"] = bench
_SPEC.loader.exec_module(bench)

# The codes agreed for issue 11; REASON_CODES holds them once the rules land, the union keeps
# this test meaningful either way.
AGREED_NEW_CODES = {
    "truncated",
    "self_repeat",
    "name_prefix",
    "language_name",
    "user_assistant_speak",
    "user_degenerate",
    "user_echo",
    "user_markup",
    "user_wrong_language",
}
TURN_CODES = (set(REASON_CODES) | AGREED_NEW_CODES) - bench.ROW_LEVEL_CODES


@pytest.fixture(scope="module")
def labeled() -> list:
    return bench.load_labeled()


def test_labeled_set_covers_languages_turns_and_known_codes(labeled):
    turns = Counter(row.language for row in labeled for _ in row.labels)
    assert sum(turns.values()) >= 300
    assert len(turns) >= 6 and {"zh", "en", "ja", "es"} <= set(turns)
    assert all(turns[lang] >= 40 for lang in ("zh", "en", "ja", "es")), turns
    assert all(count >= 25 for count in turns.values()), turns
    assert len({row.id for row in labeled}) == len(labeled)
    used = {code for row in labeled for codes in row.labels.values() for code in codes}
    assert used <= TURN_CODES, used - TURN_CODES
    # Precision needs negatives: most turns are clean, and every language has clean replies.
    clean = sum(not codes for row in labeled for codes in row.labels.values())
    assert clean > sum(turns.values()) / 2
    for language in turns:
        replies = [
            codes
            for row in labeled
            if row.language == language
            for turn, codes in row.labels.items()
            if row.messages[turn].role == "assistant"
        ]
        assert any(not codes for codes in replies) and any(codes for codes in replies), language


def test_each_file_holds_one_language():
    for path in sorted(bench.DATA_DIR.glob("*.jsonl")):
        languages = {json.loads(line)["language"] for line in path.read_text(encoding="utf-8").splitlines()}
        assert languages == {path.stem}, path.name


def _row(**changes) -> dict:
    row = {
        "id": "t-1",
        "language": "zh",
        "character_name": "林小满",
        "opening_line": "早啊<emotion>happy</emotion>",
        "messages": [
            {"role": "system", "content": "你是林小满。"},
            {"role": "user", "content": "早"},
            {"role": "assistant", "content": "早呀<emotion>happy</emotion>今天喝什么？<emotion>neutral</emotion>"},
        ],
        "labels": {"1": [], "2": []},
        "source": "hand",
    }
    return row | changes


def test_a_row_with_an_unlabeled_or_extra_turn_is_rejected(tmp_path: Path):
    (tmp_path / "zh.jsonl").write_text(json.dumps(_row()) + "\n", encoding="utf-8")
    assert [row.id for row in bench.load_labeled(tmp_path)] == ["t-1"]
    for labels in ({"1": []}, {"0": [], "1": [], "2": []}):
        (tmp_path / "zh.jsonl").write_text(json.dumps(_row(labels=labels)) + "\n", encoding="utf-8")
        with pytest.raises(ValueError, match=r"(?s)zh\.jsonl:1: .*labels must cover exactly"):
            bench.load_labeled(tmp_path)


def test_score_counts_a_known_false_positive_and_false_negative():
    gold = {
        ("zh", "a", 2): {"goodbye"},
        ("zh", "a", 4): set(),
        ("en", "b", 2): {"echo", "assistant_speak"},
    }
    predicted = {
        ("zh", "a", 2): {"goodbye"},
        ("zh", "a", 4): {"goodbye"},  # false positive
        ("en", "b", 2): {"echo"},  # assistant_speak missed: false negative
        ("en", "b", 9): {"echo"},  # not a labeled turn: ignored
    }
    counts, errors = bench.score(gold, predicted)
    by_code = bench.totals(counts, "code")
    assert (by_code["goodbye"].tp, by_code["goodbye"].fp, by_code["goodbye"].fn) == (1, 1, 0)
    assert by_code["goodbye"].precision == 0.5 and by_code["goodbye"].recall == 1.0
    assert by_code["assistant_speak"].precision is None and by_code["assistant_speak"].recall == 0.0
    assert by_code["echo"].precision == 1.0 and by_code["echo"].support == 1
    by_language = bench.totals(counts, "language")
    assert (by_language["zh"].precision, by_language["en"].recall) == (0.5, 0.5)
    total = bench.overall(counts)
    assert (total.tp, total.fp, total.fn) == (2, 1, 1)
    assert sorted((e.kind, e.code, e.key) for e in errors) == [
        ("FN", "assistant_speak", ("en", "b", 2)),
        ("FP", "goodbye", ("zh", "a", 4)),
    ]
    limited, _ = bench.score(gold, predicted, codes={"echo"})
    assert set(bench.totals(limited, "code")) == {"echo"}


def test_every_action_counts_and_row_level_codes_do_not():
    row = bench.LabeledRow.model_validate(_row())
    reports = [
        TurnReport(id="t-1", turn=1, role="user", codes=["user_degenerate"], action="cut"),
        TurnReport(id="t-1", turn=2, role="assistant", codes=["goodbye", "echo"], action="flag"),
        TurnReport(id="t-1", turn=None, role=None, codes=["too_few_turns"], action="drop"),
    ]
    predicted, _ = bench.predicted_codes([row], CleaningResult(kept=[], reports=reports))
    assert predicted == {("zh", "t-1", 1): {"user_degenerate"}, ("zh", "t-1", 2): {"goodbye", "echo"}}


def test_the_real_cleaner_runs_on_a_labeled_row():
    row = bench.LabeledRow.model_validate(
        _row(
            messages=[
                {"role": "system", "content": "你是林小满。"},
                {"role": "user", "content": "我先走啦"},
                {"role": "assistant", "content": "好呀<emotion>happy</emotion>再见！<emotion>happy</emotion>"},
                {"role": "user", "content": "明天还来"},
                {"role": "assistant", "content": "那我给你留一杯新豆子<emotion>happy</emotion>"},
            ],
            labels={"1": [], "2": ["goodbye"], "3": [], "4": []},
        )
    )
    predicted, _ = bench.predicted_codes([row], bench.run([row]))
    assert "goodbye" in predicted[("zh", "t-1", 2)]
    assert not predicted.get(("zh", "t-1", 4))
