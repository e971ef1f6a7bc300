"""Incremental runs: what a second materialization costs. The generation jobs (seed samples,
topics, synthesized personas, then every persona partition) and the corpus run once against
the fake provider; then a pure re-run; then one persona card is added and only its new
partition runs, as the persona sensor would launch it, and the corpus is rebuilt.

    python benchmarks/incremental.py [--quick]

Counts are of steps executed and of LLM calls that reached the provider (cached answers cost
nothing). The goal: 0 calls on a pure re-run, and for a new persona only that persona's calls.
Last line: the calls of the re-run and of the added persona against its own share of the first
run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dagster import DagsterEventType, DagsterInstance, materialize

from rp_pipeline.defs.build import ASSETS, build_definitions, resources
from rp_pipeline.defs.personas import sync_persona_partitions
from rp_pipeline.demo import prepare_dagster_home
from rp_pipeline_tests.conftest import make_settings
from rp_pipeline_tests.fake_llm import FakeLLM
from rp_pipeline_tests.pipeline_runs import run_generation


def steps(results) -> int:
    return sum(len(r.filter_events(lambda e: e.event_type == DagsterEventType.STEP_SUCCESS)) for r in results)


def corpus(settings):
    return materialize(
        ASSETS, selection=["training_corpus"], instance=DagsterInstance.get(), resources=resources(settings)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the same run (it is already under a minute)")
    parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["DAGSTER_HOME"] = str(prepare_dagster_home(root / "home"))
        fake = FakeLLM().start()
        try:
            settings = make_settings(root, fake)
            first = [*run_generation(settings).values(), corpus(settings)]
            first_calls = sum(fake.calls.values())
            per_persona = first_calls // max(1, len(DagsterInstance.get().get_dynamic_partitions("personas")))

            before = sum(fake.calls.values())
            again = [*run_generation(settings).values(), corpus(settings)]
            rerun_calls = sum(fake.calls.values()) - before

            card = (settings.assets_dir / "personas" / "theo-barnes.yaml").read_text(encoding="utf-8")
            (settings.assets_dir / "personas" / "theo-twin.yaml").write_text(
                card.replace("id: theo-barnes", "id: theo-twin").replace("Theo Barnes", "Theodore Barnes"),
                encoding="utf-8",
            )
            instance = DagsterInstance.get()
            new = sync_persona_partitions(instance, settings.assets_dir / "personas", [])
            before = sum(fake.calls.values())
            job = build_definitions(settings).resolve_job_def("persona_job")
            added = [job.execute_in_process(instance=instance, partition_key=key) for key in new] + [corpus(settings)]
            added_calls = sum(fake.calls.values()) - before
        finally:
            fake.stop()
    print(f"first run:   {steps(first):>3} steps, {first_calls:>4} LLM calls (~{per_persona} per persona)")
    print(f"pure re-run: {steps(again):>3} steps, {rerun_calls:>4} LLM calls (all answered from the cache)")
    print(f"new persona {new}: {steps(added):>3} steps, {added_calls:>4} LLM calls")
    print(f"incremental: re-run {rerun_calls} calls; one added persona {added_calls} (~{per_persona} per persona)")
    return 0 if rerun_calls == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
