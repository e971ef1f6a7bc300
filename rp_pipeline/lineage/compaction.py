"""Merging small segments into one, without stopping writers or readers.

Every Parquet file costs a fixed open-and-footer read each time a query scans the glob
(about 0.3 ms of CPU per file and scan here; a trace scans a few times), so thousands of
one-step segments would make every lineage query slow long before the row count does.
Compaction rewrites the small segments of one directory into a single file:

- writers are never blocked: they only ever add new uniquely named files, and
  compaction only touches the files it listed when it started;
- compactors exclude each other with a non-blocking `flock` (the loser just skips);
- the merged file is published with an atomic rename *before* the sources are deleted,
  so a reader can see a row twice for a moment but never lose one. Twice is harmless
  for `latest_events`/traces (identical emissions supersede each other); a raw count
  over `events`/`calls` taken in that instant may double-count;
- the merged file lists its sources in its Parquet metadata, so sources left behind by
  a crash between rename and delete are removed by the next compaction;
- it is named after its newest source (`<newest>_c.parquet`), so segment-name order,
  the tie-breaker for equal timestamps, still follows write order;
- event rows are sorted by `row_id` (stably: rows of one id keep their write order, the
  tie-breaker within a file) in small row groups, so a lookup of a few ids reads one row
  group per file instead of the file: `LineageStore.trace` walks a 10M-event store that way.

A query whose file list included a source that compaction then deleted fails with an
IO error; `LineageStore` queries retry once the directory has settled.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from rp_pipeline.core.atomic import atomic_path
from rp_pipeline.lineage.schema import SCHEMA_FILE

try:  # POSIX; elsewhere compactors are not mutually excluded (run one at a time).
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

SOURCES_KEY = b"rp_lineage.sources"
MERGED_SUFFIX = "_c.parquet"
#: Segments at least this large are left alone, so repeated compaction does not keep
#: rewriting everything.
MAX_SEGMENT_BYTES = 64 * 1024 * 1024
_ROW_GROUP_ROWS = 128 * 1024
#: Row groups of a file sorted for lookups: a lookup decodes one; smaller ones would grow
#: the footer every query parses.
SORTED_ROW_GROUP_ROWS = 16 * 1024
#: A row with more list values than this (a corpus version lists every corpus row) gets a
#: row group of its own: a lookup of any other id in its group would decode the whole list.
HEAVY_ROW_VALUES = 4096
_HEAVY = "_rp_heavy_row"  # the merge query's mark for such rows
#: The sort runs in DuckDB, which spills past this instead of holding a 64 MB segment's
#: rows (about ten times that in memory) inside whichever pipeline step compacts.
_SORT_MEMORY = "1GB"


def segment_files(directory: Path) -> list[Path]:
    """Data segments (not the schema file, not temp files), oldest name first."""
    try:
        names = sorted(e.name for e in os.scandir(directory) if e.name.endswith(".parquet"))
    except FileNotFoundError:
        return []
    return [directory / name for name in names if name != SCHEMA_FILE]


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[bool]:
    """Yield True when this process holds the compaction lock, False if another does."""
    if fcntl is None:
        yield True
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _finish_interrupted(directory: Path) -> None:
    """Delete sources that an earlier, interrupted compaction already merged."""
    for merged in directory.glob(f"*{MERGED_SUFFIX}"):
        try:
            metadata = pq.read_schema(merged).metadata or {}
        except (OSError, pa.ArrowInvalid):
            continue
        for name in json.loads(metadata.get(SOURCES_KEY, b"[]")):
            (directory / name).unlink(missing_ok=True)


def compact_directory(
    directory: Path,
    schema: pa.Schema,
    lock_path: Path,
    max_bytes: int = MAX_SEGMENT_BYTES,
    sort_by: str | None = None,
) -> int:
    """Merge the small segments of `directory`, rows sorted by the column `sort_by` if
    given; returns how many files were merged (0 when fewer than two qualify or another
    process is compacting)."""
    with _exclusive(lock_path) as mine:
        if not mine:
            return 0
        _finish_interrupted(directory)
        sources = []
        for path in segment_files(directory):
            try:
                if path.stat().st_size < max_bytes:
                    sources.append(path)
            except FileNotFoundError:
                continue
        if len(sources) < 2:
            return 0
        target = directory / (sources[-1].name.removesuffix(".parquet") + MERGED_SUFFIX)
        while target.exists():  # never replace a file that is not one of the sources
            target = directory / (target.name.removesuffix(".parquet") + MERGED_SUFFIX)
        merge_segments(sources, target, schema, sort_by)
        for path in sources:
            path.unlink(missing_ok=True)
        return len(sources)


def merge_segments(sources: list[Path], target: Path, schema: pa.Schema, sort_by: str | None = None) -> None:
    """Write the rows of `sources` into `target` via temp + rename: in source-name order,
    rows in order, or sorted by the column `sort_by` with ties in that same order."""
    tagged = schema.with_metadata({SOURCES_KEY: json.dumps([p.name for p in sources]).encode()})
    # All sources sit in one directory, so the path orders files as their names do.
    order = ", ".join([*([sort_by] if sort_by else []), "filename", "file_row_number"])
    columns = ", ".join(f'"{name}"' for name in schema.names)
    values = " + ".join(f'coalesce(len("{f.name}"), 0)' for f in schema if pa.types.is_list(f.type)) or "0"
    group_rows = SORTED_ROW_GROUP_ROWS if sort_by else _ROW_GROUP_ROWS
    with (
        atomic_path(target) as tmp,
        tempfile.TemporaryDirectory(prefix="rp-lineage-sort-") as spill,
        duckdb.connect(":memory:") as con,
        pq.ParquetWriter(tmp, tagged, compression="zstd") as writer,
    ):
        con.execute(f"SET memory_limit = '{_SORT_MEMORY}'")
        con.execute("SET temp_directory = '" + spill.replace("'", "''") + "'")
        con.execute("SET TimeZone = 'UTC'")
        query = con.sql(
            f"SELECT {columns}, {values} > {HEAVY_ROW_VALUES} AS {_HEAVY} "
            f"FROM read_parquet($files, filename = true, file_row_number = true) ORDER BY {order}",
            params={"files": [str(p) for p in sources]},
        )
        if query is None:  # a SELECT always gives a relation
            raise AssertionError("no relation for the merge query")
        batches = query.to_arrow_reader(group_rows)
        _write_groups(writer, (pa.Table.from_batches([b]) for b in batches), schema, group_rows)


def _write_groups(writer: pq.ParquetWriter, tables: Iterable[pa.Table], schema: pa.Schema, group_rows: int) -> None:
    """Write `tables` (`schema`'s columns and a boolean `_HEAVY`), in order, as row groups of
    `group_rows` rows, except that each row marked heavy is a row group alone."""
    pending: list[pa.Table] = []
    rows = 0

    def flush(everything: bool) -> None:
        nonlocal pending, rows
        if not rows or (rows < group_rows and not everything):
            return
        table = pa.concat_tables(pending)
        cut = rows if everything else rows - rows % group_rows
        writer.write_table(table.slice(0, cut), row_group_size=group_rows)
        pending, rows = [table.slice(cut)], rows - cut

    for marked in tables:
        heavy = [i for i, flag in enumerate(marked.column(_HEAVY).to_pylist()) if flag]
        table = marked.drop_columns([_HEAVY]).cast(schema)
        start = 0
        for cut in [*heavy, table.num_rows]:
            pending.append(table.slice(start, cut - start))
            rows += cut - start
            flush(everything=cut < table.num_rows)
            if cut < table.num_rows:
                writer.write_table(table.slice(cut, 1))
            start = cut + 1
    flush(everything=True)
