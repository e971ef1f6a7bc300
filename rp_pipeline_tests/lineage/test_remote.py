"""A lineage store on object storage (an fsspec URL root) answers exactly as a local one,
writes each segment as one whole object, and compacts without a rename."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from upath import UPath

from rp_pipeline.lineage import cli
from rp_pipeline.lineage.remote import RemoteLineageStore
from rp_pipeline.lineage.schema import SCHEMA_FILE
from rp_pipeline.lineage.store import LineageStore
from rp_pipeline_tests.lineage.conftest import T0, call, event, populated


@pytest.fixture
def remote(object_store: UPath) -> LineageStore:
    """The local `store` fixture's history and calls, on object storage."""
    return populated(LineageStore(object_store / "lineage"))


def _objects(store: LineageStore, kind: str) -> list[str]:
    return sorted(p.rsplit("/", 1)[-1] for p in UPath(store.root / kind).fs.find(UPath(store.root / kind).path))


def _answers(store: LineageStore) -> dict:
    """Every query's answer, without the columns that name a run's own segment files."""
    trace = [{k: v for k, v in r.items() if k != "segment"} for r in store.trace("dpo-v1")]
    return {
        "trace": trace,
        "descendants": store.descendants("persona-lin"),
        "checkpoints": store.checkpoints_for_persona("林小雨"),
        "drops": store.drops(),
        "costs": store.cost_summary(),
    }


def test_a_url_root_gives_the_object_storage_store(object_store):
    assert isinstance(LineageStore(object_store / "lineage"), RemoteLineageStore)
    assert isinstance(LineageStore(str(object_store / "lineage")), RemoteLineageStore)
    assert type(LineageStore("/tmp/somewhere")) is LineageStore


def test_it_answers_every_query_as_a_local_store_does(remote, store):
    assert _answers(remote) == _answers(store)
    trace = remote.trace("corpus-row-1")
    assert [r["row_id"] for r in trace if r["depth"] <= 3] == [
        "corpus-row-1",
        "turn-1",
        "dlg-1",
        "persona-lin",
        "topic-1",
    ]
    costs = {(r["asset"], r["role"]): r for r in remote.cost_summary()}
    assert costs["dialogues", "character"]["calls"] == 4 and costs["dialogues", "character"]["cost_usd"] == 0.03


def test_each_write_is_one_whole_object_and_nothing_else(remote):
    events = _objects(remote, "events")
    assert SCHEMA_FILE in events and len(events) == 1 + 9  # the schema file and one segment per asset written
    assert all(name.endswith(".parquet") for name in events)  # no temp names, no directories, no lock objects
    assert len(_objects(remote, "calls")) == 1 + 2
    assert not remote.root.fs.exists(f"{remote.root.path}/lineage.duckdb")


def test_writes_never_compact_on_object_storage(object_store):
    lineage = LineageStore(object_store / "lineage", compact_at=2)
    for i in range(3):
        lineage.write_events([event("seed_samples", None, f"seed-{i}", [])])
    assert len(_objects(lineage, "events")) == 1 + 3


def test_compaction_merges_into_one_object_and_keeps_the_answers(remote, store):
    before = _answers(remote)

    assert remote.compact() == 9 + 2
    assert _objects(remote, "events") == sorted([SCHEMA_FILE, _objects(remote, "events")[0]])
    assert len(_objects(remote, "calls")) == 2
    assert _answers(remote) == before == _answers(store)
    assert remote.compact() == 0  # one segment per kind: nothing left to merge

    # the same merged layout as on a local disk: events sorted by row id (for lookups), ties in write order
    store.compact()
    [merged] = [n for n in _objects(remote, "events") if n != SCHEMA_FILE]
    with remote.root.fs.open(f"{(remote.root / 'events').path}/{merged}", "rb") as handle:
        remote_rows = pq.read_table(handle).select(["row_id", "run_id", "ts"]).to_pylist()
    [local_merged] = list((store.root / "events").glob("*_c.parquet"))
    assert remote_rows == pq.read_table(local_merged).select(["row_id", "run_id", "ts"]).to_pylist()
    assert [r["row_id"] for r in remote_rows] == sorted(r["row_id"] for r in remote_rows)


def test_a_compaction_killed_before_deleting_its_sources_is_finished_by_the_next(remote):
    fs = remote.root.fs
    costs = remote.cost_summary()

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt("killed after the upload")

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(type(fs), "rm", killed)
        remote.compact()
    assert len(_objects(remote, "events")) == 1 + 9 + 1  # the merged object beside all its sources

    remote.write_calls([call("dialogues", "character", "character-7b", 0.5)])
    # events: the leftovers go first, leaving one object; calls (never reached before): 2 + the new one
    assert remote.compact() == 3
    assert SCHEMA_FILE in _objects(remote, "events") and len(_objects(remote, "events")) == 2
    after = {(r["asset"], r["role"]): r["calls"] for r in remote.cost_summary()}
    assert after == {**{(r["asset"], r["role"]): r["calls"] for r in costs}, ("dialogues", "character"): 5}


def test_a_segment_merged_away_mid_query_is_retried(remote, monkeypatch):
    fs = remote.root.fs
    real_open = type(fs)._open
    vanished: list[str] = []

    def first_read_finds_it_gone(self, path, mode="rb", *args, **kwargs):
        if "r" in mode and path.endswith(".parquet") and not path.endswith(SCHEMA_FILE) and not vanished:
            vanished.append(path)
            raise FileNotFoundError(path)
        return real_open(self, path, mode, *args, **kwargs)

    monkeypatch.setattr(type(fs), "_open", first_read_finds_it_gone)
    assert [r["row_id"] for r in remote.trace("dlg-1")][:2] == ["dlg-1", "persona-lin"]
    assert vanished  # the first attempt did fail


def test_a_broken_query_is_not_retried_as_a_vanished_segment(remote, monkeypatch):
    import duckdb

    connections = []
    connect = remote.connect
    monkeypatch.setattr(remote, "connect", lambda *views: connections.append(1) or connect(*views))
    with pytest.raises(duckdb.Error, match="no_such_column"):
        remote._query("SELECT no_such_column FROM events")
    assert len(connections) == 1


def test_a_newer_emission_wins_on_object_storage_too(remote):
    remote.write_events(
        [event("dialogues", "lin-xiaoyu", "dlg-1", ["topic-1"], run_id="run-2", ts=T0.replace(year=2026))]
    )
    [row] = [r for r in remote.trace("dlg-1") if r["depth"] == 0]
    assert row["run_id"] == "run-2" and row["parent_ids"] == ["topic-1"]


def test_no_duckdb_file_is_exported_for_a_remote_root(remote):
    with pytest.raises(NotImplementedError, match="rp lineage"):
        remote.export_db()


def test_the_cli_takes_a_url_root(remote, capsys, monkeypatch):
    assert cli.main(["costs", "--root", str(remote.root)]) == 0
    out = capsys.readouterr().out
    assert "character-7b" in out and "topic-writer" in out
    monkeypatch.setenv("RP_DATA_DIR", str(remote.root.parent))
    monkeypatch.delenv("RP_LINEAGE_DIR", raising=False)
    assert cli.main(["trace", "turn-1"]) == 0
    assert "dlg-1" in capsys.readouterr().out


def test_segments_are_readable_parquet_with_the_store_schema(remote):
    fs = remote.root.fs
    name = next(n for n in _objects(remote, "calls") if n != SCHEMA_FILE)
    with fs.open(f"{(remote.root / 'calls').path}/{name}", "rb") as handle:
        table = pq.read_table(handle)
    assert table.num_rows == 3 and "cost_usd" in table.column_names
