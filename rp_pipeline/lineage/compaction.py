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
  the tie-breaker for equal timestamps, still follows write order.

A query whose file list included a source that compaction then deleted fails with an
IO error; `LineageStore` queries retry once the directory has settled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

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


def compact_directory(directory: Path, schema: pa.Schema, lock_path: Path, max_bytes: int = MAX_SEGMENT_BYTES) -> int:
    """Merge the small segments of `directory`; returns how many files were merged
    (0 when fewer than two qualify or another process is compacting)."""
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
        _merge(sources, target, schema)
        for path in sources:
            path.unlink(missing_ok=True)
        return len(sources)


def _merge(sources: list[Path], target: Path, schema: pa.Schema) -> None:
    """Stream `sources` (in name order, rows in order) into `target` via temp + rename."""
    with atomic_path(target) as tmp:
        write_merged([p.name for p in sources], (pq.ParquetFile(p).read() for p in sources), tmp, schema)


def write_merged(names: list[str], tables: Iterable[pa.Table], out: Path, schema: pa.Schema) -> None:
    """Write the sources' `tables` (read one at a time), rows in order, as one file whose
    metadata lists the sources' `names`."""
    tagged = schema.with_metadata({SOURCES_KEY: json.dumps(names).encode()})
    with pq.ParquetWriter(out, tagged, compression="zstd") as writer:
        pending: list[pa.Table] = []
        rows = 0
        for read in tables:
            table = read.select(schema.names).cast(schema)
            pending.append(table)
            rows += table.num_rows
            if rows >= _ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(pending), row_group_size=_ROW_GROUP_ROWS)
                pending, rows = [], 0
        if pending:
            writer.write_table(pa.concat_tables(pending), row_group_size=_ROW_GROUP_ROWS)
