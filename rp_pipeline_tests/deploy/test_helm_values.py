"""docker/helm/values.yaml for the official Dagster chart: every key is one the chart knows (a
typo would be ignored or refused at install), the code location, the run launcher, the queue and
the pools are what the deployment needs, the training launcher in it sends training to the GPU
node pool (read by the project's own loader), and no secret is written. `helm template` renders
it where helm and a copy of the chart are at hand (RP_DAGSTER_CHART: a chart directory or .tgz;
the chart cannot be fetched offline)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rp_pipeline.defs.launchers import GPU_RESOURCE, load_launcher
from rp_pipeline.settings import REPO_ROOT

VALUES = REPO_ROOT / "docker" / "helm" / "values.yaml"
CHART_VERSION = "1.13.27"  # = the pinned dagster release

# The keys of the dagster/dagster chart's values that this file may use, from the chart's
# values.schema.json (generated from helm/dagster/schema in the Dagster repository). A dict
# lists the keys of a mapping (for a list of mappings, of each item); None admits anything
# below (Kubernetes objects, free-form config).
ANY = None
USER_DEPLOYMENT = {
    **dict.fromkeys(
        [
            "name",
            "port",
            "dagsterApiGrpcArgs",
            "codeServerArgs",
            "env",
            "envConfigMaps",
            "envSecrets",
            "annotations",
            "nodeSelector",
            "affinity",
            "tolerations",
            "podSecurityContext",
            "securityContext",
            "resources",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "labels",
            "volumeMounts",
            "volumes",
            "schedulerName",
        ]
    ),
    "image": {"repository": ANY, "tag": ANY, "pullPolicy": ANY},
    "includeConfigInLaunchedRuns": {"enabled": ANY},
}
K8S_RUN_LAUNCHER = {
    **dict.fromkeys(
        [
            "image",
            "imagePullPolicy",
            "jobNamespace",
            "loadInclusterConfig",
            "kubeconfigFile",
            "envConfigMaps",
            "envSecrets",
            "envVars",
            "volumeMounts",
            "volumes",
            "labels",
            "failPodOnRunFailure",
            "resources",
            "schedulerName",
            "securityContext",
        ]
    ),
    "runK8sConfig": dict.fromkeys(
        ["containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata"]
    ),
}
CHART_KEYS = {
    "global": dict.fromkeys(["postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName"]),
    **dict.fromkeys(
        [
            "nameOverride",
            "fullnameOverride",
            "rbacEnabled",
            "imagePullSecrets",
            "generatePostgresqlPasswordSecret",
            "generateCeleryConfigSecret",
            "dagsterWebserver",
            "computeLogManager",
            "pythonLogs",
            "scheduler",
            "rabbitmq",
            "redis",
            "flower",
            "ingress",
            "busybox",
            "migrate",
            "serviceAccount",
            "retention",
            "additionalInstanceConfig",
            "extraManifests",
        ]
    ),
    "telemetry": {"enabled": ANY},
    "postgresql": {
        **dict.fromkeys(
            [
                "image",
                "enabled",
                "postgresqlHost",
                "postgresqlUsername",
                "postgresqlPassword",
                "postgresqlDatabase",
                "postgresqlParams",
                "postgresqlScheme",
            ]
        ),
        "service": {"port": ANY},
    },
    "dagster-user-deployments": {
        "enabled": ANY,
        "enableSubchart": ANY,
        "imagePullSecrets": ANY,
        "deployments": USER_DEPLOYMENT,
    },
    "runLauncher": {
        "type": ANY,
        "config": {"k8sRunLauncher": K8S_RUN_LAUNCHER, "celeryK8sRunLauncher": ANY, "customRunLauncher": ANY},
    },
    "concurrency": {
        "enabled": ANY,
        "pools": dict.fromkeys(["defaultLimit", "granularity", "opGranularityRunBuffer"]),
        "runs": {"maxConcurrentRuns": ANY, "tagConcurrencyLimits": dict.fromkeys(["key", "value", "limit"])},
    },
    "dagsterDaemon": {
        **dict.fromkeys(
            [
                "enabled",
                "image",
                "heartbeatTolerance",
                "runRetries",
                "sensors",
                "schedules",
                "env",
                "envConfigMaps",
                "envSecrets",
                "deploymentLabels",
                "labels",
                "volumes",
                "volumeMounts",
                "annotations",
                "nodeSelector",
                "affinity",
                "tolerations",
                "podSecurityContext",
                "securityContext",
                "resources",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ]
        ),
        "runCoordinator": {
            "enabled": ANY,
            "type": ANY,
            "config": {
                "queuedRunCoordinator": dict.fromkeys(
                    [
                        "maxConcurrentRuns",
                        "tagConcurrencyLimits",
                        "dequeueIntervalSeconds",
                        "dequeueUseThreads",
                        "dequeueNumWorkers",
                        "blockOpConcurrencyLimitedRuns",
                    ]
                ),
                "customRunCoordinator": ANY,
            },
        },
        "runMonitoring": dict.fromkeys(
            [
                "enabled",
                "startTimeoutSeconds",
                "cancelTimeoutSeconds",
                "pollIntervalSeconds",
                "maxResumeRunAttempts",
                "freeSlotsAfterRunEndSeconds",
            ]
        ),
    },
}


def unknown_keys(value, known, path: str = "") -> list[str]:
    """Paths in `value` that `known` does not list."""
    if known is None:
        return []
    if isinstance(value, list):
        return [bad for i, item in enumerate(value) for bad in unknown_keys(item, known, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return [f"{path}: expected a mapping"]
    found = []
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        found += [where] if key not in known else unknown_keys(item, known[key], where)
    return found


def _values() -> dict:
    return yaml.safe_load(VALUES.read_text(encoding="utf-8"))


def _deployment() -> dict:
    (deployment,) = _values()["dagster-user-deployments"]["deployments"]
    return deployment


def _launcher_configmap() -> dict:
    (configmap,) = [m for m in _values()["extraManifests"] if m["kind"] == "ConfigMap"]
    return configmap


def test_the_checker_catches_a_misspelt_key():
    typo = {"runLauncher": {"type": "K8sRunLauncher", "config": {"k8sRunLauncher": {"imagePulPolicy": "Always"}}}}
    assert unknown_keys(typo, CHART_KEYS) == ["runLauncher.config.k8sRunLauncher.imagePulPolicy"]


def test_every_key_is_one_the_chart_knows():
    assert unknown_keys(_values(), CHART_KEYS) == []


def test_the_code_location_is_a_user_deployment_of_the_project_image():
    values = _values()
    deployment = _deployment()
    assert values["dagster-user-deployments"]["enabled"] and values["dagster-user-deployments"]["enableSubchart"]
    assert deployment["image"]["repository"].endswith("/rp-pipeline-code")
    assert deployment["image"]["tag"] not in (None, "", "latest"), "runs must use the code server's exact image"
    args = deployment["codeServerArgs"]
    module = args[args.index("-m") + 1]
    assert module == "rp_pipeline.definitions" and importlib.util.find_spec(module) is not None
    assert isinstance(deployment["port"], int)
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}  # run Jobs get its env and volumes
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert "k8sRunLauncher" in values["runLauncher"]["config"]


def test_the_queue_and_the_gpu_pool_match_the_compose_instance():
    values = _values()
    compose_instance = yaml.safe_load((REPO_ROOT / "docker" / "dagster.yaml").read_text(encoding="utf-8"))
    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    assert concurrency["pools"]["defaultLimit"] == compose_instance["concurrency"]["pools"]["default_limit"] == 1
    assert concurrency["runs"]["maxConcurrentRuns"] > 0
    # no run_coordinator block: its chart template would add limits the instance refuses beside these
    assert values["dagsterDaemon"]["runCoordinator"] == {"enabled": False}
    scheme = compose_instance["storage"]["postgres"]["postgres_db"]["scheme"]
    assert values["postgresql"]["postgresqlScheme"] == scheme == "postgresql+psycopg2"


def test_an_instance_with_the_charts_concurrency_block_and_no_run_coordinator_queues_runs(tmp_path, monkeypatch):
    """What the chart writes for these values (`concurrency:` in snake_case, no `run_coordinator:`)
    gives Dagster's queue with the limits and the `gpu` pool of one."""
    from dagster import DagsterInstance
    from dagster._core.run_coordinator import QueuedRunCoordinator

    concurrency = _values()["concurrency"]
    runs = concurrency["runs"]
    (tmp_path / "dagster.yaml").write_text(
        yaml.safe_dump(
            {
                "concurrency": {
                    "pools": {"default_limit": concurrency["pools"]["defaultLimit"]},
                    "runs": {
                        "max_concurrent_runs": runs["maxConcurrentRuns"],
                        "tag_concurrency_limits": runs["tagConcurrencyLimits"],
                    },
                }
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with DagsterInstance.get() as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1
        assert config.run_queue_config is not None
        assert config.run_queue_config.max_concurrent_runs == runs["maxConcurrentRuns"]
        assert [limit["key"] for limit in config.run_queue_config.tag_concurrency_limits] == ["dagster/backfill"]


def test_training_reaches_the_gpu_node_pool_through_the_project_launcher(tmp_path):
    deployment = _deployment()
    env = {item["name"]: item["value"] for item in deployment["env"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in deployment["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in deployment["volumes"]}
    configmap = _launcher_configmap()

    # RP_LAUNCHER_CONFIG names a file of the ConfigMap, mounted where it says
    launcher_path = Path(env["RP_LAUNCHER_CONFIG"])
    (configmap_volume,) = [name for name, v in volumes.items() if v.get("configMap", {}).get("name")]
    assert volumes[configmap_volume]["configMap"]["name"] == configmap["metadata"]["name"]
    assert str(launcher_path.parent) == mounts[configmap_volume]
    (tmp_path / launcher_path.name).write_text(configmap["data"][launcher_path.name], encoding="utf-8")

    launcher = load_launcher(tmp_path / launcher_path.name, Path(env["RP_DATA_DIR"]))
    assert launcher.kind == "kubernetes"
    assert launcher.image and launcher.image.split(":")[0].endswith("/rp-pipeline-train")
    spec = launcher.pod_spec()
    assert launcher.gpus > 0
    assert spec["containers"][0]["resources"]["limits"][GPU_RESOURCE] == str(launcher.gpus)
    assert spec["node_selector"], "a GPU pod must be pinned to the GPU node pool"
    assert any(t["key"] == GPU_RESOURCE and t["effect"] == "NoSchedule" for t in spec["tolerations"])
    # the training pod sees the data directory where the code location and the runs do
    assert launcher.data_dir == env["RP_DATA_DIR"] == mounts["rp-data"]
    (pod_volume,) = launcher.volumes
    assert (
        pod_volume["persistent_volume_claim"]["claim_name"] == volumes["rp-data"]["persistentVolumeClaim"]["claimName"]
    )
    assert {m["mount_path"] for m in launcher.volume_mounts} == {env["RP_DATA_DIR"]}
    assert launcher.model_cache_dir == env["RP_MODEL_CACHE"]


def test_no_secret_is_written_in_the_values():
    values = _values()
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert values["postgresql"]["postgresqlPassword"] == ""
    for item in _deployment()["env"]:
        assert not any(word in item["name"] for word in ("PASSWORD", "KEY", "TOKEN", "SECRET")), item["name"]
    assert [secret["name"] for secret in _deployment()["envSecrets"]] == ["rp-provider-keys"]


def _chart() -> str:
    if shutil.which("helm") is None:
        pytest.skip("helm is not installed: values.yaml is checked against the chart's keys only")
    chart = os.environ.get("RP_DAGSTER_CHART")
    if not chart or not Path(chart).exists():
        pytest.skip(
            f"RP_DAGSTER_CHART does not name a copy of the dagster/dagster chart {CHART_VERSION} "
            "(helm pull dagster/dagster --version " + CHART_VERSION + "; nothing is fetched by the tests)"
        )
    return chart


def test_helm_template_renders_the_values():
    chart = _chart()
    done = subprocess.run(
        ["helm", "template", "rp", chart, "--namespace", "rp-pipeline", "-f", str(VALUES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    manifests = [m for m in yaml.safe_load_all(done.stdout) if m]
    by_kind: dict[str, list[dict]] = {}
    for manifest in manifests:
        by_kind.setdefault(manifest["kind"], []).append(manifest)

    code = [d for d in by_kind["Deployment"] if d["metadata"]["name"].endswith("-rp-pipeline")]
    (container,) = code[0]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/rp-pipeline-code:0.1.0"
    assert container["args"][:3] == ["dagster", "code-server", "start"]

    (instance,) = [c for c in by_kind["ConfigMap"] if c["metadata"]["name"].endswith("-instance")]
    dagster_yaml = yaml.safe_load(instance["data"]["dagster.yaml"])
    assert dagster_yaml["run_launcher"]["class"] == "K8sRunLauncher"
    assert dagster_yaml["concurrency"]["pools"]["default_limit"] == 1
    assert dagster_yaml["concurrency"]["runs"]["max_concurrent_runs"] == 8
    assert "run_coordinator" not in dagster_yaml
    assert any(c["metadata"]["name"] == "rp-training-launcher" for c in by_kind["ConfigMap"])
