"""benchmarks/learning.py: the table, the differences and their intervals, the verdict and the
gain line from known per-reply values; and a `--quick` run end to end on the tiny model."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from rp_pipeline.core.judging import bootstrap_interval
from rp_pipeline.settings import REPO_ROOT
from rp_pipeline_tests.training.conftest import corpus_rows, pair_rows, write_jsonl

_SPEC = importlib.util.spec_from_file_location("learning", REPO_ROOT / "benchmarks" / "learning.py")
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["learning"] = bench
_SPEC.loader.exec_module(bench)


def version(name: str, rates: dict[str, float], n: int = 80):
    """Per-reply values with the given share of 1.0s (the first round(rate * n) replies)."""
    values = {key: [1.0] * round(rates.get(key, 0.5) * n) + [0.0] * (n - round(rates.get(key, 0.5) * n))
              for key, _ in bench.METRICS}  # fmt: skip
    metrics = {"replies": float(n)}
    for key, column in values.items():
        low, high = bootstrap_interval(column)
        metrics |= {key: sum(column) / n, f"{key}_low": low, f"{key}_high": high}
    return bench.VersionResult(name, metrics, values)


BASE = {"format_valid_rate": 0.1, "rule_clean_rate": 0.05, "in_language_rate": 0.9, "assistant_speak_rate": 0.3}
STRONG = {"format_valid_rate": 0.8, "rule_clean_rate": 0.5, "in_language_rate": 0.95, "assistant_speak_rate": 0.05}
WEAK = {"format_valid_rate": 0.15, "rule_clean_rate": 0.1, "in_language_rate": 0.9, "assistant_speak_rate": 0.3}


def test_differences_have_bootstrap_intervals_that_exclude_zero_only_for_a_real_gap():
    base, strong, weak = version("base", BASE), version("sft-full", STRONG), version("sft-lora", WEAK)
    diff = bench.differences(strong, base)
    assert diff["format_valid_rate"].value == pytest.approx(0.7)
    assert 0.55 < diff["format_valid_rate"].low < 0.7 < diff["format_valid_rate"].high < 0.85
    assert diff["format_valid_rate"].excludes_zero and diff["assistant_speak_rate"].high < 0
    small = bench.differences(weak, base)["format_valid_rate"]
    assert small.value == pytest.approx(0.05) and small.low < 0 < small.high and not small.excludes_zero


def test_the_best_version_the_verdict_and_the_last_line():
    # 40 replies a version: every bootstrap here is pure Python, and 80 took 18 s on 2 cores
    results = [
        version(name, rates, n=40)
        for name, rates in (("base", BASE), ("sft-lora", WEAK), ("sft-full", STRONG), ("dpo", WEAK))
    ]
    assert bench.best_version(results).name == "sft-full"
    passed, verdict = bench.done_when(results)
    assert passed and verdict.startswith("sft-full vs base:") and "NO" not in verdict
    stages = [bench.StageCost("train sft-lora (30 steps)", 480.0, 3 * 1024), bench.StageCost("eval base", 120.0, 1024)]
    text = bench.render(results, stages, ["dpo: reward margin +0.4"])
    lines = text.splitlines()
    assert lines[-1] == "format-valid gain: +0.70"
    assert "| sft-full | 40 | 0.80 [" in text and "| sft-full | +0.70 [+0." in text
    assert "| train sft-lora (30 steps) | 8.0 min | 3.0 GB |" in text and "| total | 10.0 min |  |" in text
    assert "dpo: reward margin +0.4" in lines

    no_gain = [
        version(name, rates, n=40)
        for name, rates in (("base", BASE), ("sft-lora", WEAK), ("sft-full", WEAK), ("dpo", WEAK))
    ]
    passed, verdict = bench.done_when(no_gain)
    assert not passed and "format-valid +0.25 NO" in verdict
    assert bench.render(no_gain, stages).splitlines()[-1] == "format-valid gain: +0.05"


def test_a_lower_in_language_rate_fails_the_bar_even_with_a_format_gain():
    worse = {**STRONG, "in_language_rate": 0.7}
    passed, verdict = bench.done_when([version("base", BASE), version("sft-full", worse)])
    assert not passed and "in-language not lower NO" in verdict


def test_sizes_are_checked_and_corpus_and_pairs_go_together():
    with pytest.raises(SystemExit):
        bench.parse_args(["--corpus", "x.jsonl"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--sft-steps", "0"])


def test_quick_run_trains_lora_full_and_dpo_and_evaluates_all_four(tmp_path, capsys):
    """The whole benchmark on the tiny model: three trainings by the project's scripts, four
    versions played through every eval scenario (one turn each) by generate.py, the table."""
    corpus = write_jsonl(tmp_path / "messages.jsonl", corpus_rows(12))
    pairs = write_jsonl(tmp_path / "pairs.jsonl", pair_rows(4))
    out = tmp_path / "out"
    assert bench.main(["--quick", "--corpus", str(corpus), "--pairs", str(pairs), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("format-valid gain: ") and lines[-2].startswith("done when: ")
    results = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in results["results"]] == ["base", "sft-lora", "sft-full", "dpo"]
    assert all(r["metrics"]["replies"] == 12 for r in results["results"])  # 12 scenarios, one turn each
    stages = [s["name"] for s in results["stages"]]
    assert stages[:3] == ["train sft-lora (2 steps)", "train sft-full (2 steps)", "train dpo on sft-full (1 steps)"]
    assert len(stages) == 7 and all(s["wall_s"] > 0 and s["peak_mb"] > 100 for s in results["stages"])
    assert (out / "models" / "sft-lora" / "adapter" / "adapter_config.json").is_file()
    assert (out / "models" / "sft-full" / "model" / "model.safetensors").is_file()
    dpo = json.loads((out / "models" / "dpo" / "adapter" / "metrics.json").read_text())
    assert dpo["steps"] == 1 and any(n.startswith("dpo: 1 steps on 4 pairs") for n in results["notes"])
    played = json.loads((out / "eval" / "dpo" / "played.json").read_text())
    assert len(played) == 12 and all(len(replies) == 1 for replies in played.values())

    # the same replies scored again (as after a rule change): a reply made degenerate now fails
    key = next(iter(played))
    played[key] = [("¡" * 6 + "<emotion>neutral</emotion>") * 3]
    (out / "eval" / "dpo" / "played.json").write_text(json.dumps(played, ensure_ascii=False))
    assert bench.main(["--rescore", "--out", str(out)]) == 0
    rescored = json.loads((out / "results.json").read_text())
    dpo_clean = next(r for r in rescored["results"] if r["name"] == "dpo")["values"]["rule_clean_rate"]
    assert dpo_clean[0] == 0.0 and "rescored_at" in rescored and rescored["stages"] == results["stages"]
    assert capsys.readouterr().out.splitlines()[-1].startswith("format-valid gain: ")


# ~4 minutes on 2 cores (a whole profile run to its pairs: generation, cleaning, the corpus, the
# profile's SFT and sampling from it), which the default run cannot afford; the stages after it are
# the quick run's above, and the graph itself is test_end_to_end's.
@pytest.mark.slow
def test_without_the_profiles_outputs_the_profile_runs_up_to_its_pairs_and_no_further(
    pipeline_settings, tiny_model_dir, fake_llm
):
    """`learn_data` on an empty data directory: the profile runs as `rp demo` runs it, stopped
    after the corpus, its SFT and the on-policy pairs (no DPO, no eval); their files come back."""
    import yaml

    path = pipeline_settings.assets_dir / "profiles" / "test.yaml"
    profile = yaml.safe_load(path.read_text())
    profile["training"]["base_model"] = str(tiny_model_dir)
    path.write_text(yaml.safe_dump(profile, allow_unicode=True))
    corpus, pairs = bench.learn_data(pipeline_settings, regenerate=False)
    outputs = pipeline_settings.data_dir / "assets"
    assert {p.stem for p in outputs.glob("*.json")} >= set(bench.DATA_ASSETS)
    assert not (outputs / "dpo_checkpoint.json").exists() and not (outputs / "eval_scores.json").exists()
    assert json.loads((outputs / "training_corpus.json").read_text())["messages"] == corpus
    assert Path(corpus).read_text().splitlines() and Path(pairs).read_text().splitlines()
