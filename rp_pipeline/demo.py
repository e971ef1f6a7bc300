"""`rp demo`: materialize the whole asset graph on the embedded default, with progress.

The runs go to a persistent Dagster instance (data/dagster_home), so `dagster dev`
afterwards shows every materialization, its metadata and the asset checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

from rp_pipeline.core.atomic import write_text_atomic
from rp_pipeline.core.storage import Location
from rp_pipeline.settings import Settings


def _say(message: str) -> None:
    print(f"[rp demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


INSTANCE_CONFIG = Path(__file__).resolve().parent.parent / "dagster.yaml"


def prepare_dagster_home(dagster_home: Path) -> Path:
    """The instance directory, with the project's dagster.yaml (the `gpu` pool limit) unless it
    has its own."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        write_text_atomic(dagster_home / "dagster.yaml", INSTANCE_CONFIG.read_text(encoding="utf-8"))
    return dagster_home


PID_TAG = "rp/demo_pid"


def release_abandoned_runs(instance) -> list[str]:
    """Runs an earlier `rp demo` left STARTED when it was killed: marked failed, and their
    `gpu` pool slots freed, or the next run's training step would wait for them forever."""
    from dagster import DagsterRunStatus, RunsFilter

    started = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING]))
    abandoned = [run for run in started if PID_TAG in run.tags and not _alive(int(run.tags[PID_TAG]))]
    for run in abandoned:
        instance.report_run_failed(run, "abandoned: the rp demo process that ran it is gone")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        _say(f"marked run {run.run_id} of a killed rp demo as failed and freed its pool slots")
    return [run.run_id for run in abandoned]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_demo(settings: Settings, train_assets: Sequence[str] | None = None) -> int:
    """Materialize the graph: prepare_job, persona_job per persona, then train_job, or only the
    `train_assets` of it (benchmarks/learning.py stops after the corpus and the on-policy pairs)."""
    prepare_dagster_home(Path(os.environ.setdefault("DAGSTER_HOME", str(settings.local_dir / "dagster_home"))))
    from dagster import AssetKey, DagsterInstance

    from rp_pipeline.defs.build import build_definitions
    from rp_pipeline.defs.personas import sync_persona_partitions
    from rp_pipeline.llm.config import load_llm_config
    from rp_pipeline.llm.embedded import API_BASES_ENV, EMBEDDED_MODELS, embedded_servers

    instance = DagsterInstance.get()
    release_abandoned_runs(instance)
    tags = {PID_TAG: str(os.getpid())}
    defs = build_definitions(settings)
    # Step-level DEBUG events stay in the UI; the console shows asset and training logs.
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if names := load_llm_config(settings.llm_config_path).embedded_models:
            titles = ", ".join(EMBEDDED_MODELS[name].title for name in sorted(names))
            _say(f"assembling, verifying and serving the embedded models on 127.0.0.1 ({titles})")
            bases = stack.enter_context(embedded_servers(names, settings.local_dir))
            stack.enter_context(mock.patch.dict(os.environ, {API_BASES_ENV: json.dumps(bases)}))
        _say("prepare_job: seed variables -> samples -> topic keywords -> synthesized personas")
        result = defs.resolve_job_def("prepare_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=quiet, tags=tags
        )
        if not result.success:
            _say("prepare_job failed; see the run in the UI (make ui)")
            return 1
        synthesized = [card["id"] for card in _load_output(settings, "synthesized_personas")]
        new = sync_persona_partitions(instance, settings.assets_dir / "personas", synthesized)
        personas = instance.get_dynamic_partitions("personas")
        _say(f"{len(personas)} persona partitions ({len(new)} new)")
        failed = []
        for number, persona in enumerate(personas, start=1):
            _say(f"persona_job [{number}/{len(personas)}] {persona}: card -> dialogues -> cleaned dialogues")
            result = defs.resolve_job_def("persona_job").execute_in_process(
                instance=instance, partition_key=persona, raise_on_error=False, run_config=quiet, tags=tags
            )
            if not result.success:
                failed.append(persona)
                _say(f"  persona {persona} failed (the others go on); see the run in the UI")
        if train_assets is None:
            _say("train_job: corpus -> SFT -> on-policy preference pairs -> DPO -> int8 -> eval -> leaderboard")
        else:
            _say(f"train_job, only: {', '.join(train_assets)}")
        selection = [AssetKey(name) for name in train_assets] if train_assets is not None else None
        result = defs.resolve_job_def("train_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=quiet, tags=tags, asset_selection=selection
        )
    minutes = (time.monotonic() - started) / 60
    for check in result.get_asset_check_evaluations():
        if not check.passed:  # say why the graph stopped: the check's own words (its "failing" metadata)
            failing = check.metadata.get("failing")
            why = getattr(failing, "value", None) or check.description or "see the UI"
            _say(f"check {check.asset_check_key.name} on {check.asset_key.to_user_string()} failed: {why}")
    _summary(settings, result.success, failed, minutes)
    return 0 if result.success and not failed else 1


def _load_output(settings: Settings, asset: str):
    import json

    return json.loads((settings.data_dir / "assets" / f"{asset}.json").read_text(encoding="utf-8"))


def _summary(settings: Settings, success: bool, failed: list[str], minutes: float) -> None:
    data = settings.data_dir
    corpus_dirs = sorted((data / "corpus").glob("corpus-*"), key=lambda p: p.stat().st_mtime)

    def built(path: Location) -> str:
        return str(path) if path.exists() else "(not built)"

    lines = [
        "",
        f"{'Done' if success and not failed else 'Finished with failures'} in {minutes:.1f} min.",
        f"  scores (leaderboard):  {built(settings.local_dir / 'leaderboard.parquet')}",
        f"  eval details:          {built(data / 'assets' / 'eval_scores.json')}",
        f"  corpus:                {corpus_dirs[-1] if corpus_dirs else '(not built)'}",
        f"  lineage DB (DuckDB):   {data / 'lineage' / 'lineage.duckdb'}",
        "  trace a corpus row:    .venv/bin/rp lineage trace ROW_ID   (row ids: corpus rows.jsonl)",
        "  checkpoints of a persona: .venv/bin/rp lineage checkpoints --persona lin-xiaoman",
        f"  open the UI:           DAGSTER_HOME={os.environ['DAGSTER_HOME']} .venv/bin/dagster dev -w workspace.yaml",
    ]
    if failed:
        lines.append(f"  failed personas: {', '.join(failed)}")
    print("\n".join(lines), file=sys.stdout, flush=True)
