"""A materialization SIGKILLed mid-stage, then run again: the output is complete, has no
duplicates, no partial file is trusted, and no prompt whose answer was cached is paid twice.

The killed run is a subprocess (a driver script this module writes, with its own
DAGSTER_HOME); the re-run happens in this process. Two stages: the dialogues (killed while
their LLM calls are under way) and the corpus export (killed while writing its Parquet file).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance

from rp_pipeline.core.artifacts import CorpusArtifact
from rp_pipeline.core.corpus import EXPORT_FILES
from rp_pipeline.core.models import Dialogue
from rp_pipeline.defs.build import build_definitions
from rp_pipeline.lineage.store import LineageStore
from rp_pipeline.settings import REPO_ROOT, Settings
from rp_pipeline_tests.conftest import make_settings
from rp_pipeline_tests.fake_llm import FakeLLM
from rp_pipeline_tests.pipeline_runs import run_generation

pytestmark = pytest.mark.crash

PERSONAS = ["lin-xiaoman", "theo-barnes"]
DIALOGUES_PER_PERSONA = 2
DIALOGUE_ROLES = ("character", "user_agent", "scene_agent", "moderator")
ANSWERED_BEFORE_KILL = 6  # dialogue-role requests answered before the provider holds the rest

DRIVER = '''
"""Run generation (and the corpus) the way the tests do; `corpus-killed` SIGKILLs this
process while Dataset.to_parquet writes the corpus export."""
import os, signal, sys

from rp_pipeline.settings import Settings
from rp_pipeline_tests.pipeline_runs import run_generation

stage, personas = sys.argv[1], sys.argv[2].split(",")
if stage == "corpus-killed":
    from datasets import Dataset

    write = Dataset.to_parquet

    def to_parquet_then_die(self, path, *args, **kwargs):
        write(self, path, *args, **kwargs)
        with open(path, "r+b") as fh:  # the kill comes halfway through the file
            fh.truncate(os.path.getsize(path) // 2)
        os.kill(os.getpid(), signal.SIGKILL)

    Dataset.to_parquet = to_parquet_then_die
settings = Settings()
failed = [key for key, result in run_generation(settings, personas).items() if not result.success]
if failed:
    sys.exit(f"persona runs failed: {failed}")
if stage.startswith("corpus"):
    from dagster import AssetKey, DagsterInstance
    from rp_pipeline.defs.build import build_definitions

    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=DagsterInstance.get(), asset_selection=[AssetKey("training_corpus")], raise_on_error=False
    )
    sys.exit(0 if result.success else "training_corpus failed")
'''


class HoldingFakeLLM(FakeLLM):
    """The fake provider, which answers the first `answer` dialogue-role requests and holds every
    later one until `release()`: the dialogues stage is certain to be under way, not finished,
    when the test kills it (no sleep racing the kill)."""

    def __init__(self, answer: int, **kwargs):
        super().__init__(**kwargs)
        self.answer = answer
        self.held = threading.Event()
        self._released = threading.Event()
        self._seen = 0
        self._count_lock = threading.Lock()

    def respond(self, role: str, body: dict):
        if role in DIALOGUE_ROLES:
            with self._count_lock:
                self._seen += 1
                hold = self._seen > self.answer
            if hold:
                self.held.set()
                self._released.wait()
        return super().respond(role, body)

    def release(self) -> None:
        self._released.set()


@pytest.fixture
def holding_fake_llm():
    server = HoldingFakeLLM(ANSWERED_BEFORE_KILL)
    server.start()
    yield server
    server.release()
    server.stop()


def _settings(tmp_path: Path, fake: FakeLLM, monkeypatch) -> Settings:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return make_settings(
        tmp_path,
        fake,
        simulation={"dialogues_per_persona": DIALOGUES_PER_PERSONA},
        corpus={"languages": {"zh": 1, "en": 1}},  # the two personas' languages: the corpus check passes
    )


@contextlib.contextmanager
def _driver(tmp_path: Path, settings: Settings, stage: str) -> Iterator[subprocess.Popen]:
    """The driver running `stage` in its own process group, killed (group and all) if still
    running when the block ends."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "RP_DATA_DIR": str(settings.data_dir),
        "RP_ASSETS_DIR": str(settings.assets_dir),
        "RP_PROFILE": settings.profile,
        "RP_LLM_CONFIG": str(settings.llm_config_path),
    }
    with (tmp_path / "driver.log").open("wb") as log:  # a file, not a pipe nobody drains while it runs
        child = subprocess.Popen(
            [sys.executable, str(driver), stage, ",".join(PERSONAS)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill takes anything it started
        )
    try:
        yield child
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=60)


def _driver_log(tmp_path: Path) -> str:
    return (tmp_path / "driver.log").read_text(encoding="utf-8", errors="replace")[-3000:]


def _cached(data: Path) -> dict[str, str]:
    """{cache key: the model that answered} in the response cache."""
    path = data / "llm_cache.sqlite"
    if not path.exists():
        return {}
    with sqlite3.connect(path, timeout=30) as con:
        try:
            rows = con.execute("SELECT key, value FROM responses").fetchall()
        except sqlite3.OperationalError:  # the table is not there yet
            return {}
    return {key: json.loads(value)["model"] for key, value in rows}


def _ledger(data: Path) -> list[dict]:
    with LineageStore(data / "lineage").connect() as con:
        cursor = con.execute("SELECT run_id, asset, partition, role, prompt_hash, cache_hit, ok FROM calls")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _leftovers(root: Path) -> list[Path]:
    """Temp names of the atomic writer (`.NAME.HOST-PID-XXXX.tmp`) anywhere under `root`."""
    return list(root.rglob(f".*.{socket.gethostname()}-*.tmp"))


def test_dialogues_killed_mid_stage_rerun_completes_without_paying_a_cached_prompt_twice(
    tmp_path, holding_fake_llm, monkeypatch
):
    fake = holding_fake_llm
    settings = _settings(tmp_path, fake, monkeypatch)
    data = settings.data_dir
    with _driver(tmp_path, settings, "dialogues") as child:
        deadline = time.monotonic() + 180
        # the answered dialogue calls are all in the cache, and the provider holds the next one
        while not (
            fake.held.is_set()
            and sum(m.removeprefix("openai/fake-") in DIALOGUE_ROLES for m in _cached(data).values())
            >= ANSWERED_BEFORE_KILL
        ):
            assert child.poll() is None, _driver_log(tmp_path)
            assert time.monotonic() < deadline, "the dialogues stage never got under way"
            time.sleep(0.02)
        os.killpg(child.pid, signal.SIGKILL)
    fake.release()
    assert child.returncode == -signal.SIGKILL, _driver_log(tmp_path)
    cached_at_kill = set(_cached(data))
    runs_before = {c["run_id"] for c in _ledger(data)}
    requests_before = sum(fake.calls.values())
    dialogues_dir = data / "assets" / "dialogues"
    assert not (dialogues_dir / f"{PERSONAS[0]}.json").exists()  # the kill came mid-stage
    # Were a persona's dialogues being written when the kill came, half the file would be left under its temp name:
    dialogues_dir.mkdir(parents=True, exist_ok=True)
    half = dialogues_dir / f".{PERSONAS[0]}.json.{socket.gethostname()}-{child.pid}-0badf00d.tmp"
    half.write_text('[{"id": "dlg-half", "persona_id"', encoding="utf-8")

    results = run_generation(settings, PERSONAS)

    assert all(r.success for r in results.values()), [k for k, r in results.items() if not r.success]
    ids = []
    for persona in PERSONAS:
        text = (dialogues_dir / f"{persona}.json").read_text(encoding="utf-8")
        dialogues = [Dialogue.model_validate(d) for d in json.loads(text)]
        assert len(dialogues) == DIALOGUES_PER_PERSONA and {d.persona_id for d in dialogues} == {persona}
        ids += [d.id for d in dialogues]
    assert len(ids) == len(set(ids)) == len(PERSONAS) * DIALOGUES_PER_PERSONA
    assert _leftovers(data / "assets") == []  # the dead writer's half file was swept, never read
    rerun = [c for c in _ledger(data) if c["run_id"] not in runs_before]
    paid = [c for c in rerun if not c["cache_hit"]]
    assert [c for c in paid if c["prompt_hash"] in cached_at_kill] == []  # no cached prompt paid twice
    hits = [c for c in rerun if c["cache_hit"] and c["asset"] == "dialogues"]
    assert len({c["prompt_hash"] for c in hits}) >= ANSWERED_BEFORE_KILL  # the killed stage's answers were reused
    assert paid and all(c["ok"] for c in paid)  # the calls held at the kill were asked again, and answered
    assert sum(fake.calls.values()) - requests_before == len(paid)  # the ledger bills what the provider served


def test_corpus_export_killed_mid_write_leaves_no_partial_version_and_the_rerun_pays_nothing(
    tmp_path, fake_llm, monkeypatch
):
    settings = _settings(tmp_path, fake_llm, monkeypatch)
    data = settings.data_dir
    with _driver(tmp_path, settings, "corpus-killed") as child:
        child.wait(timeout=300)
    assert child.returncode == -signal.SIGKILL, _driver_log(tmp_path)
    corpus_dir = data / "corpus"
    assert [p.name for p in corpus_dir.iterdir() if not p.name.startswith(".")] == []  # no version, not half of one
    (staging,) = _leftovers(corpus_dir)  # the export died in its staging directory, mid-Parquet
    with pytest.raises(Exception):  # noqa: B017  (pyarrow's error type for a cut file varies by version)
        pq.read_metadata(staging / EXPORT_FILES["parquet"])
    assert not (data / "assets" / "training_corpus.json").exists()
    requests_before = sum(fake_llm.calls.values())
    runs_before = {c["run_id"] for c in _ledger(data)}

    assert all(r.success for r in run_generation(settings, PERSONAS).values())
    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=DagsterInstance.get(), asset_selection=[AssetKey("training_corpus")])

    assert result.success
    artifact = CorpusArtifact.model_validate_json((data / "assets" / "training_corpus.json").read_text())
    out = Path(artifact.dir)
    assert [p.name for p in corpus_dir.iterdir()] == [artifact.version]  # the staging leftover was swept
    assert sorted(p.name for p in out.iterdir()) == sorted([*EXPORT_FILES.values(), "rows.jsonl"])
    from datasets import load_from_disk

    assert len(load_from_disk(artifact.hf_dataset)) == artifact.rows
    assert (Path(artifact.hf_dataset) / "README.md").is_file()
    assert pq.read_metadata(artifact.parquet).num_rows == artifact.rows
    assert len(json.loads(Path(artifact.sharegpt).read_text(encoding="utf-8"))) == artifact.rows
    assert len(Path(artifact.messages).read_text(encoding="utf-8").splitlines()) == artifact.rows
    rows = artifact.load_rows()
    assert len(rows) == artifact.rows and len({r.id for r in rows}) == artifact.rows
    assert sum(fake_llm.calls.values()) == requests_before  # the re-run asked the provider nothing
    rerun = [c for c in _ledger(data) if c["run_id"] not in runs_before]
    assert rerun and all(c["cache_hit"] for c in rerun)
