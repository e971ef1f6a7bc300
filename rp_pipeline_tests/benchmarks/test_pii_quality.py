"""The PII benchmark's labeled set and scoring: zh and en cases, look-alikes among them, every
labeled value found and no look-alike masked at the thresholds the data team relies on."""

from __future__ import annotations

import importlib.util
import sys

from rp_pipeline.settings import REPO_ROOT

_SPEC = importlib.util.spec_from_file_location("pii_quality", REPO_ROOT / "benchmarks" / "pii_quality.py")
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["pii_quality"] = bench
_SPEC.loader.exec_module(bench)


def test_the_labeled_set_has_both_languages_every_kind_and_look_alikes():
    cases = bench.load_cases()
    assert {c["lang"] for c in cases} == {"zh", "en"}
    kinds = {kind for c in cases for kind, _ in c["pii"]}
    assert kinds == {
        "email", "cn_id", "bank_card", "cn_mobile", "cn_landline", "phone", "intl_phone", "address_zh",
        "address_en", "password",
    }  # fmt: skip
    assert sum(not c["pii"] for c in cases) >= 30
    assert any(c.get("note") == "mistyped check digit" for c in cases)


def test_pii_precision_and_recall_on_the_labeled_set(capsys):
    tp, fp, fn, _ = bench.score(bench.load_cases())
    t, f, n = sum(tp.values()), sum(fp.values()), sum(fn.values())
    assert t / (t + n) >= 0.95 and t / (t + f) >= 0.90
    assert bench.main([]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("overall: precision")
