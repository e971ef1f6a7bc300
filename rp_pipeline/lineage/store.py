"""Row-level lineage: append-only Parquet segments, queried through DuckDB views.

Why segments instead of one DuckDB database: Dagster runs steps in parallel processes,
and a DuckDB file admits a single writer. Each `write_*` call instead drops a new,
uniquely named Parquet file into place with an atomic rename, so writers never
coordinate and readers never see half a file. All querying happens in DuckDB over the
segment globs, so a trace over hundreds of thousands of events stays a single query.
Small segments are merged now and then (`compaction`), because per-file overhead, not
row count, is what makes a glob over thousands of files slow.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from rp_pipeline.core.atomic import atomic_path
from rp_pipeline.core.storage import Location, location
from rp_pipeline.lineage.compaction import compact_directory, segment_files
from rp_pipeline.lineage.models import LineageEvent, LLMCall
from rp_pipeline.lineage.schema import (
    KINDS,
    SCHEMA_FILE,
    SORT_BY,
    VIEWS,
    arrow_schema,
    superseded_sql,
    view_statements,
)

log = logging.getLogger(__name__)

#: Safety net on walk length in addition to the visited-set check; real chains are ~10.
MAX_DEPTH = 256
#: A trace looks ids up level by level while a level has at most this many (a corpus row's
#: ancestors: 1-3 per level); past it, e.g. tracing a checkpoint through its corpus
#: version's every row, it walks the whole store in one query instead.
LOOKUP_LIMIT = 32

CHECKPOINT_ASSETS = ("sft_checkpoint", "dpo_checkpoint", "quantized_model")

# A busy directory can be compacted again between retries; backing off 0.05 s .. 1 s rides
# out several merges in a row (~3 s in all) before a read gives up.
_READ_ATTEMPTS = 8
T = TypeVar("T")


def _uuid7() -> uuid.UUID:
    """Time-ordered UUID (RFC 9562 v7) so segment names sort by creation time; used only
    as a tie-breaker when two emissions of a row carry the same `ts`."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def _walk_sql(start_sql: str, direction: str) -> str:
    """One DuckDB query walking the current lineage graph from the row ids `start_sql`
    selects (a `row_id` column), up to ancestors or down to descendants.

    Shaped for speed on large stores: superseded emissions are computed once, the graph
    (row id -> parent ids) comes from a narrow scan, and the wide columns are read only
    for the rows the walk reached. The walk is keyed by row_id because parent_ids
    reference rows by id alone; `USING KEY` keeps one entry per id and the
    `recurring.walk` anti-join stops revisits, so diamonds and accidental cycles
    terminate and depth is the shortest distance. Ids referenced but never emitted come
    out with no detail (kind 'missing'): a broken chain shows where it breaks.
    """
    if direction == "up":
        step = "SELECT l.parent_id, w.depth + 1 FROM walk w JOIN links l ON l.row_id = w.row_id"
        reached = "l.parent_id"
    else:
        step = "SELECT l.row_id, w.depth + 1 FROM walk w JOIN links l ON l.parent_id = w.row_id"
        reached = "l.row_id"
    return f"""
        WITH RECURSIVE
        {_current_sql("events")},
        links AS MATERIALIZED (SELECT row_id, unnest(parent_ids) AS parent_id FROM current),
        walk(row_id, depth) USING KEY (row_id) AS (
            SELECT DISTINCT row_id, 0 FROM ({start_sql})
            UNION
            {step}
            WHERE w.depth < {MAX_DEPTH}
              AND NOT EXISTS (SELECT 1 FROM recurring.walk r WHERE r.row_id = {reached})),
        found AS MATERIALIZED (SELECT row_id, depth FROM walk),
        {_DETAIL_SQL}
    """


def _current_sql(source: str) -> str:
    """CTEs `stale` and `current`: the events of `source` no newer emission replaced."""
    return f"""stale AS MATERIALIZED (SELECT segment, seq FROM ({superseded_sql(source)})),
        current AS (SELECT e.* FROM {source} e ANTI JOIN stale s ON s.segment = e.segment AND s.seq = e.seq)"""


#: The end of a walk: every current event of each row id in `found` (row_id, depth), or one
#: row of kind 'missing' for an id nobody emitted, nearest first (segment and position last,
#: so several events of one row keep the order they were written in).
#: Python conversion of MAP and TIMESTAMPTZ values is the slowest part of returning a
#: 50k-row trace; JSON text and naive-UTC timestamps convert several times faster and
#: are turned back into dict / aware datetime in `_fetch_dicts`.
_DETAIL_SQL = """detail AS (SELECT c.* FROM current c SEMI JOIN found f ON f.row_id = c.row_id)
        SELECT f.depth, d.asset, d.partition, f.row_id, coalesce(d.parent_ids, []) AS parent_ids,
               coalesce(d.kind, 'missing') AS kind, d.reason, d.detail, d.model, d.code_version,
               d.run_id, coalesce(to_json(d.attrs), '{}') AS attrs, d.ts::TIMESTAMP AS ts
        FROM found f LEFT JOIN detail d ON d.row_id = f.row_id
        ORDER BY f.depth, d.asset NULLS LAST, f.row_id, d.segment, d.seq"""


def _trace_by_lookup(con: duckdb.DuckDBPyConnection, row_id: str) -> list[dict[str, Any]] | None:
    """`trace` by reading only the events of the ids it reaches; None when a level of the
    walk names more than LOOKUP_LIMIT ids (then one scan of the whole store is cheaper).

    Compaction sorts events by row id into small row groups, so looking a few ids up reads
    one row group per file; the whole-store walk of `_walk_sql` first works out every
    superseded emission in the store, seconds at millions of events. The answer is the
    same: whether an event is superseded depends only on the events of its own row id,
    all of which a lookup fetches. The lookups follow every parent, current or not (one
    query per level); the walk proper, breadth-first over current links only so each id
    gets its shortest distance, runs on what they fetched, a superset of what it reaches.
    """
    con.execute("CREATE TEMP TABLE hits AS SELECT * FROM events WHERE false")
    seen, level = {row_id}, [row_id]
    for _ in range(MAX_DEPTH + 1):
        if len(level) > LOOKUP_LIMIT:
            return None
        fetched = con.execute(
            "INSERT INTO hits SELECT * FROM events WHERE list_contains($ids, row_id) RETURNING parent_ids",
            {"ids": level},
        ).fetchall()
        level = list({p for (parents,) in fetched for p in parents} - seen)
        seen.update(level)
        if not level:
            break
    links: dict[str, set[str]] = {}
    for child, parents in con.execute(f"WITH {_current_sql('hits')} SELECT row_id, parent_ids FROM current").fetchall():
        links.setdefault(child, set()).update(parents)
    depth_of, level = {row_id: 0}, [row_id]
    for depth in range(1, MAX_DEPTH + 1):
        level = list(dict.fromkeys(p for child in level for p in links.get(child, ()) if p not in depth_of))
        if not level:
            break
        depth_of.update(dict.fromkeys(level, depth))
    con.execute("CREATE TEMP TABLE found (row_id VARCHAR, depth INTEGER)")
    con.execute(
        "INSERT INTO found SELECT unnest($ids), unnest($depths)",
        {"ids": list(depth_of), "depths": list(depth_of.values())},
    )
    return _fetch_dicts(con.execute(f"WITH {_current_sql('hits')}, {_DETAIL_SQL}"))


class LineageStore:
    """Lineage events and LLM-call ledger under `root` (events/, calls/, lineage.duckdb).

    Cheap to construct; holds no connection or lock, so every process and every Dagster
    step may have its own instance over the same root. A write that leaves `compact_at`
    or more segments in its directory also compacts it (see `compaction`); None turns
    that off. A URL root (s3://…, gs://…, memory://…) gives the object-storage store of
    `lineage/remote.py`: same segments and queries, different writes and compaction.
    """

    root: Path

    def __new__(cls, root: Location | str, compact_at: int | None = 256) -> LineageStore:
        if cls is LineageStore and not isinstance(location(root), Path):
            from rp_pipeline.lineage.remote import RemoteLineageStore

            return object.__new__(RemoteLineageStore)
        return super().__new__(cls)

    def __init__(self, root: Location | str, compact_at: int | None = 256) -> None:
        local = location(root)
        if not isinstance(local, Path):
            raise TypeError(f"{root} is not a local path: LineageStore({str(root)!r}) gives a RemoteLineageStore")
        self.root = local
        self.compact_at = compact_at

    # --- writing -------------------------------------------------------------------

    @property
    def db_path(self) -> Path:
        """DuckDB file with the same views, for people: `duckdb data/lineage/lineage.duckdb`."""
        return self.root / "lineage.duckdb"

    def write_events(self, events: Iterable[LineageEvent | dict[str, Any]]) -> Location | None:
        """Append one segment holding `events`; None (and no file) when there are none."""
        return self._write("events", [LineageEvent.model_validate(e) for e in events])

    def write_calls(self, calls: Iterable[LLMCall | dict[str, Any]]) -> Location | None:
        """Append one segment of LLM-call ledger entries; None when there are none."""
        return self._write("calls", [LLMCall.model_validate(c) for c in calls])

    def _write(self, kind: str, records: Sequence[BaseModel]) -> Location | None:
        if not records:
            return None
        directory = self.root / kind
        directory.mkdir(parents=True, exist_ok=True)
        self._ensure_schema_file(kind)
        schema = arrow_schema(kind)
        # Column by column from the validated fields: a model_dump() dict per record costs
        # more than the rest of the write at millions of events.
        table = pa.Table.from_pydict(
            {name: [getattr(r, name) for r in records] for name in schema.names}, schema=schema
        )
        final = directory / f"{_uuid7()}.parquet"
        # The temp name does not end in .parquet, so readers' globs never match it.
        self._atomic_write(table, final)
        self._after_write(directory)
        return final

    def _after_write(self, directory: Path) -> None:
        """Compact when the directory has grown to `compact_at` segments; export the DuckDB
        file the first time."""
        if self.compact_at and len(segment_files(directory)) >= self.compact_at:
            try:
                self.compact()
            except Exception:  # the segment is written; compaction can run another time
                log.warning("lineage compaction failed under %s", self.root, exc_info=True)
        if not self.db_path.exists():
            try:
                self.export_db()
            except Exception:  # the segment is written; the convenience file is not essential
                log.warning("could not export %s", self.db_path, exc_info=True)

    @staticmethod
    def _atomic_write(table: pa.Table, final: Path) -> None:
        with atomic_path(final) as tmp:
            pq.write_table(table, tmp, compression="zstd")

    def _ensure_schema_file(self, kind: str) -> None:
        """(Re)write the zero-row schema file if missing or from an older column set."""
        path = self.root / kind / SCHEMA_FILE
        schema = arrow_schema(kind)
        try:
            if pq.read_schema(path).equals(schema, check_metadata=False):
                return
        except (FileNotFoundError, OSError, pa.ArrowInvalid):
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        self._atomic_write(schema.empty_table(), path)

    def compact(self) -> int:
        """Merge small segments of events and calls; returns how many files were merged.

        Safe while other processes write or read (see `compaction`); a concurrent
        compaction makes this one a no-op.
        """
        lock = self.root / ".compact.lock"
        return sum(
            compact_directory(self.root / kind, arrow_schema(kind), lock, sort_by=SORT_BY[kind]) for kind in KINDS
        )

    def export_db(self) -> Path:
        """Write `lineage.duckdb`: views over the absolute segment globs, no data.

        The views read the globs at query time, so the file stays current without
        re-export; re-export only after moving the root. Built under a temp name and
        renamed into place, so a person holding the old file open never blocks (or
        sees half of) a new one; if the platform refuses the rename because the file
        is open, the old file is kept and a warning logged.
        """
        for kind in KINDS:
            self._ensure_schema_file(kind)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".lineage.{uuid.uuid4().hex}.duckdb.tmp"
        try:
            con = duckdb.connect(str(tmp))
            try:
                for statement in view_statements(self.root, dict.fromkeys(KINDS, True)):
                    con.execute(statement)
                con.execute("CHECKPOINT")
            finally:
                con.close()
            try:
                os.replace(tmp, self.db_path)
            except PermissionError:
                log.warning("%s is in use; kept the existing file", self.db_path)
        finally:
            tmp.unlink(missing_ok=True)
            Path(f"{tmp}.wal").unlink(missing_ok=True)
        return self.db_path

    # --- reading -------------------------------------------------------------------

    def connect(self, views: Collection[str] = VIEWS) -> duckdb.DuckDBPyConnection:
        """In-memory DuckDB with views `events`, `calls`, `latest_events`, `edges` (and
        `superseded`: the emissions a newer one of the same asset and row replaced), or
        only `views` of them (each binds the segment globs, a visible cost per query).

        In-memory, so no reader ever holds a file lock a writer could trip on. Kinds with
        no segment yet get empty views with the right columns.
        """
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        # Binding the views and each scan would parse every segment's footer again (the
        # sorted files of a 10M-event store hold about 1 MB of them); segments never change.
        con.execute("SET parquet_metadata_cache = true")
        try:
            self._attach(con)
            present = {kind: self._has_segments(kind) for kind in KINDS}
            for statement in view_statements(self.root, present, views):
                con.execute(statement)
        except BaseException:
            con.close()
            raise
        return con

    def _attach(self, con: duckdb.DuckDBPyConnection) -> None:
        """Give a new connection what it needs to read the segments (nothing, on a local disk)."""

    def _has_segments(self, kind: str) -> bool:
        return any((self.root / kind).glob("*.parquet"))

    @staticmethod
    def _vanished(exc: duckdb.Error) -> bool:
        """Whether a failed query read a segment that a compaction had merged away."""
        return isinstance(exc, duckdb.IOException)

    def _read(self, body: Callable[[duckdb.DuckDBPyConnection], T], views: Collection[str] = VIEWS) -> T:
        """Run `body` on a fresh connection (with `views`), retrying when a segment listed
        at bind time was merged away by a concurrent compaction before the scan opened it."""
        for attempt in range(_READ_ATTEMPTS):
            try:
                # connect() binds the views, which already lists the segment files
                with contextlib.closing(self.connect(views)) as con:
                    return body(con)
            except duckdb.Error as exc:
                if attempt == _READ_ATTEMPTS - 1 or not self._vanished(exc):
                    raise
                time.sleep(min(0.05 * 2**attempt, 1.0))
        raise AssertionError("unreachable")

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._read(lambda con: _fetch_dicts(con.execute(sql, params or {})))

    def trace(self, row_id: str) -> list[dict[str, Any]]:
        """The row (depth 0) and every ancestor up to the seed samples, nearest first,
        as of the newest events.

        Each dict: depth, asset, partition, row_id, parent_ids, kind ('row', 'drop', or
        'missing' for a parent id nobody emitted), reason, detail, model, code_version,
        run_id, attrs, ts. A row id emitted by several assets appears once per asset.
        Raises KeyError when no event has this row_id.
        """

        def body(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
            found = _trace_by_lookup(con, row_id)
            if found is None:
                found = _fetch_dicts(con.execute(_walk_sql("SELECT $row_id AS row_id", "up"), {"row_id": row_id}))
            return found

        rows = self._read(body, views=("events",))  # both walks read the segments alone
        if all(r["kind"] == "missing" for r in rows if r["depth"] == 0):
            raise KeyError(f"no lineage events for row_id {row_id!r} under {self.root}")
        return rows

    def descendants(self, row_id: str) -> list[dict[str, Any]]:
        """Every row derived from `row_id` (depth >= 1), nearest first: what must be
        rebuilt or dropped if this row goes. Same columns as `trace`. KeyError when the
        id was neither emitted nor referenced as a parent."""
        rows = self._query(_walk_sql("SELECT $row_id AS row_id", "down"), {"row_id": row_id})
        if len(rows) == 1 and rows[0]["kind"] == "missing":
            raise KeyError(f"no lineage events for row_id {row_id!r} under {self.root}")
        return [r for r in rows if r["depth"] > 0]

    def checkpoints_for_persona(
        self, persona: str, checkpoint_assets: Sequence[str] = CHECKPOINT_ASSETS
    ) -> list[dict[str, Any]]:
        """Checkpoint rows built (transitively) from a persona's card rows.

        The persona is matched by `persona_cards` partition key, or by the card's
        attrs `name` / `persona_id`, so both the partition slug and a display name such
        as 林小雨 work. Returns asset, row_id, attrs, ts, oldest first (empty when the
        persona exists but no checkpoint used it yet). KeyError if no card matches.
        """

        def body(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
            cards = con.execute(
                """
                SELECT list(row_id) FROM latest_events
                WHERE asset = 'persona_cards'
                  AND (partition = $p OR attrs['name'] = $p OR attrs['persona_id'] = $p)""",
                {"p": persona},
            ).fetchone()
            card_ids = cards[0] if cards and cards[0] else []
            if not card_ids:
                raise KeyError(f"no persona_cards rows for persona {persona!r} under {self.root}")
            walk = _walk_sql("SELECT unnest($cards) AS row_id", "down")
            return _fetch_dicts(
                con.execute(
                    f"""SELECT asset, row_id, attrs, ts FROM ({walk})
                        WHERE depth > 0 AND list_contains($assets, asset)
                        ORDER BY ts, asset, row_id""",
                    {"cards": card_ids, "assets": list(checkpoint_assets)},
                )
            )

        return self._read(body)

    def drops(self, asset: str | None = None) -> list[dict[str, Any]]:
        """Drop events counted per (asset, action, reason). `action` (the event's
        `attrs['action']`, "drop" when absent) tells what the stage did: drop (the row is
        gone), cut (the row ends before the turn), repair (the turn was rewritten and
        kept) or flag (the turn also broke a rule after a cut). A row dropped and later
        re-emitted as a row is not counted (latest run wins)."""
        return self._query(
            """
            SELECT asset, coalesce(attrs['action'], 'drop') AS action, reason, count(*) AS dropped
            FROM latest_events
            WHERE kind = 'drop' AND ($asset IS NULL OR asset = $asset)
            GROUP BY ALL
            ORDER BY asset, action, dropped DESC, reason""",
            {"asset": asset},
        )

    def cost_summary(self) -> list[dict[str, Any]]:
        """LLM spend per (asset, role, model) from the call ledger: calls, cache_hits,
        errors, prompt/completion tokens, cost_usd and summed latency_s."""
        return self._query(
            """
            SELECT asset, role, model,
                   count(*) AS calls,
                   count_if(cache_hit) AS cache_hits,
                   count_if(NOT ok) AS errors,
                   sum(prompt_tokens) AS prompt_tokens,
                   sum(completion_tokens) AS completion_tokens,
                   sum(cost_usd) AS cost_usd,
                   sum(latency_s) AS latency_s
            FROM calls
            GROUP BY asset, role, model
            ORDER BY cost_usd DESC, asset, role, model"""
        )


def _fetch_dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Rows as dicts; JSON `attrs` text back to dict and naive `ts` back to aware UTC.

    One pass, skipping json.loads for the common empty map: this loop is a visible
    share of a 50k-row trace.
    """
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    fix_attrs, fix_ts = "attrs" in names, "ts" in names
    if not (fix_attrs or fix_ts):
        return rows
    loads, utc = json.loads, UTC
    for row in rows:
        if fix_attrs and isinstance(attrs := row["attrs"], str):
            row["attrs"] = {} if attrs == "{}" else loads(attrs)
        if fix_ts and (ts := row["ts"]) is not None and ts.tzinfo is None:
            row["ts"] = ts.replace(tzinfo=utc)
    return rows
