"""Lineage segments on object storage: a `LineageStore` whose root is an fsspec URL
(s3://bucket/rp/lineage, gs://…, memory://…), with the same layout, views and queries as on a
local disk. What differs is what an object store offers:

- no rename, but one PUT replaces an object whole: a segment is serialized in memory and
  written in one request, so a reader (or a killed writer) never leaves half a segment;
- DuckDB reads the segment globs through the same fsspec file system
  (`register_filesystem`); a segment deleted between a query's listing and its read comes
  back as a Python FileNotFoundError inside a `duckdb.Error`, and is retried like a local one;
- no lock to exclude two compactors, and two compacting at once could bake duplicate rows
  into a merged segment: so writes never compact here. Run `rp lineage compact` (or
  `compact()`) from ONE place, e.g. a schedule. It uploads the merged segment first and then
  deletes its sources; sources left by a crash in between are deleted by the next compaction
  (their names are in the merged segment's metadata), and the moment of overlap can show a
  row twice, as on a local disk;
- no `lineage.duckdb`: a DuckDB file cannot carry the fsspec file system its views would
  need; query with `rp lineage` or `connect()`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from upath import UPath

from rp_pipeline.core.storage import Location, location
from rp_pipeline.lineage.compaction import MAX_SEGMENT_BYTES, MERGED_SUFFIX, SOURCES_KEY, merge_segments
from rp_pipeline.lineage.schema import KINDS, SCHEMA_FILE, SORT_BY, arrow_schema
from rp_pipeline.lineage.store import LineageStore


class RemoteLineageStore(LineageStore):
    """What `LineageStore(url)` gives for a non-local root; `compact_at` is ignored (see above)."""

    root: UPath  # pyright: ignore[reportIncompatibleVariableOverride]  (the local store's code never sees it)

    def __init__(self, root: Location | str, compact_at: int | None = None) -> None:
        remote = location(root)
        if isinstance(remote, Path):
            raise TypeError(f"{root} is a local path: use LineageStore")
        self.root = remote
        self.compact_at = None

    # --- writing -------------------------------------------------------------------

    @staticmethod
    def _atomic_write(table: pa.Table, final: Location) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        target = UPath(final)
        target.fs.pipe_file(target.path, sink.getvalue().to_pybytes())

    def _after_write(self, directory: Location) -> None:
        """Nothing: compaction is one process's job here, and there is no DuckDB file."""

    def _ensure_schema_file(self, kind: str) -> None:
        path = self.root / kind / SCHEMA_FILE
        schema = arrow_schema(kind)
        try:
            with path.open("rb") as handle:
                if pq.read_schema(handle).equals(schema, check_metadata=False):
                    return
        except (FileNotFoundError, OSError, pa.ArrowInvalid):
            pass
        self._atomic_write(schema.empty_table(), path)

    def compact(self) -> int:
        """Merge small segments of events and calls; run it from one process only."""
        return sum(compact_remote(self.root / kind, arrow_schema(kind), sort_by=SORT_BY[kind]) for kind in KINDS)

    def export_db(self) -> Path:
        raise NotImplementedError(
            f"no lineage.duckdb for {self.root}: its views would need this process's fsspec file system; "
            "query with `rp lineage` or LineageStore.connect()"
        )

    # --- reading -------------------------------------------------------------------

    def _attach(self, con: duckdb.DuckDBPyConnection) -> None:
        # A file system instance is shared by the process and may cache listings (s3fs does,
        # with no expiry): each query must see the segments other processes wrote since.
        self.root.fs.invalidate_cache(self.root.path)
        con.register_filesystem(self.root.fs)

    def _has_segments(self, kind: str) -> bool:
        return bool(self.root.fs.glob(f"{(self.root / kind).path}/*.parquet"))

    @staticmethod
    def _vanished(exc: duckdb.Error) -> bool:
        return isinstance(exc, duckdb.IOException) or "FileNotFoundError" in str(exc)


def _segments(fs: AbstractFileSystem, directory: str) -> dict[str, int]:
    """{name: bytes} of the data segments under `directory` (not the schema file), oldest name first."""
    fs.invalidate_cache(directory)
    try:
        listing = fs.ls(directory, detail=True)
    except FileNotFoundError:
        return {}
    found = {entry["name"].rstrip("/").rsplit("/", 1)[-1]: int(entry.get("size") or 0) for entry in listing}
    return {name: found[name] for name in sorted(found) if name.endswith(".parquet") and name != SCHEMA_FILE}


def compact_remote(
    directory: UPath, schema: pa.Schema, max_bytes: int = MAX_SEGMENT_BYTES, sort_by: str | None = None
) -> int:
    """Merge the small segments of `directory` on object storage; returns how many were merged.

    The sources are downloaded to a local temp directory ($TMPDIR holds them and the merged
    file) and merged exactly as on a local disk (`merge_segments`: the same order, row groups and
    sort); the merged segment is uploaded whole (one object), then the sources are deleted. A
    merged segment never replaces an object that is not one of them.
    """
    fs, root = directory.fs, directory.path.rstrip("/")
    _finish_interrupted(fs, root)
    listing = _segments(fs, root)
    sources = [name for name, size in listing.items() if size < max_bytes]
    if len(sources) < 2:
        return 0
    target = sources[-1].removesuffix(".parquet") + MERGED_SUFFIX
    while target in listing:
        target = target.removesuffix(".parquet") + MERGED_SUFFIX
    with tempfile.TemporaryDirectory(prefix="rp-lineage-") as tmp:
        local = Path(tmp) / "sources"  # one directory, so the merge orders files by name as on a disk
        local.mkdir()
        fs.get([f"{root}/{name}" for name in sources], [str(local / name) for name in sources])
        merged = Path(tmp) / target
        merge_segments([local / name for name in sources], merged, schema, sort_by)
        fs.put_file(str(merged), f"{root}/{target}")
    fs.rm([f"{root}/{name}" for name in sources])
    return len(sources)


def _finish_interrupted(fs: AbstractFileSystem, root: str) -> None:
    """Delete sources that an earlier, interrupted compaction already merged and uploaded."""
    listing = _segments(fs, root)
    for merged in (name for name in listing if name.endswith(MERGED_SUFFIX)):
        try:
            with fs.open(f"{root}/{merged}", "rb") as handle:
                metadata = pq.read_schema(handle).metadata or {}
        except (OSError, pa.ArrowInvalid):
            continue
        if leftovers := [name for name in json.loads(metadata.get(SOURCES_KEY, b"[]")) if name in listing]:
            fs.rm([f"{root}/{name}" for name in leftovers])
