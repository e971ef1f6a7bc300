"""Behaviour of the lineage store: tracing, dedup of re-emitted rows, drops, persona ->
checkpoint queries, costs, the exported DuckDB file, concurrent writers, and scale."""

from __future__ import annotations

import multiprocessing
import random
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from rp_pipeline.lineage import compaction
from rp_pipeline.lineage import store as store_module
from rp_pipeline.lineage.compaction import segment_files
from rp_pipeline.lineage.models import LineageEvent
from rp_pipeline.lineage.schema import arrow_schema
from rp_pipeline.lineage.store import LineageStore
from rp_pipeline_tests.lineage.conftest import T0, event


def assets_by_depth(rows: list[dict]) -> list[tuple[int, str]]:
    return [(r["depth"], r["asset"]) for r in rows]


# --- trace -------------------------------------------------------------------------


def test_trace_walks_a_corpus_row_back_to_its_seed_sample(store: LineageStore) -> None:
    rows = store.trace("corpus-row-1")

    assert assets_by_depth(rows) == [
        (0, "training_corpus"),
        (1, "cleaned_dialogues"),
        (2, "dialogues"),
        (3, "persona_cards"),
        (3, "topic_keywords"),
        (4, "seed_samples"),
    ]
    assert [r["row_id"] for r in rows] == ["corpus-row-1", "turn-1", "dlg-1", "persona-lin", "topic-1", "seed-1"]
    dialogue = rows[2]
    assert dialogue["partition"] == "lin-xiaoyu"
    assert dialogue["model"] == "character-7b"
    assert dialogue["parent_ids"] == ["topic-1", "persona-lin"]
    assert rows[3]["attrs"] == {"name": "林小雨", "persona_id": "p-017"}
    assert rows[0]["ts"].tzinfo is not None


def test_trace_from_a_checkpoint_crosses_the_corpus_version(store: LineageStore) -> None:
    rows = store.trace("dpo-v1")

    assert rows[0]["asset"] == "dpo_checkpoint" and rows[0]["attrs"]["path"] == "/m/dpo-1"
    chain = [a for _, a in assets_by_depth(rows)]
    assert chain.index("sft_checkpoint") < chain.index("corpus_version") < chain.index("training_corpus")
    assert rows[-1] == rows[-1] | {"asset": "seed_samples", "row_id": "seed-1", "depth": 7}
    assert "seed-2" not in {r["row_id"] for r in rows}  # bob's dropped data is not in the model


def test_unknown_row_ids_raise_key_error(store: LineageStore) -> None:
    with pytest.raises(KeyError, match="no-such-row"):
        store.trace("no-such-row")
    with pytest.raises(KeyError, match="no-such-row"):
        store.descendants("no-such-row")


def test_a_parent_nobody_emitted_shows_where_the_chain_breaks(tmp_path: Path) -> None:
    lineage = LineageStore(tmp_path)
    lineage.write_events([event("dialogues", "p", "dlg-x", ["topic-never-written"])])

    rows = lineage.trace("dlg-x")

    assert [(r["depth"], r["row_id"], r["kind"]) for r in rows] == [
        (0, "dlg-x", "row"),
        (1, "topic-never-written", "missing"),
    ]
    with pytest.raises(KeyError):  # referenced, but no event of its own
        lineage.trace("topic-never-written")


def test_cycles_terminate(tmp_path: Path) -> None:
    lineage = LineageStore(tmp_path)
    lineage.write_events([event("a", None, "x", ["y"]), event("b", None, "y", ["x"])])

    assert [(r["depth"], r["row_id"]) for r in lineage.trace("x")] == [(0, "x"), (1, "y")]
    assert [(r["depth"], r["row_id"]) for r in lineage.descendants("x")] == [(1, "y")]


def test_descendants_are_what_to_rebuild_when_a_persona_goes(store: LineageStore) -> None:
    rows = store.descendants("persona-lin")

    assert ("dialogues", "dlg-1", 1) in {(r["asset"], r["row_id"], r["depth"]) for r in rows}
    assert {"turn-1", "turn-1b", "corpus-row-1", "corpus-v1", "sft-v1", "dpo-v1"} <= {r["row_id"] for r in rows}
    assert "persona-lin" not in {r["row_id"] for r in rows}
    assert "dlg-2" not in {r["row_id"] for r in rows}


# --- re-emission -------------------------------------------------------------------


def test_re_emitted_rows_are_deduped_and_the_newest_wins(store: LineageStore) -> None:
    later = T0 + timedelta(hours=1)
    # Re-materializing dialogues re-emits dlg-1 with another model; topic-1 is
    # regenerated from a different seed sample.
    store.write_events(
        [
            event(
                "dialogues",
                "lin-xiaoyu",
                "dlg-1",
                ["topic-1", "persona-lin"],
                run_id="run-2",
                ts=later,
                model="character-14b",
            )
        ]
    )
    store.write_events([event("topic_keywords", None, "topic-1", ["seed-2"], run_id="run-2", ts=later)])

    rows = store.trace("corpus-row-1")

    assert [r["row_id"] for r in rows].count("dlg-1") == 1
    dialogue = next(r for r in rows if r["row_id"] == "dlg-1")
    assert (dialogue["run_id"], dialogue["model"]) == ("run-2", "character-14b")
    seeds = {r["row_id"] for r in rows if r["asset"] == "seed_samples"}
    assert seeds == {"seed-2"}  # the stale edge topic-1 -> seed-1 is gone
    with store.connect() as con:
        emitted = con.execute("SELECT count(*) FROM events WHERE row_id = 'dlg-1'").fetchone()[0]
        latest = con.execute("SELECT count(*) FROM latest_events WHERE row_id = 'dlg-1'").fetchone()[0]
    assert (emitted, latest) == (2, 1)


def test_an_older_event_written_later_does_not_win(store: LineageStore) -> None:
    store.write_events([event("dialogues", "lin-xiaoyu", "dlg-1", [], run_id="backfill", ts=T0 - timedelta(days=1))])

    dialogue = next(r for r in store.trace("dlg-1") if r["depth"] == 0)

    assert dialogue["run_id"] == "run-1"


# --- drops, checkpoints, costs -----------------------------------------------------


def test_drops_are_counted_by_asset_and_reason(store: LineageStore) -> None:
    assert store.drops() == [  # events without an action are drops
        {"asset": "cleaned_dialogues", "action": "drop", "reason": "bad_format", "dropped": 2},
        {"asset": "cleaned_dialogues", "action": "drop", "reason": "language_mismatch", "dropped": 1},
    ]
    assert store.drops("dialogues") == []
    assert store.drops("cleaned_dialogues")[0]["dropped"] == 2


def test_a_dropped_row_that_comes_back_is_no_longer_counted(store: LineageStore) -> None:
    store.write_events(
        [event("cleaned_dialogues", "bob", "turn-2", ["dlg-2"], run_id="run-2", ts=T0 + timedelta(hours=1))]
    )

    assert {(d["reason"], d["dropped"]) for d in store.drops()} == {("bad_format", 1), ("language_mismatch", 1)}


def _cleaning_events(run_id: str, hours: int, actions: list[tuple[str, str]]) -> list[LineageEvent]:
    ts = T0 + timedelta(hours=hours)
    return [
        event("cleaned_dialogues", "bob", "dlg-9", [], run_id, ts, kind="drop", reason=reason, attrs={"action": action})
        for reason, action in actions
    ]


def test_cuts_drops_and_repairs_of_one_row_are_counted_apart(store: LineageStore) -> None:
    """One cleaning run records several events for one dialogue (a repair at one turn, a cut
    with two codes at a later one): all of them count; a later run's events replace them."""
    first = [("pii", "repair"), ("goodbye", "cut"), ("echo", "cut"), ("wrong_language", "flag")]
    store.write_events(_cleaning_events("run-7", 2, first))
    counts = {(d["action"], d["reason"]): d["dropped"] for d in store.drops() if d["reason"] != "bad_format"}
    assert counts == {
        ("drop", "language_mismatch"): 1,
        ("repair", "pii"): 1,
        ("cut", "goodbye"): 1,
        ("cut", "echo"): 1,
        ("flag", "wrong_language"): 1,
    }
    store.write_events(_cleaning_events("run-8", 3, [("goodbye", "cut")]))
    actions = {(d["action"], d["reason"]) for d in store.drops() if d["asset"] == "cleaned_dialogues"}
    assert ("repair", "pii") not in actions and ("cut", "goodbye") in actions


@pytest.mark.parametrize("persona", ["lin-xiaoyu", "林小雨", "p-017"])
def test_checkpoints_for_a_persona_by_partition_name_or_id(store: LineageStore, persona: str) -> None:
    rows = store.checkpoints_for_persona(persona)

    assert [(r["asset"], r["row_id"]) for r in rows] == [("sft_checkpoint", "sft-v1"), ("dpo_checkpoint", "dpo-v1")]
    assert rows[0]["attrs"] == {"model_version": "sft-1", "path": "/m/sft-1"}
    assert rows[0]["ts"] < rows[1]["ts"]


def test_a_persona_whose_data_was_all_dropped_is_in_no_checkpoint(store: LineageStore) -> None:
    assert store.checkpoints_for_persona("Bob") == []
    assert [r["row_id"] for r in store.checkpoints_for_persona("lin-xiaoyu", ("sft_checkpoint",))] == ["sft-v1"]


def test_an_unknown_persona_raises_key_error_naming_it(store: LineageStore) -> None:
    with pytest.raises(KeyError, match="王小明"):
        store.checkpoints_for_persona("王小明")


def test_cost_summary_totals_calls_per_asset_role_model(store: LineageStore) -> None:
    summary = {(r["asset"], r["role"], r["model"]): r for r in store.cost_summary()}

    character = summary[("dialogues", "character", "character-7b")]
    assert (character["calls"], character["cache_hits"], character["prompt_tokens"]) == (4, 1, 400)
    assert character["completion_tokens"] == 80
    assert character["cost_usd"] == pytest.approx(0.03)
    assert character["latency_s"] == pytest.approx(2.0)
    topics = summary[("topic_keywords", "topic_writer", "topic-writer")]
    assert (topics["calls"], topics["errors"], topics["cost_usd"]) == (2, 1, pytest.approx(0.002))


# --- storage -----------------------------------------------------------------------


def test_an_empty_store_has_empty_views_with_the_right_columns(tmp_path: Path) -> None:
    lineage = LineageStore(tmp_path / "nothing-yet")

    with lineage.connect() as con:
        for view in ("events", "latest_events", "edges", "calls"):
            assert con.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)
        columns = {row[0] for row in con.execute("DESCRIBE edges").fetchall()}
    assert {"asset", "row_id", "parent_id"} <= columns
    assert lineage.drops() == [] and lineage.cost_summary() == []
    assert lineage.write_events([]) is None and lineage.write_calls([]) is None
    assert not (tmp_path / "nothing-yet").exists()


def test_each_write_is_one_parquet_segment(store: LineageStore) -> None:
    before = set((store.root / "events").glob("*.parquet"))
    path = store.write_events([event("a", None, "one", []), event("a", None, "two", [])])

    assert path is not None and path.parent == store.root / "events" and path.suffix == ".parquet"
    assert set((store.root / "events").glob("*.parquet")) - before == {path}
    assert not list(store.root.rglob("*.tmp"))


def test_edges_has_one_row_per_parent(store: LineageStore) -> None:
    with store.connect() as con:
        edges = con.execute("SELECT parent_id FROM edges WHERE row_id = 'dlg-1' ORDER BY parent_id").fetchall()
    assert edges == [("persona-lin",), ("topic-1",)]


def test_exported_duckdb_file_has_the_views_and_follows_new_segments(store: LineageStore) -> None:
    assert store.db_path.exists()  # written on first write
    store.write_events([event("seed_samples", None, "seed-late", [])])

    with duckdb.connect(str(store.db_path), read_only=True) as con:
        names = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        seen = con.execute("SELECT count(*) FROM latest_events WHERE row_id = 'seed-late'").fetchone()
    assert {"events", "calls", "latest_events", "edges"} <= names
    assert seen == (1,)

    # A reader holding the file open does not stop a re-export.
    with duckdb.connect(str(store.db_path), read_only=True):
        assert store.export_db() == store.db_path
    assert not list(store.root.glob("*.tmp"))


def test_exported_file_works_before_any_llm_call_was_recorded(tmp_path: Path) -> None:
    lineage = LineageStore(tmp_path)
    lineage.write_events([event("seed_samples", None, "s", [])])

    with duckdb.connect(str(lineage.db_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM calls").fetchone() == (0,)


def _write_many(root: str, writer: int, segments: int, rows: int, compact_at: int | None = None) -> None:
    lineage = LineageStore(root, compact_at=compact_at)
    for s in range(segments):
        lineage.write_events(
            LineageEvent(
                run_id=f"w{writer}",
                asset="dialogues",
                partition=f"p{writer}",
                row_id=f"w{writer}-s{s}-r{r}",
                parent_ids=[f"seed-{r}"],
            )
            for r in range(rows)
        )


def test_two_processes_writing_concurrently_lose_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_many, args=(str(tmp_path), w, 15, 40)) for w in range(2)]
    for worker in workers:
        worker.start()
    lineage = LineageStore(tmp_path)
    while any(w.is_alive() for w in workers):  # readers during writes never see half files
        lineage.drops()
        time.sleep(0.01)
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0

    with lineage.connect() as con:
        total, distinct = con.execute("SELECT count(*), count(DISTINCT row_id) FROM events").fetchone()
    assert (total, distinct) == (2 * 15 * 40, 2 * 15 * 40)
    assert len(list((tmp_path / "events").glob("*.parquet"))) == 2 * 15 + 1  # + the schema file


def test_compaction_merges_segments_without_changing_answers(store: LineageStore) -> None:
    store.write_events(
        [
            event(
                "dialogues",
                "lin-xiaoyu",
                "dlg-1",
                ["topic-1", "persona-lin"],
                run_id="run-2",
                ts=T0 + timedelta(hours=1),
                model="character-14b",
            )
        ]
    )
    before = (store.trace("dpo-v1"), store.drops(), store.cost_summary(), store.checkpoints_for_persona("林小雨"))
    with store.connect() as con:
        emitted = con.execute("SELECT count(*) FROM events").fetchone()

    merged = store.compact()

    assert merged == 10 + 2  # event segments: 9 assets + the re-emission; 2 call segments
    for kind in ("events", "calls"):
        assert len(list((store.root / kind).glob("*.parquet"))) == 2  # merged + schema file
    assert (
        store.trace("dpo-v1"),
        store.drops(),
        store.cost_summary(),
        store.checkpoints_for_persona("林小雨"),
    ) == before
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM events").fetchone() == emitted
    assert store.compact() == 0  # nothing left to merge


def test_an_interrupted_compaction_is_finished_by_the_next(tmp_path: Path) -> None:
    from rp_pipeline.lineage.compaction import MERGED_SUFFIX, merge_segments, segment_files
    from rp_pipeline.lineage.schema import arrow_schema

    lineage = LineageStore(tmp_path)
    for i in range(3):
        lineage.write_events([event("a", None, f"row-{i}", [])])
    sources = segment_files(tmp_path / "events")
    merge_segments(sources, tmp_path / "events" / (sources[-1].stem + MERGED_SUFFIX), arrow_schema("events"))
    # "crash" here: merged file published, sources not yet deleted

    lineage.compact()

    with lineage.connect() as con:
        assert con.execute("SELECT count(*), count(DISTINCT row_id) FROM events").fetchone() == (3, 3)


def test_writers_that_auto_compact_concurrently_lose_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_many, args=(str(tmp_path), w, 20, 30, 4)) for w in range(2)]
    for worker in workers:
        worker.start()
    lineage = LineageStore(tmp_path)
    while any(w.is_alive() for w in workers):
        lineage.drops()  # reads race with merges and deletes; they must not fail
        time.sleep(0.01)
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0

    with lineage.connect() as con:
        total, distinct = con.execute("SELECT count(*), count(DISTINCT row_id) FROM events").fetchone()
    assert (total, distinct) == (2 * 20 * 30, 2 * 20 * 30)
    assert len(list((tmp_path / "events").glob("*.parquet"))) < 2 * 20


def _tangled_history(lineage: LineageStore, seed: int) -> list[str]:
    """60 rows over 5 assets in 12 segments, with what makes supersession and walks hard:
    re-emissions by later (and by older, backfilled) runs with other parents, a run emitting
    a row twice, exact duplicate copies, drops, ids emitted by two assets, parents nobody
    emitted, and cycles. Returns every row id."""
    rng = random.Random(seed)
    ids = [f"r{i:02d}" for i in range(60)]
    assets = ["seed_samples", "topic_keywords", "dialogues", "cleaned_dialogues", "training_corpus"]
    written: list[LineageEvent] = []
    for segment in range(12):
        run, ts = f"run-{segment % 4}", T0 + timedelta(minutes=rng.choice([0, 1, 2, segment]))
        batch = []
        for _ in range(rng.randint(5, 15)):
            if written and rng.random() < 0.1:  # an exact copy of an earlier event
                batch.append(rng.choice(written))
                continue
            row = rng.choice(ids)
            parents = rng.sample([*ids, "never-emitted"], rng.randint(0, 3))
            if rng.random() < 0.2:
                batch.append(event(rng.choice(assets), None, row, [], run, ts, kind="drop", reason="bad_format"))
            else:
                batch.append(event(rng.choice(assets), "p", row, parents, run, ts, model=f"m{segment}"))
        written += batch
        lineage.write_events(batch)
    return ids


@pytest.mark.parametrize("seed", [1, 2])
def test_trace_by_lookup_answers_as_the_whole_store_walk(tmp_path: Path, seed: int, monkeypatch) -> None:
    """`trace` walks by row-id lookups; forced onto the one-query walk over the whole store
    (LOOKUP_LIMIT 0), it must give the same rows in the same order, before and after
    compaction sorts the segments by row id."""
    lineage = LineageStore(tmp_path, compact_at=None)
    ids = [i for i in _tangled_history(lineage, seed) if _emitted(lineage, i)]  # trace raises for the others

    def both() -> tuple[list, list]:
        by_lookup = [lineage.trace(i) for i in ids]
        with monkeypatch.context() as patched:
            patched.setattr(store_module, "LOOKUP_LIMIT", 0)
            whole = [lineage.trace(i) for i in ids]
        return by_lookup, whole

    by_lookup, whole = both()
    assert by_lookup == whole
    assert max(len(rows) for rows in whole) > 10 and any(r["kind"] == "missing" for rows in whole for r in rows)
    assert lineage.compact() == 12
    assert both() == (whole, whole)


def _emitted(lineage: LineageStore, row_id: str) -> bool:
    with lineage.connect() as con:
        found = con.execute("SELECT count(*) FROM events WHERE row_id = $r", {"r": row_id}).fetchone()
    return found is not None and found[0] > 0


def test_compaction_sorts_events_by_row_id_keeping_write_order_within_an_id(tmp_path: Path) -> None:
    lineage = LineageStore(tmp_path, compact_at=None)
    lineage.write_events([event("a", None, "b", [], "run-1"), event("a", None, "a", [], "run-1")])
    lineage.write_events([event("a", None, "b", [], "run-2"), event("a", None, "c", [], "run-2")])

    lineage.compact()

    (merged,) = segment_files(tmp_path / "events")
    rows = pq.read_table(merged).to_pylist()
    assert [(r["row_id"], r["run_id"]) for r in rows] == [
        ("a", "run-1"),
        ("b", "run-1"),
        ("b", "run-2"),
        ("c", "run-2"),
    ]
    assert pq.read_schema(merged).remove_metadata().equals(arrow_schema("events"))


def test_sorted_row_groups_are_small_and_a_row_with_a_huge_parent_list_sits_alone(tmp_path: Path, monkeypatch) -> None:
    """A lookup reads whole row groups: a corpus version listing a million corpus rows must
    not share one with the ids around it."""
    monkeypatch.setattr(compaction, "SORTED_ROW_GROUP_ROWS", 2)
    monkeypatch.setattr(compaction, "HEAVY_ROW_VALUES", 3)
    lineage = LineageStore(tmp_path, compact_at=None)
    lineage.write_events([event("a", None, r, []) for r in ("e", "a", "b")])
    lineage.write_events([event("a", None, "c", ["p1", "p2", "p3", "p4"]), event("a", None, "d", ["p1"])])

    lineage.compact()

    (merged,) = segment_files(tmp_path / "events")
    groups = pq.ParquetFile(merged)
    ids = [groups.read_row_group(i, columns=["row_id"]).column(0).to_pylist() for i in range(groups.num_row_groups)]
    assert ids == [["a", "b"], ["c"], ["d", "e"]]
    assert [r["row_id"] for r in lineage.trace("c")] == ["c", "p1", "p2", "p3", "p4"]


# --- scale -------------------------------------------------------------------------


def test_trace_at_scale_with_a_10k_fan_in(tmp_path: Path) -> None:
    """50k events: 10k chains seed -> topic -> dialogue -> turn -> corpus row, one corpus
    version over all 10k corpus rows, one checkpoint over the version."""
    lineage = LineageStore(tmp_path)
    n = 10_000
    stages = [
        ("seed_samples", "s"),
        ("topic_keywords", "t"),
        ("dialogues", "d"),
        ("cleaned_dialogues", "c"),
        ("training_corpus", "r"),
    ]
    for level, (asset, prefix) in enumerate(stages):
        parent = stages[level - 1][1] if level else None
        for start in range(0, n, 2_500):  # several segments per asset
            lineage.write_events(
                event(asset, None, f"{prefix}{i}", [f"{parent}{i}"] if parent else [])
                for i in range(start, start + 2_500)
            )
    lineage.write_events(
        [event("corpus_version", None, "v1", [f"r{i}" for i in range(n)]), event("sft_checkpoint", None, "ck", ["v1"])]
    )

    started = time.perf_counter()
    rows = lineage.trace("ck")
    whole = time.perf_counter() - started
    started = time.perf_counter()
    row_trace = lineage.trace("r42")
    one_row = time.perf_counter() - started

    assert len(rows) == 2 + 5 * n
    assert max(r["depth"] for r in rows) == 6
    assert {r["asset"] for r in rows if r["depth"] == 6} == {"seed_samples"}
    assert [r["row_id"] for r in row_trace] == ["r42", "c42", "d42", "t42", "s42"]
    print(
        f"\n50k events, 10k fan-in: trace(checkpoint) -> {len(rows)} rows in {whole:.3f}s; "
        f"trace(corpus row) -> {len(row_trace)} rows in {one_row:.3f}s"
    )
