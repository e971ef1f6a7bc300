"""The lineage benchmark at a tiny size: it ingests through the store, checks every answer it
times, and prints the figures `make bench` reads, its headline last."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from rp_pipeline.lineage.store import LineageStore
from rp_pipeline.settings import REPO_ROOT


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bench = _load("lineage_query")
run_all = _load("run_all")


def test_a_tiny_run_prints_ingest_both_queries_and_the_headline_last(tmp_path: Path, capsys) -> None:
    assert bench.main(["--events", "3000", "--queries", "4", "--persona-queries", "2", "--root", str(tmp_path)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"ingest: [0-9,]+ events in [0-9,]+ segments, .* -> 1 files", lines[0])
    assert re.match(r"trace\(corpus row\) +p50 +[0-9.]+ ms +p95 +[0-9.]+ ms .*\(4 calls\)", lines[1])
    assert re.match(r"checkpoints_for_persona +p50 +[0-9.]+ ms +p95 +[0-9.]+ ms .*\(2 calls\)", lines[2])
    headline = re.fullmatch(r"lineage trace p50 at ([0-9,]+) events: [0-9.]+ ms \(goal < 50 ms at 10M\)", lines[-1])
    assert headline is not None
    assert 2_400 <= int(headline.group(1).replace(",", "")) <= 3_600  # about the events asked for
    assert run_all.BENCHMARKS[2].check(lines[-1]) in {"missed", "met below 10M events"}


def test_the_history_is_shaped_like_the_pipeline(tmp_path: Path) -> None:
    """Several waves of personas, a corpus rebuilt over them (older rows re-emitted), and a
    trace from a corpus row that climbs through cleaning, a dialogue and a card to the seeds."""
    store = LineageStore(tmp_path)
    out = bench.History()
    done = bench.ingest(store, 4_000, seed=1, out=out, progress=False)

    with store.connect() as con:
        assets = dict(con.execute("SELECT asset, count(*) FROM events GROUP BY asset").fetchall())
        re_emitted = con.execute("SELECT count(*) FROM superseded WHERE asset = 'training_corpus'").fetchone()
    assert sum(assets.values()) == done.events
    assert assets["dialogues"] >= assets["persona_cards"] * 5 and assets["training_corpus"] > assets["dialogues"]
    assert re_emitted is not None and re_emitted[0] > 0
    trace = store.trace(out.corpus_rows[0])
    assert max(r["depth"] for r in trace) >= 4
    assert {"cleaned_dialogues", "dialogues", "persona_cards", "topic_keywords", "seed_samples"} <= {
        r["asset"] for r in trace
    }
    assert {r["asset"] for r in store.checkpoints_for_persona(out.personas[0])} == {
        "sft_checkpoint",
        "dpo_checkpoint",
        "quantized_model",
    }
