"""Atomic writes under a real SIGKILL: a child process kills itself in the middle of a write,
and what is left is the old complete version or nothing, never part of the new one; the
next write clears the dead writer's leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rp_pipeline.core.atomic import atomic_dir, atomic_path, sweep_leftovers, temp_sibling, write_text_atomic
from rp_pipeline.settings import REPO_ROOT

OLD, NEW = "old complete version\n" * 100, "new version\n" * 100


def _die_while(code: str, target: Path) -> None:
    """Run `code` in a child that has `target`, `NEW` and `die()` (SIGKILL itself) at hand."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from rp_pipeline.core.atomic import atomic_dir, atomic_path, write_text_atomic
        target, NEW = Path({str(target)!r}), {NEW!r}
        def die():
            os.kill(os.getpid(), signal.SIGKILL)
        """
    ) + textwrap.dedent(code)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def _leftovers(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.*.tmp"))


@pytest.mark.parametrize("had_old", [True, False])
def test_a_file_killed_mid_write_is_the_old_version_or_absent(tmp_path, had_old):
    target = tmp_path / "out" / "rows.jsonl"
    if had_old:
        write_text_atomic(target, OLD)
    _die_while(
        """
        with atomic_path(target) as tmp:
            with open(tmp, "w") as fh:
                fh.write(NEW[: len(NEW) // 2])
                fh.flush()
                die()
        """,
        target,
    )
    assert (target.read_text() == OLD) if had_old else not target.exists()
    assert len(_leftovers(target)) == 1  # the half-written temp, under a name no reader opens

    write_text_atomic(target, NEW)
    assert target.read_text() == NEW
    assert _leftovers(target) == []  # the dead writer's temp went with the next write


@pytest.mark.parametrize("had_old", [True, False])
def test_a_directory_killed_mid_export_is_the_old_export_or_absent(tmp_path, had_old):
    target = tmp_path / "corpus" / "v1"
    if had_old:
        with atomic_dir(target) as staging:
            (staging / "a.json").write_text(OLD)
            (staging / "b.json").write_text(OLD)
    _die_while(
        """
        with atomic_dir(target) as staging:
            (staging / "a.json").write_text(NEW)
            die()  # before b.json
        """,
        target,
    )
    if had_old:
        assert {p.name: p.read_text() for p in target.iterdir()} == {"a.json": OLD, "b.json": OLD}
    else:
        assert not target.exists()
    assert len(_leftovers(target)) == 1

    with atomic_dir(target) as staging:
        (staging / "a.json").write_text(NEW)
        (staging / "b.json").write_text(NEW)
    assert {p.name: p.read_text() for p in target.iterdir()} == {"a.json": NEW, "b.json": NEW}
    assert _leftovers(target) == []


def test_a_kill_between_moving_the_old_export_aside_and_the_new_one_in_leaves_none(tmp_path):
    """The one window of the swap: `target` is absent (never half of either version), and both
    the new export and the old copy are leftovers the next write sweeps."""
    target = tmp_path / "corpus" / "v1"
    with atomic_dir(target) as staging:
        (staging / "a.json").write_text(OLD)
    _die_while(
        """
        replace = os.replace
        def replace_once(src, dst):  # the old copy moves aside, then the process dies
            replace(src, dst)
            die()
        os.replace = replace_once
        with atomic_dir(target) as staging:
            (staging / "a.json").write_text(NEW)
        """,
        target,
    )
    assert not target.exists()
    assert len(_leftovers(target)) == 2
    with atomic_dir(target) as staging:
        (staging / "a.json").write_text(NEW)
    assert (target / "a.json").read_text() == NEW and _leftovers(target) == []


def test_a_failed_write_keeps_the_old_version_and_leaves_nothing(tmp_path):
    target = tmp_path / "export"
    with atomic_dir(target) as staging:
        (staging / "a.json").write_text(OLD)
    with pytest.raises(RuntimeError), atomic_dir(target) as staging:
        (staging / "a.json").write_text(NEW)
        raise RuntimeError("the exporter failed")
    file = tmp_path / "file.json"
    write_text_atomic(file, OLD)
    with pytest.raises(RuntimeError), atomic_path(file) as tmp:
        tmp.write_text(NEW)
        raise RuntimeError("the writer failed")
    assert (target / "a.json").read_text() == OLD and file.read_text() == OLD
    assert _leftovers(target) == [] and _leftovers(file) == []


def test_a_live_writers_temp_is_not_swept(tmp_path):
    target = tmp_path / "x.json"
    mine = temp_sibling(target)  # this process is alive: its temp may be mid-write in another thread
    mine.write_text("partial")
    assert sweep_leftovers(target) == [] and mine.exists()
