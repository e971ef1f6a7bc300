"""Column layout of the two segment kinds and the DuckDB views defined over them.

One table of columns drives the Parquet schema that writers use, the typed empty views
a reader gets before anything was written, and the views baked into the exported
`lineage.duckdb`, so the three can never drift apart.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import pyarrow as pa

from rp_pipeline.core.storage import Location

_STR = (pa.string(), "VARCHAR")
_TS = (pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ")
_F64 = (pa.float64(), "DOUBLE")
_I64 = (pa.int64(), "BIGINT")
_BOOL = (pa.bool_(), "BOOLEAN")

EVENT_COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "run_id": _STR,
    "asset": _STR,
    "partition": _STR,
    "row_id": _STR,
    "parent_ids": (pa.list_(pa.string()), "VARCHAR[]"),
    "kind": _STR,
    "reason": _STR,
    "detail": _STR,
    "code_version": _STR,
    "model": _STR,
    "prompt_hash": _STR,
    "cost_usd": _F64,
    "attrs": (pa.map_(pa.string(), pa.string()), "MAP(VARCHAR, VARCHAR)"),
    "ts": _TS,
}

CALL_COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "run_id": _STR,
    "asset": _STR,
    "partition": _STR,
    "role": _STR,
    "model": _STR,
    "prompt_hash": _STR,
    "cache_hit": _BOOL,
    "prompt_tokens": _I64,
    "completion_tokens": _I64,
    "cost_usd": _F64,
    "latency_s": _F64,
    "ok": _BOOL,
    "error": _STR,
    "ts": _TS,
}

#: segment directory name -> columns
KINDS: dict[str, dict[str, tuple[pa.DataType, str]]] = {"events": EVENT_COLUMNS, "calls": CALL_COLUMNS}

#: segment directory name -> the column compaction sorts merged files by (None: write order).
#: Events are looked up by row id: a trace reads a few ids per step of its walk.
SORT_BY: dict[str, str | None] = {"events": "row_id", "calls": None}

#: Zero-row file kept in each segment directory so the Parquet glob always matches at
#: least one file with the full, current column set (a view in the exported database
#: would otherwise fail with "no files found" until the first write of that kind).
SCHEMA_FILE = "_schema.parquet"


def arrow_schema(kind: str) -> pa.Schema:
    return pa.schema([pa.field(name, arrow) for name, (arrow, _) in KINDS[kind].items()])


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _source_sql(kind: str, segment_dir: Location | None) -> str:
    """SELECT producing the kind's columns plus `segment` (file) and `seq` (row in file).

    With `segment_dir=None` it is a typed, empty relation: queries still bind and
    return nothing instead of erroring on a store nobody has written to yet.
    """
    columns = KINDS[kind]
    if segment_dir is None:
        typed = [f"CAST(NULL AS {duck}) AS {name}" for name, (_, duck) in columns.items()]
        typed += ["CAST(NULL AS VARCHAR) AS segment", "CAST(NULL AS BIGINT) AS seq"]
        return f"SELECT {', '.join(typed)} WHERE false"
    # On object storage the URL itself (DuckDB reads it through the registered fsspec file system).
    glob = _quote(
        str(segment_dir.resolve() / "*.parquet") if isinstance(segment_dir, Path) else f"{segment_dir}/*.parquet"
    )
    names = ", ".join(columns)
    return (
        f"SELECT {names}, filename AS segment, file_row_number AS seq "
        f"FROM read_parquet({glob}, filename = true, file_row_number = true)"
    )


#: The views `view_statements` defines, in an order where each comes after those it reads.
VIEWS = ("events", "calls", "superseded", "latest_events", "edges")


def view_statements(root: Location, present: dict[str, bool], names: Collection[str] = VIEWS) -> list[str]:
    """CREATE VIEW statements for `events`, `calls`, `superseded`, `latest_events`, `edges`
    (or only `names` of them: a view reads the views before it in VIEWS).

    `present[kind]` says whether the kind's directory has any Parquet file; absent kinds
    get an empty typed view. Paths are absolute so the exported file works from any cwd.
    Every segment is written with `arrow_schema`, so the glob is read without
    `union_by_name` (which would open every footer when binding); a future column
    change must rewrite old segments or switch that option on.
    """
    views = {
        "events": _source_sql("events", root / "events" if present.get("events") else None),
        "calls": _source_sql("calls", root / "calls" if present.get("calls") else None),
        "superseded": superseded_sql("events"),
        "latest_events": "SELECT e.* FROM events e ANTI JOIN superseded s ON s.segment = e.segment AND s.seq = e.seq",
        # One row per (child, parent) link of the current lineage graph.
        "edges": "SELECT asset, partition, row_id, unnest(parent_ids) AS parent_id FROM latest_events",
    }
    return [f"CREATE OR REPLACE VIEW {name} AS {sql}" for name, sql in views.items() if name in names]


def superseded_sql(source: str) -> str:
    """The events of `source` (a relation with the `events` view's columns) that a newer
    emission replaced: asset, row_id, segment, seq.

    Re-materializing an asset re-emits its rows; the newest emission of each (asset,
    row_id) is the truth and older runs' events are superseded (ties broken by segment
    name, a time-ordered uuid7, then position in the segment). One run may record several
    events for a row (a cleaned dialogue cut at one turn and repaired at another, one drop
    event per reason code): all of the newest run's stay, except a second copy of the same
    event (a compaction caught mid-way). Only keys emitted more than once are ranked: most
    rows are emitted once, and a window over every wide row would dominate each query.
    Whether an event is superseded depends only on the events of its own (asset, row_id),
    so `source` may be any subset of the store holding every event of its row ids.
    """
    return (
        f"SELECT e.asset, e.row_id, e.segment, e.seq FROM {source} e "
        f"SEMI JOIN (SELECT asset, row_id FROM {source} GROUP BY asset, row_id HAVING count(*) > 1) d "
        "ON d.asset = e.asset AND d.row_id = e.row_id "
        "QUALIFY e.run_id IS DISTINCT FROM first_value(e.run_id) OVER (PARTITION BY e.asset, e.row_id "
        "ORDER BY e.ts DESC, e.segment DESC, e.seq DESC) "
        "OR row_number() OVER (PARTITION BY e.asset, e.row_id, e.ts, e.kind, e.reason, e.detail "
        "ORDER BY e.segment DESC, e.seq DESC) > 1"
    )
