"""The training launchers build what Dagster's own Pipes clients send: the Docker container
(image, command, environment, GPU device requests, bind mounts) and the Kubernetes pod (image,
command, GPU limits, node selector, tolerations, volumes), for 1 and N GPUs, with and without
DeepSpeed. Nothing is started: no Docker daemon or cluster here."""

from __future__ import annotations

from pathlib import Path

import pytest

from rp_pipeline.core.launch import DEEPSPEED_DIR, training_command
from rp_pipeline.defs.launchers import GPU_RESOURCE, load_launcher
from rp_pipeline.settings import REPO_ROOT

LAUNCHERS = REPO_ROOT / "docker" / "launchers"


class RecordingDocker:
    """docker-py's client as far as PipesDockerClient uses it to create a container."""

    def __init__(self) -> None:
        self.created: dict = {}
        self.containers = self

    def create(self, **kwargs):
        self.created = kwargs
        return object()


def _docker_container(launcher, command: list[str]) -> dict:
    from dagster_docker import PipesDockerClient

    docker = RecordingDocker()
    PipesDockerClient()._create_container(  # the client's own merge of env and container kwargs
        docker, launcher.image, command, launcher.env, launcher.container_kwargs(), {"DAGSTER_PIPES_CONTEXT": "ctx"}
    )
    return docker.created


def test_the_docker_launcher_gives_the_container_its_gpus_mounts_and_the_same_command(tmp_path):
    launcher = load_launcher(LAUNCHERS / "docker.yaml", tmp_path / "data")
    assert (launcher.kind, launcher.python()) == ("docker", "python")
    one = training_command("sft", tmp_path / "data" / "sft_config.json", python=launcher.python(), gpus=1)
    created = _docker_container(launcher, one)
    assert created["image"] == "rp-pipeline-train:latest" and created["command"] == one
    assert one[:3] == ["python", "-m", "rp_pipeline.training.sft"]
    assert created["environment"] == {"DAGSTER_PIPES_CONTEXT": "ctx", "HF_HUB_OFFLINE": "1"}
    [gpus] = created["device_requests"]
    assert (gpus["Count"], gpus["Capabilities"]) == (1, [["gpu"]])
    data = str(tmp_path / "data")
    assert created["volumes"][data] == {"bind": data, "mode": "rw"}  # config paths hold inside
    assert "/root/.cache/rp_pipeline/models" in created["volumes"]

    eight = launcher.model_copy(update={"gpus": 8})
    zero2 = training_command("sft", "c.json", python=eight.python(), gpus=8, deepspeed=DEEPSPEED_DIR / "zero2.json")
    created = _docker_container(eight, zero2)
    assert created["device_requests"][0]["Count"] == 8
    launch = ["python", "-m", "accelerate.commands.launch", "--num_machines", "1", "--num_processes", "8"]
    assert created["command"][:7] == launch
    assert str(DEEPSPEED_DIR / "zero2.json") in created["command"]


def test_the_kubernetes_launcher_builds_a_gpu_pod_on_the_node_pool(tmp_path):
    from dagster_k8s.pipes import build_pod_body

    launcher = load_launcher(LAUNCHERS / "kubernetes.yaml", tmp_path / "data")
    assert launcher.data_dir == "/data"  # the file's own, not the default
    command = training_command("dpo", "/data/models/v/dpo_config.json", python=launcher.python(), gpus=4)
    pod = build_pod_body("rp-dpo", launcher.image, command, launcher.env, None, launcher.pod_spec())
    [container] = pod.spec.containers
    assert container.image == "registry.example.com/rp-pipeline-train:latest"
    assert container.args == command or container.command == command
    assert "--multi_gpu" in command and "--num_processes" in command
    assert container.resources.limits == {GPU_RESOURCE: "4"}
    assert {e.name: e.value for e in container.env} == {"HF_HUB_OFFLINE": "1", "RP_MODEL_CACHE": "/data/model-cache"}
    assert [(m.name, m.mount_path) for m in container.volume_mounts] == [("rp-data", "/data")]
    assert pod.spec.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert [(t.key, t.effect) for t in pod.spec.tolerations] == [("nvidia.com/gpu", "NoSchedule")]
    assert pod.spec.volumes[0].persistent_volume_claim.claim_name == "rp-data"
    assert (pod.spec.restart_policy, pod.spec.service_account_name) == ("Never", "rp-training")

    cpu = launcher.model_copy(update={"gpus": 0}).pod_spec()
    assert "resources" not in cpu["containers"][0]


def test_the_default_launcher_is_a_local_subprocess_and_a_bad_file_names_its_field(tmp_path):
    local = load_launcher(None, tmp_path)
    assert (local.kind, local.data_dir) == ("subprocess", str(tmp_path))
    assert local.python("/opt/gptq/bin/python") == "/opt/gptq/bin/python"
    bad = tmp_path / "launcher.yaml"
    bad.write_text("kind: slurm\n")
    with pytest.raises(ValueError, match=r"(?s)launcher.yaml: invalid training launcher.*kind.*'docker'"):
        load_launcher(bad, tmp_path)
    no_image = load_launcher(LAUNCHERS / "docker.yaml", tmp_path).model_copy(update={"image": None})
    with pytest.raises(ValueError, match="needs an image"):
        no_image.run(None, ["python"])  # type: ignore[arg-type]
    assert Path(LAUNCHERS / "kubernetes.yaml").is_file()


def test_the_shipped_instance_config_limits_the_gpu_pool(tmp_path, monkeypatch):
    """`rp demo` (and `make ui`) give a new DAGSTER_HOME the project's dagster.yaml: one step of
    the `gpu` pool at a time; an instance's own dagster.yaml is left alone."""
    from dagster import DagsterInstance

    from rp_pipeline.demo import prepare_dagster_home

    home = prepare_dagster_home(tmp_path / "home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    (home / "dagster.yaml").write_text("concurrency:\n  pools:\n    default_limit: 3\n")
    prepare_dagster_home(home)
    assert "default_limit: 3" in (home / "dagster.yaml").read_text()


def test_runs_a_killed_rp_demo_left_started_are_failed_and_their_gpu_slots_freed(tmp_path, monkeypatch):
    import os

    from dagster import DagsterInstance, DagsterRunStatus, job, op

    from rp_pipeline.demo import PID_TAG, prepare_dagster_home, release_abandoned_runs

    @op
    def step():
        return 1

    @job
    def train():
        step()

    monkeypatch.setenv("DAGSTER_HOME", str(prepare_dagster_home(tmp_path / "home")))
    with DagsterInstance.get() as instance:
        dead = _exited_pid()
        killed = instance.create_run_for_job(train, tags={PID_TAG: str(dead)}, status=DagsterRunStatus.STARTED)
        running = instance.create_run_for_job(train, tags={PID_TAG: str(os.getpid())}, status=DagsterRunStatus.STARTED)
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default("gpu")
        assert storage.claim_concurrency_slot("gpu", killed.run_id, "sft_checkpoint").is_claimed
        assert not storage.claim_concurrency_slot("gpu", running.run_id, "dpo_checkpoint").is_claimed  # blocked

        assert release_abandoned_runs(instance) == [killed.run_id]
        assert instance.get_run_by_id(killed.run_id).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(running.run_id).status == DagsterRunStatus.STARTED  # its process lives
        assert storage.claim_concurrency_slot("gpu", running.run_id, "dpo_checkpoint").is_claimed


def _exited_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
