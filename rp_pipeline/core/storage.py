"""Where outputs live: a local directory, or an fsspec URL on object storage (s3://bucket/rp,
gs://bucket/rp, memory://rp, …) through universal-pathlib.

A local path (also `file://…`) stays a `pathlib.Path`, so local writers keep their
temp-and-rename (core/atomic.py) and nothing changes for them. An object store has no rename
and no real directories, but one PUT replaces an object whole: a single file is written in
one request, and a directory of several files (a corpus export) is uploaded file by file and
then *published* by a marker object written last (`COMPLETE`, the manifest of its files and
sizes). Readers of a remote directory treat one without the marker as absent, so nobody
trains on half an upload.

Some things cannot live on object storage at all (SQLite, scripts that open local paths):
they go under a local work directory (`work_dir`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from upath import UPath

from rp_pipeline.core.atomic import atomic_path

Location = Path | UPath
LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
COMPLETE = "_COMPLETE"  # written last into a published remote directory: {"files": {relative path: bytes}}


def location(value: str | os.PathLike[str] | UPath) -> Location:
    """A local path as `pathlib.Path`, anything with a remote protocol as a `UPath`."""
    if isinstance(value, Path):
        return Path(value)  # also a local UPath (PosixUPath is a Path): a plain Path from here on
    if isinstance(value, UPath):
        path = value
    elif "://" not in (text := os.fspath(value)):
        return Path(text)
    else:
        path = UPath(text)
    return Path(path.path) if path.protocol in LOCAL_PROTOCOLS else path


def work_dir(data: Location, work: str | os.PathLike[str] | None) -> Path:
    """The local directory for what must stay on a local disk or a mounted volume: `work` when
    given, else the data directory itself when it is local. A remote data directory needs one."""
    if work:
        return Path(work)
    if isinstance(data, Path):
        return data
    raise ValueError(
        f"the data directory {data} is not local: set RP_WORK_DIR to a local directory (or a mounted volume) "
        "for the LLM response cache (SQLite), model files and the training scripts' inputs"
    )


def upload_dir(local_dir: Path, target: UPath) -> dict[str, int]:
    """Publish the finished `local_dir` as `target` on object storage; returns the manifest.

    An older `target` first loses its marker (from then on readers see it absent) and its
    objects; then every file is uploaded, and the marker goes last. A kill at any point
    leaves `target` absent to readers until the next upload completes it.
    """
    fs, root = target.fs, target.path.rstrip("/")
    marker = f"{root}/{COMPLETE}"
    fs.invalidate_cache(root)
    if fs.exists(root):
        if fs.exists(marker):  # first, on its own: a recursive delete runs in no set order
            fs.rm_file(marker)
        fs.rm(root, recursive=True)
    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    manifest = {p.relative_to(local_dir).as_posix(): p.stat().st_size for p in files}
    fs.makedirs(root, exist_ok=True)
    fs.put([str(p) for p in files], [f"{root}/{name}" for name in manifest])
    fs.pipe_file(marker, json.dumps({"files": manifest}, indent=1).encode())
    return manifest


def published_files(directory: Location) -> dict[str, int] | None:
    """The manifest of a published remote directory; None for a local one (renamed into place
    whole, so complete by construction). FileNotFoundError when a remote one has no marker."""
    if isinstance(directory, Path):
        return None
    directory.fs.invalidate_cache(directory.path)  # a cached listing (s3fs keeps them) may predate the marker
    try:
        text = (directory / COMPLETE).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{directory}: no {COMPLETE} marker, so treated as absent (its upload is unfinished or was interrupted)"
        ) from None
    return json.loads(text)["files"]


def local_copy(source: UPath, dest: Path, size: int | None = None) -> Path:
    """`source` downloaded to `dest` (whole or not at all), for a script that opens local paths;
    kept when `dest` already has the expected `size`."""
    if size is not None and dest.is_file() and dest.stat().st_size == size:
        return dest
    with atomic_path(dest) as tmp:
        source.fs.get_file(source.path, str(tmp))
    return dest
