"""Writes a killed process cannot leave half done: an output appears whole or not at all.

Every writer builds its output under a temporary name in the same directory (same file
system, so the final `os.replace` is one atomic rename) and renames it into place only once
it is complete. A kill before the rename leaves the previous complete version (or nothing)
plus a hidden `.NAME.HOST-PID-XXXX.tmp` leftover that no reader opens, since readers only
open final names; the next write of the same target deletes leftovers whose writer is gone.
No fsync: the aim is surviving a killed process (a crash, an OOM kill, a cancelled run), which
the rename alone gives; surviving a power cut would also need the file and its directory synced.

Standard library only: the standalone training scripts use it too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temp_sibling(target: str | os.PathLike[str]) -> Path:
    """A fresh hidden name beside `target` that says which host and process owns it."""
    target = Path(target)
    return target.with_name(f".{target.name}.{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")


def sweep_leftovers(target: str | os.PathLike[str]) -> list[Path]:
    """Delete the temp siblings of `target` left by writers on this host that no longer run
    (a kill, an OOM); a live writer's (this process's included) is kept. Returns what went."""
    target = Path(target)
    prefix = f".{target.name}.{socket.gethostname()}-"
    try:
        names = [e.name for e in os.scandir(target.parent) if e.name.startswith(prefix)]
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        owner = name.removeprefix(prefix).removesuffix(TEMP_SUFFIX).split("-")
        if not name.endswith(TEMP_SUFFIX) or len(owner) != 2 or not owner[0].isdigit() or _running(int(owner[0])):
            continue
        _remove(target.parent / name)
        removed.append(target.parent / name)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A temp file name beside `target`, for writers that want a path (`to_parquet`, a GGUF
    writer): renamed onto `target` when the block ends without error, deleted otherwise."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(target)
    tmp = temp_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """`path.write_text(text)` (UTF-8), but a reader sees the old file or the new one, never a prefix."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """An empty temp directory beside `target` to build a whole directory in (an export of
    several files): on success it replaces `target` (see `replace_dir`), on failure it is deleted.
    A reader never sees `target` with only some of its files."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(target)
    tmp = temp_sibling(target)
    tmp.mkdir()
    try:
        yield tmp
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(staging: str | os.PathLike[str], final: str | os.PathLike[str]) -> Path:
    """Move the finished directory `staging` onto `final`. A rename cannot replace a non-empty
    directory, so an older `final` is renamed aside first and deleted after: a kill in between
    leaves `final` absent (the old copy under a temp name, swept by the next write), never partial."""
    staging, final = Path(staging), Path(final)
    old = temp_sibling(final)
    with contextlib.suppress(FileNotFoundError):
        os.replace(final, old)
    os.replace(staging, final)
    _remove(old)
    return final
