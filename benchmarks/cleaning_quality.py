"""Cleaning quality: precision and recall of the cleaner's reason codes on a hand-labeled set.

    python benchmarks/cleaning_quality.py [--data DIR] [--codes a,b] [--show-errors] [--rules-only]

The labeled set (`rp_pipeline_tests/data/cleaning_labeled/*.jsonl`, one file per language)
holds conversations in the `rp clean` input schema (with `opening_line` and `character_name`,
which echo and name-prefix checks use) plus `source` (hand-written or a pattern seen in the
demo's output) and `labels`: for every user and assistant turn, keyed by its index in
`messages`, the reason codes it deserves ([] when it is clean).

The rows go through the real cleaner (`clean_rows` with `RuleSet.load(assets/rules)` and the
default `CleaningConfig`), with the default model map's `cleaner` reading Chinese and Japanese
endings (the bundled 1.5B: requirements/demo.lock; its answers are cached in data/) unless
`--rules-only`. Every code reported for a turn counts as predicted, whatever the
action (cut, drop, repair, or flag for a turn after the row's cut), so turns after the first
bad one are judged too. Scoring is per (turn, code): a code both labeled and reported is a
true positive, reported only a false positive, labeled only a false negative. The table
gives precision, recall and support (labeled turns) per code, then per language and overall
as micro figures over codes; the last line is the overall figure.

Row-level codes (exact_duplicate, near_duplicate, too_few_turns, overfrequent_pattern) are not
scored: they judge a whole row (reported with turn=None), not a turn.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rp_pipeline.core.cleaning import ChatRow, CleaningConfig, CleaningResult, clean_rows
from rp_pipeline.core.models import Message, NonEmptyStr
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.llm.cleaner import read_endings
from rp_pipeline.llm.embedded import EmbeddedModelError
from rp_pipeline.settings import REPO_ROOT, Settings

DATA_DIR = REPO_ROOT / "rp_pipeline_tests" / "data" / "cleaning_labeled"
ROW_LEVEL_CODES = frozenset({"exact_duplicate", "near_duplicate", "too_few_turns", "overfrequent_pattern"})

Key = tuple[str, str, int]  # (language, row id, turn index in the labeled row's messages)


class LabeledRow(ChatRow):
    """A row of `rp clean` input (with the persona's `opening_line` and `character_name`, which
    echo and name-prefix checks use) plus `labels`, the codes of every user and assistant turn
    ([] when it is clean; the system prompt has none), and `source`."""

    opening_line: NonEmptyStr
    character_name: NonEmptyStr
    messages: list[Message] = Field(min_length=2)
    labels: dict[int, list[str]]
    source: Literal["hand", "demo-pattern"]

    @model_validator(mode="after")
    def _every_turn_labeled(self) -> LabeledRow:
        if self.messages[0].role != "system":
            raise ValueError("messages.0 must be the system prompt")
        turns = {i for i, m in enumerate(self.messages) if m.role != "system"}
        if set(self.labels) != turns:
            missing, extra = sorted(turns - set(self.labels)), sorted(set(self.labels) - turns)
            raise ValueError(f"labels must cover exactly the user/assistant turns: missing {missing}, extra {extra}")
        return self

    def chat_row(self) -> ChatRow:
        """The row as the cleaner takes it."""
        return ChatRow.model_validate(self.model_dump(include=set(ChatRow.model_fields)))


def load_labeled(data_dir: Path = DATA_DIR) -> list[LabeledRow]:
    rows = []
    for path in sorted(data_dir.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(LabeledRow.model_validate(json.loads(line)))
            except ValueError as exc:
                raise ValueError(f"{path.name}:{number}: {exc}") from exc
    return rows


def gold_codes(rows: Iterable[LabeledRow]) -> dict[Key, set[str]]:
    return {(row.language, row.id, turn): set(codes) for row in rows for turn, codes in row.labels.items()}


def predicted_codes(
    rows: Iterable[LabeledRow], result: CleaningResult
) -> tuple[dict[Key, set[str]], dict[Key, list[str]]]:
    """Every turn-level code the cleaner reported per labeled turn, and the reports' details."""
    language = {row.id: row.language for row in rows}
    codes: dict[Key, set[str]] = {}
    details: dict[Key, list[str]] = {}
    for report in result.reports:
        if report.turn is None:
            continue
        key = (language[report.id], report.id, report.turn)
        codes.setdefault(key, set()).update(c for c in report.codes if c not in ROW_LEVEL_CODES)
        details.setdefault(key, []).extend(report.details)
    return codes, details


@dataclass
class Count:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def support(self) -> int:
        return self.tp + self.fn

    def __iadd__(self, other: Count) -> Count:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn
        return self


@dataclass(frozen=True)
class Error:
    kind: Literal["FP", "FN"]
    key: Key
    code: str


def score(
    gold: dict[Key, set[str]], predicted: dict[Key, set[str]], codes: set[str] | None = None
) -> tuple[dict[tuple[str, str], Count], list[Error]]:
    """Per (code, language): true/false positives and false negatives over the labeled turns
    (a prediction for a turn that is not labeled is ignored), and every error. `codes` limits
    the scoring to those codes."""
    counts: dict[tuple[str, str], Count] = {}
    errors: list[Error] = []
    for key, labeled in gold.items():
        reported = predicted.get(key, set())
        for code in labeled | reported:
            if codes is not None and code not in codes:
                continue
            count = counts.setdefault((code, key[0]), Count())
            if code in labeled and code in reported:
                count.tp += 1
            elif code in reported:
                count.fp += 1
                errors.append(Error("FP", key, code))
            else:
                count.fn += 1
                errors.append(Error("FN", key, code))
    return counts, errors


def totals(counts: dict[tuple[str, str], Count], by: Literal["code", "language"]) -> dict[str, Count]:
    summed: dict[str, Count] = {}
    for (code, language), count in sorted(counts.items()):
        summed.setdefault(code if by == "code" else language, Count()).__iadd__(count)
    return summed


def overall(counts: dict[tuple[str, str], Count]) -> Count:
    total = Count()
    for count in counts.values():
        total += count
    return total


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(title: str, rows: dict[str, Count]) -> str:
    lines = [f"{title:<22} {'precision':>9} {'recall':>7} {'support':>8} {'tp':>5} {'fp':>5} {'fn':>5}"]
    for name, c in rows.items():
        lines.append(
            f"{name:<22} {_figure(c.precision):>9} {_figure(c.recall):>7} {c.support:>8} {c.tp:>5} {c.fp:>5} {c.fn:>5}"
        )
    return "\n".join(lines)


def show_errors(
    errors: list[Error], rows: list[LabeledRow], predicted: dict[Key, set[str]], details: dict[Key, list[str]]
) -> str:
    by_id = {row.id: row for row in rows}
    lines = []
    for error in sorted(errors, key=lambda e: (e.code, e.kind, e.key)):
        _, row_id, turn = error.key
        row = by_id[row_id]
        message = row.messages[turn]
        lines.append(
            f"{error.kind} {error.code:<20} {row_id}#{turn} ({message.role}) {message.content!r}\n"
            f"    labeled {sorted(row.labels[turn])} reported {sorted(predicted.get(error.key, ()))}"
            + (f" details {details[error.key]}" if details.get(error.key) else "")
        )
    return "\n".join(lines)


def run(
    rows: list[LabeledRow],
    rules_dir: Path = REPO_ROOT / "assets" / "rules",
    unfinished: dict[str, dict[int, str]] | None = None,
) -> CleaningResult:
    return clean_rows([row.chat_row() for row in rows], RuleSet.load(rules_dir), CleaningConfig(), unfinished)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="folder of labeled *.jsonl files")
    parser.add_argument("--codes", help="comma-separated codes to score (default: every turn-level code)")
    parser.add_argument("--show-errors", action="store_true", help="print each false positive and false negative")
    parser.add_argument(
        "--rules-only",
        action="store_true",
        help="do not ask the model map's `cleaner` whether Chinese/Japanese replies stop mid-clause",
    )
    args = parser.parse_args(argv)

    rows = load_labeled(args.data)
    gold = gold_codes(rows)
    unfinished = {}
    if not args.rules_only:
        settings, threshold = Settings(), CleaningConfig().ending_min_probability
        chat_rows = [row.chat_row() for row in rows]
        try:
            unfinished = read_endings(chat_rows, settings.llm_config_path, settings.data_dir, threshold)
        except EmbeddedModelError as exc:
            print(f"cannot read endings: {exc}\n(install requirements/demo.lock or pass --rules-only)", file=sys.stderr)
            return 2
    predicted, details = predicted_codes(rows, run(rows, unfinished=unfinished))
    codes = set(args.codes.split(",")) if args.codes else None
    counts, errors = score(gold, predicted, codes)

    languages = Counter(key[0] for key in gold)
    print(f"{len(rows)} rows, {len(gold)} labeled turns, per language {dict(sorted(languages.items()))}")
    if args.show_errors:
        print(show_errors(errors, rows, predicted, details), end="\n\n")
    print(table("code", totals(counts, "code")), end="\n\n")
    print(table("language", totals(counts, "language")), end="\n\n")
    total = overall(counts)
    print(
        f"overall: precision {_figure(total.precision)} recall {_figure(total.recall)} "
        f"(n={len(gold)} turns, {total.support} labeled codes, {total.tp + total.fp} reported)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
