"""An embedded model server never outlives the process that started it (no llama.cpp needed:
`serve_until_eof` is what the server process blocks on)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from rp_pipeline.settings import REPO_ROOT

# The parent starts a child as serve_embedded starts a server (own session, a pipe on its
# stdin), passes on the child's pid and then waits to be killed.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", {child!r}], stdin=subprocess.PIPE, start_new_session=True)
print(child.pid, flush=True)
time.sleep(120)
"""
CHILD = """
import sys
from rp_pipeline.llm.embedded import serve_until_eof
serve_until_eof(sys.stdin.buffer)
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


def test_a_server_exits_as_soon_as_its_parent_is_sigkilled():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(child=CHILD)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    server = int(parent.stdout.readline())
    try:
        assert not _wait_for(lambda: _gone(server), 1), "the server must keep running while its parent lives"
        parent.kill()
        parent.wait()
        assert _wait_for(lambda: _gone(server), 10), f"server {server} outlived its SIGKILLed parent"
    finally:
        parent.kill()
        parent.stdout.close()
        if not _gone(server):
            psutil.Process(server).kill()
