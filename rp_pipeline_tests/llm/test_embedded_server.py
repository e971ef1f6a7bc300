"""An embedded model server never outlives the process that started it (no llama.cpp needed:
the watchdog is what the server process blocks on)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

from rp_pipeline.settings import REPO_ROOT

# The parent starts a child as serve_embedded starts a server (own session) and then waits.
PARENT = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {child!r}], start_new_session=True)
time.sleep(120)
"""
CHILD = """
import os
from pathlib import Path
from rp_pipeline.llm.embedded import wait_while_parent_lives
Path({pid_file!r}).write_text(str(os.getpid()))
wait_while_parent_lives(poll_s=0.1)
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # exited, not yet reaped by init
    except psutil.NoSuchProcess:
        return True


def _wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_server_exits_soon_after_its_parent_is_sigkilled(tmp_path: Path):
    pid_file = tmp_path / "server.pid"
    child = CHILD.format(pid_file=str(pid_file))
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(child=child)], cwd=REPO_ROOT)
    try:
        assert _wait_for(lambda: pid_file.is_file() and pid_file.read_text(), 60), "the server never started"
        server = int(pid_file.read_text())
        time.sleep(0.3)
        assert not _gone(server), "the server must keep running while its parent lives"
        parent.kill()
        parent.wait()
        assert _wait_for(lambda: _gone(server), 10), f"server {server} outlived its SIGKILLed parent"
    finally:
        parent.kill()
        if pid_file.is_file() and not _gone(pid := int(pid_file.read_text())):
            psutil.Process(pid).kill()
