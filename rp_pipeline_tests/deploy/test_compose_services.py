"""The compose services' own command lines, outside containers: the code location started with
the command in docker/compose.yaml passes the compose health check, docker/workspace.yaml loads
it, and a run submitted to the compose instance waits in the queue, then runs as a process of
that code server (DefaultRunLauncher) and writes its materializations to Postgres."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dagster import DagsterRunStatus

from rp_pipeline.llm.embedded import free_port
from rp_pipeline.settings import REPO_ROOT
from rp_pipeline_tests.conftest import make_settings

DOCKER = REPO_ROOT / "docker"
PREPARE_ASSETS = {"seed_variables", "seed_samples", "topic_keywords", "synthesized_personas"}


def _with_option(command: list[str], option: str, value: str) -> list[str]:
    command = list(command)
    command[command.index(option) + 1] = value
    return command


@pytest.fixture
def code_server(compose_instance, tmp_path, fake_llm):
    """The code-location service's command on a free loopback port, with the compose instance
    and a test pipeline (the fake LLM) in its environment; yields (port, docker/workspace.yaml
    pointed at it)."""
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))["services"]
    service = services["code-location"]
    port = str(free_port())
    command = _with_option(_with_option(service["command"], "-p", port), "-h", "127.0.0.1")
    settings = make_settings(tmp_path, fake_llm)
    env = {
        **os.environ,
        "RP_DATA_DIR": str(settings.data_dir),
        "RP_ASSETS_DIR": str(settings.assets_dir),
        "RP_PROFILE": settings.profile,
        "RP_LLM_CONFIG": str(settings.llm_config),
    }
    bin_dir = Path(sys.executable).parent
    command[0] = str(bin_dir / command[0])
    log = (tmp_path / "code_server.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        health = _with_option(service["healthcheck"]["test"][1:], "-p", port)
        health[0] = str(bin_dir / health[0])
        deadline = time.monotonic() + 180
        while subprocess.run(health, capture_output=True, timeout=60).returncode != 0:
            assert server.poll() is None, (tmp_path / "code_server.log").read_text()
            assert time.monotonic() < deadline, "the code server never passed the compose health check"
            time.sleep(2)
        workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text(encoding="utf-8"))
        workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=int(port))
        path = tmp_path / "workspace.yaml"
        path.write_text(yaml.safe_dump(workspace), encoding="utf-8")
        yield port, path
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:  # the gRPC server outlived 30 s of SIGTERM here, every time: the test checks no shutdown
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()


def test_a_queued_run_runs_in_the_code_location_and_lands_in_postgres(compose_instance, code_server, postgres):
    from dagster._core.storage.tags import GRPC_INFO_TAG
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    port, workspace = code_server
    instance = compose_instance
    dagster = str(Path(sys.executable).parent / "dagster")
    launch = subprocess.run(
        [dagster, "job", "launch", "-w", str(workspace), "-j", "prepare_job"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert launch.returncode == 0, launch.stderr
    (run,) = instance.get_runs()
    assert run.status == DagsterRunStatus.QUEUED  # the run queue holds it until the daemon dequeues

    # What the daemon's queue does next: hand the run to the instance's launcher.
    with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(workspace)])) as context:
        request = context.create_request_context()
        assert request.get_code_location_error("rp_pipeline") is None
        instance.launch_run(run.run_id, request)
        deadline = time.monotonic() + 300
        while (status := instance.get_run_by_id(run.run_id).status) not in (  # type: ignore[union-attr]
            DagsterRunStatus.SUCCESS,
            DagsterRunStatus.FAILURE,
        ):
            assert time.monotonic() < deadline, f"run still {status}"
            time.sleep(2)
    assert status == DagsterRunStatus.SUCCESS
    finished = instance.get_run_by_id(run.run_id)
    assert finished is not None
    assert json.loads(finished.tags[GRPC_INFO_TAG])["port"] == int(port)  # started by that code server

    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (run.run_id,),
        )
        assert {json.loads(key)[0] for (key,) in cur.fetchall()} == PREPARE_ASSETS
    conn.close()
