"""A real PostgreSQL server for the deployment tests, started from the machine's own binaries
(Debian's `postgresql` package: initdb and pg_ctl) in a temporary directory, on 127.0.0.1 with
password authentication, and stopped afterwards. Skipped, saying why, where no server binary is
installed."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from rp_pipeline.llm.embedded import free_port
from rp_pipeline.settings import REPO_ROOT

PASSWORD = "rp-test-only"  # a throwaway server that listens on 127.0.0.1 for one test module


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    db_name: str

    def instance_env(self) -> dict[str, str]:
        """The variables docker/dagster.yaml reads its connection from."""
        return {
            "DAGSTER_POSTGRES_HOST": self.host,
            "DAGSTER_POSTGRES_PORT": str(self.port),
            "DAGSTER_POSTGRES_USER": self.user,
            "DAGSTER_POSTGRES_PASSWORD": self.password,
            "DAGSTER_POSTGRES_DB": self.db_name,
        }

    def connect(self):
        import psycopg2

        return psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=self.db_name
        )


def _server_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, or Debian's versioned directory (newest first)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists() and Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    return None


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    bin_dir = _server_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine: apt-get install postgresql")
    pytest.importorskip("dagster_postgres", reason="dagster-postgres is not installed (the [deploy] extra)")
    # initdb and postgres refuse to run as root: as root, run them as the package's `postgres` user.
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no `postgres` user to run the server as (initdb refuses root)")
    root = Path(tempfile.mkdtemp(prefix="rp-postgres-"))
    data, socket_dir, password_file = root / "data", root / "socket", root / "password"
    socket_dir.mkdir()
    password_file.write_text(PASSWORD)
    if user is not None:
        for path in (root, socket_dir, password_file):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = free_port()
    as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}

    def pg(*args: str) -> None:
        subprocess.run(
            [str(bin_dir / args[0]), *args[1:]], cwd=root, check=True, capture_output=True, timeout=120, **as_user
        )

    try:
        pg(
            "initdb",
            "-D",
            str(data),
            "-U",
            "dagster",
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
        )
        options = f"-h 127.0.0.1 -p {port} -k {socket_dir} -c fsync=off -c full_page_writes=off"
        pg("pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o", options, "start")
        conn = PostgresServer("127.0.0.1", port, "dagster", PASSWORD, "postgres").connect()
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        conn.cursor().execute("CREATE DATABASE dagster")
        conn.close()
        yield PostgresServer("127.0.0.1", port, "dagster", PASSWORD, "dagster")
    except subprocess.CalledProcessError as exc:
        log = root / "server.log"
        raise RuntimeError(
            f"{exc.cmd[0]} failed: {exc.stderr.decode(errors='replace')}"
            + (log.read_text(errors="replace") if log.exists() else "")
        ) from exc
    finally:
        if (data / "postmaster.pid").exists():
            pg("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def compose_home(home: Path) -> Path:
    """DAGSTER_HOME with docker/dagster.yaml as shipped, but for the two container paths (compute
    logs and local artifacts under /opt/dagster/storage), moved under `home`."""
    config = yaml.safe_load((REPO_ROOT / "docker" / "dagster.yaml").read_text(encoding="utf-8"))
    config["compute_logs"]["config"]["base_dir"] = str(home / "storage" / "compute_logs")
    config["local_artifact_storage"]["config"]["base_dir"] = str(home / "storage")
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return home


@pytest.fixture
def compose_instance(postgres, tmp_path, monkeypatch):
    """The compose instance on the test's Postgres, as DAGSTER_HOME for this test."""
    from dagster import DagsterInstance

    for name, value in postgres.instance_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(compose_home(tmp_path / "dagster_home")))
    with DagsterInstance.get() as instance:
        yield instance
