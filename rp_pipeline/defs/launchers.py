"""Where the training scripts run: a local subprocess, a Docker container or a Kubernetes pod,
all through Dagster Pipes with the same command (`core/launch.py`) and the same scripts.

The data directory (and the model cache, where the embedded base is dequantized) is mounted
at the same path inside a container or pod, so the paths in a script's config hold there.
Chosen by a YAML file (RP_LAUNCHER_CONFIG; examples in docker/launchers/), default subprocess.
dagster-docker and dagster-k8s are imported only when their launcher runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from dagster import AssetExecutionContext, ConfigurableResource, PipesClientCompletedInvocation, PipesSubprocessClient
from pydantic import Field

GPU_RESOURCE = "nvidia.com/gpu"


class TrainingLauncher(ConfigurableResource):
    kind: Literal["subprocess", "docker", "kubernetes"] = "subprocess"
    image: str | None = Field(default=None, description="the training image (docker/Dockerfile.train)")
    gpus: int = Field(default=0, ge=0, description="GPUs the container or pod gets")
    data_dir: str = Field(default="", description="mounted at the same path in a container or pod")
    model_cache_dir: str | None = Field(default=None, description="mounted too (the dense embedded base)")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment (never secrets: use the pod's)")
    # kubernetes
    namespace: str = "default"
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    volumes: list[dict[str, Any]] = Field(
        default_factory=list, description="pod volumes holding data_dir (and the model cache), e.g. a PVC"
    )
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list, description="where the volumes are mounted")
    service_account: str | None = None

    def python(self, local: str | None = None) -> str:
        """The interpreter that runs a script: the image's `python` in a container or pod."""
        return (local or sys.executable) if self.kind == "subprocess" else "python"

    def container_kwargs(self) -> dict[str, Any]:
        """What docker-py's `containers.run` gets beyond image and command: GPU device requests
        and the bind mounts."""
        from docker.types import DeviceRequest

        mounts = [path for path in (self.data_dir, self.model_cache_dir) if path]
        kwargs: dict[str, Any] = {"volumes": {path: {"bind": path, "mode": "rw"} for path in mounts}}
        if self.gpus:
            kwargs["device_requests"] = [DeviceRequest(count=self.gpus, capabilities=[["gpu"]])]
        return kwargs

    def pod_spec(self) -> dict[str, Any]:
        """The base pod spec Dagster's K8s Pipes client merges its container into: GPU limits,
        node selector, tolerations, volumes and their mounts."""
        container: dict[str, Any] = {"volume_mounts": self.volume_mounts}
        if self.gpus:
            container["resources"] = {"limits": {GPU_RESOURCE: str(self.gpus)}}
        spec: dict[str, Any] = {
            "containers": [container],
            "node_selector": self.node_selector,
            "tolerations": self.tolerations,
            "volumes": self.volumes,
            "restart_policy": "Never",
        }
        if self.service_account:
            spec["service_account_name"] = self.service_account
        return spec

    def run(self, context: AssetExecutionContext, command: list[str]) -> PipesClientCompletedInvocation:
        if self.kind == "subprocess":
            return PipesSubprocessClient(env=self.env or None).run(context=context, command=command)
        if self.image is None:
            raise ValueError(f"the {self.kind} training launcher needs an image (docker/Dockerfile.train)")
        if self.kind == "docker":
            from dagster_docker import PipesDockerClient

            return PipesDockerClient().run(
                context=context,
                image=self.image,
                command=command,
                env=self.env,
                container_kwargs=self.container_kwargs(),
            )
        from dagster_k8s import PipesK8sClient

        return PipesK8sClient().run(
            context=context,
            image=self.image,
            command=command,
            namespace=self.namespace,
            env=self.env,
            base_pod_spec=self.pod_spec(),
        )


def load_launcher(path: Path | None, data_dir: Path) -> TrainingLauncher:
    """The launcher a YAML file describes (a bad file names itself and the field), else a local
    subprocess. `data_dir` defaults to the pipeline's."""
    if path is None:
        return TrainingLauncher(data_dir=str(data_dir))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return TrainingLauncher(**{"data_dir": str(data_dir), **raw})
    except (OSError, yaml.YAMLError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: invalid training launcher: {exc}") from exc
