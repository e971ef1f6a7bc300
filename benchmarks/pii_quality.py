"""PII detection quality: precision and recall of `find_pii` on a labeled zh/en set.

    python benchmarks/pii_quality.py [--show-errors]

The set (`rp_pipeline_tests/data/pii_labeled/{zh,en}.jsonl`, one case per line: `text` and
`pii`, the [kind, value] pairs it holds, [] for a look-alike) has phones (CN mobile and
landline, NANP, international), emails, resident IDs (valid and with a mistyped check digit),
bank cards, street addresses and passwords, beside look-alikes that are not personal data:
order and tracking numbers, an 18-digit number without a birth date, Luhn-failing card-like
numbers, prices, dates, versions, rooms, "the password field". Values are made up (IDs and
cards computed to pass or fail their checksums). A find counts when kind and value match a
labeled pair exactly. Last line: the overall figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rp_pipeline.core.cleaning.pii import find_pii
from rp_pipeline.settings import REPO_ROOT

DATA_DIR = REPO_ROOT / "rp_pipeline_tests" / "data" / "pii_labeled"


def load_cases(data_dir: Path = DATA_DIR) -> list[dict]:
    cases = []
    for path in sorted(data_dir.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            case = json.loads(line)
            if not isinstance(case.get("text"), str) or not isinstance(case.get("pii"), list):
                raise ValueError(f"{path.name}:{number}: needs 'text' (a string) and 'pii' (a list of [kind, value])")
            cases.append(case)
    return cases


def score(cases: list[dict]) -> tuple[Counter, Counter, Counter, list[str]]:
    """True positives, false positives and false negatives per kind, and the errors."""
    tp, fp, fn, errors = Counter(), Counter(), Counter(), []
    for case in cases:
        gold = Counter(tuple(pair) for pair in case["pii"])
        _, found = find_pii(case["text"])
        predicted = Counter(found)
        for pair, n in (gold & predicted).items():
            tp[pair[0]] += n
        for pair, n in (predicted - gold).items():
            fp[pair[0]] += n
            errors.append(f"FP {pair[0]:<12} {pair[1]!r} in {case['text']!r}")
        for pair, n in (gold - predicted).items():
            fn[pair[0]] += n
            errors.append(f"FN {pair[0]:<12} {pair[1]!r} in {case['text']!r}")
    return tp, fp, fn, errors


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.2f}" if b else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args(argv)
    cases = load_cases()
    tp, fp, fn, errors = score(cases)
    lookalikes = sum(not c["pii"] for c in cases)
    print(f"{len(cases)} cases ({lookalikes} look-alikes), {sum(len(c['pii']) for c in cases)} labeled values")
    if args.show_errors:
        print("\n".join(errors) or "(no errors)", end="\n\n")
    print(f"{'kind':<12} {'precision':>9} {'recall':>7} {'tp':>4} {'fp':>4} {'fn':>4}")
    for kind in sorted(tp.keys() | fp.keys() | fn.keys()):
        print(
            f"{kind:<12} {_ratio(tp[kind], tp[kind] + fp[kind]):>9} {_ratio(tp[kind], tp[kind] + fn[kind]):>7} "
            f"{tp[kind]:>4} {fp[kind]:>4} {fn[kind]:>4}"
        )
    t, f, n = sum(tp.values()), sum(fp.values()), sum(fn.values())
    print(f"overall: precision {_ratio(t, t + f)} recall {_ratio(t, t + n)} (tp {t}, fp {f}, fn {n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
