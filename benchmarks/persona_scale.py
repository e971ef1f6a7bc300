"""Scale of personas: what the sensors, a partition-status query, the definitions load and the corpus
automation cost with N persona partitions registered, against the same operations at a small baseline
measured in the same run.

    python benchmarks/persona_scale.py [--personas 5000] [--baseline 50] [--repeat 3] [--quick]

Each size gets a fresh DAGSTER_HOME (SQLite storage, the project's dagster.yaml) and a temp copy of
assets/ whose personas/ holds cards generated from the seed tables (no LLM calls): each seed sample's
occupation, behaviours and relationship, with the name, examples and opening line of an authored card
in the sample's language (the content checks pass; `check_card` runs on one card per template). A
fifth of the cards are listed as synthesized (in synthesized_personas' metadata, no file), as the
persona writer leaves them. Every partition has a persona_cards materialization, most have dialogues
and cleaned_dialogues, 2% of cleaned_dialogues failed in a persona_job run, and lineage holds each
card, its dialogues and cleaned rows, a corpus version of all of them and a checkpoint trained on it.

Measured (median of --repeat runs after one untimed warm-up, seconds): the new_personas_sensor tick
when nothing is new and when 10 cards are new; the removed_personas_sensor tick when nothing and when
10 cards were removed (each with its lineage impact); cleaned_dialogues' status per partition as the
UI and a backfill read it (the asset status cache, rebuilt in full after the partition set changed,
then up to date); the definitions load (Definitions built and validated, asset graph, partition
keys; and, unless --quick, `dagster definitions validate` in a fresh process); the corpus_automation
tick (training_corpus' automation condition over N upstream partitions). Setup writes with SQLite's
fsync off (it is not measured; the measured operations run with the defaults).

Last line: the slowest sensor tick, the status query, the definitions load and the automation tick
at N, and each as a multiple of the baseline. Exit 1 when a figure passes its usable bound or a
count is not what was set up.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dagster import (  # noqa: E402
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    Definitions,
    MetadataValue,
    build_sensor_context,
    evaluate_automation_conditions,
)
from dagster._core.events import AssetMaterializationPlannedData  # noqa: E402
from dagster._core.storage.partition_status_cache import AssetPartitionStatus  # noqa: E402
from sqlalchemy import event as sa_event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from rp_pipeline.core.ids import content_id  # noqa: E402
from rp_pipeline.core.models import PersonaCard  # noqa: E402
from rp_pipeline.core.personas import load_persona_file  # noqa: E402
from rp_pipeline.core.rules import RuleSet  # noqa: E402
from rp_pipeline.core.seeds import load_seed_variables, sample_seeds  # noqa: E402
from rp_pipeline.defs.build import build_definitions, resources  # noqa: E402
from rp_pipeline.defs.personas import SYNTHESIZED_IDS, personas_partitions  # noqa: E402
from rp_pipeline.demo import prepare_dagster_home  # noqa: E402
from rp_pipeline.lineage.store import LineageStore  # noqa: E402
from rp_pipeline.settings import Settings  # noqa: E402

CLEANED = AssetKey("cleaned_dialogues")
CORPUS = AssetSelection.assets("training_corpus")
CHANGED = 10  # cards added, and removed, between ticks
DIALOGUES_PER_PERSONA = 3  # in lineage (the demo profile's 18 dialogues for 6 personas)
SYNTHESIZED_EVERY = 5  # every fifth generated card is synthesized (metadata, no file)
# Percent of partitions with dialogues, with cleaned dialogues, and whose cleaned_dialogues failed
# (a persona_job run that planned it and failed; those have dialogues).
HAS_DIALOGUES, HAS_CLEANED, FAILED_CLEANED = 95, 90, 2
# Past these a figure is not usable: a sensor runs every 30 s, a UI page waits on the status, and a code
# location that loads for longer holds up every deploy (the CLI figure is mostly the interpreter starting).
BOUNDS = {"sensor": 30.0, "status": 10.0, "automation": 30.0, "definitions": 30.0}
TEMPLATE_DIRS = ("personas", "eval/personas")


# --- cards from the seed tables -----------------------------------------------------------------


def card_templates(assets: Path) -> dict[str, list[PersonaCard]]:
    """Authored cards by language: their names, examples and opening lines pass the content checks."""
    by_language: dict[str, list[PersonaCard]] = defaultdict(list)
    for folder in TEMPLATE_DIRS:
        for path in sorted((assets / folder).glob("*.yaml")):
            card = load_persona_file(path)
            by_language[card.language].append(card)
    return dict(by_language)


def cards_from_seeds(assets: Path, n: int, seed: int = 0) -> list[tuple[PersonaCard, PersonaCard]]:
    """n (card, template) pairs: a seed sample's occupation, behaviours and relationship with a
    template card's voice in the sample's language (templates cycle over the languages that have
    one when the sample's language has none)."""
    templates = card_templates(assets)
    languages = sorted(templates)
    turn = {language: itertools.cycle(cards) for language, cards in templates.items()}
    fallback = itertools.cycle(languages)
    out = []
    for sample in sample_seeds(load_seed_variables(assets / "seeds"), n, seed):
        language = sample.language if sample.language in templates else next(fallback)
        template = next(turn[language])
        card = template.model_copy(
            update={
                "id": content_id("bench", sample.id),
                "occupation": sample.character_occupation,
                "personality": list(sample.character_personality.behaviours),
                "relation_to_user": sample.relationship,
            }
        )
        out.append((card, template))
    return out


def write_card(card: PersonaCard, personas_dir: Path) -> Path:
    path = personas_dir / f"{card.id}.yaml"
    fields = card.model_dump(mode="json", exclude={"source", "parent_ids"})
    path.write_text(yaml.safe_dump(fields, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# --- one instance with n persona partitions ---------------------------------------------------


@contextlib.contextmanager
def fsync_off() -> Iterator[None]:
    """SQLite without fsync while the fixture is written (70 ms an event on a busy disk, 7 ms
    without); connections opened afterwards have the defaults again."""

    def pragma(dbapi_connection, _record) -> None:
        dbapi_connection.execute("PRAGMA synchronous=OFF")

    sa_event.listen(Engine, "connect", pragma)
    try:
        yield
    finally:
        sa_event.remove(Engine, "connect", pragma)


@dataclass
class World:
    """A DAGSTER_HOME, assets and data for n personas, and what was set up in them."""

    n: int
    root: Path
    settings: Settings
    instance: DagsterInstance
    keys: list[str]
    files: list[str]  # personas that have a card file (the rest are synthesized)
    failed: set[str]
    cleaned: set[str]
    setup_s: float = 0.0
    events: int = 0
    added: list[str] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def personas_dir(self) -> Path:
        return self.settings.assets_dir / "personas"

    def resources(self) -> dict[str, Any]:
        return resources(self.settings)


def write_cards(personas_dir: Path, n: int) -> tuple[list[str], list[str], list[str]]:
    """n personas in `personas_dir`: the authored cards there, then cards from the seed tables, every
    SYNTHESIZED_EVERY-th of them listed as synthesized instead of written; (all ids, ids with a
    file, synthesized ids)."""
    authored = sorted(p.stem for p in personas_dir.glob("*.yaml"))
    for surplus in authored[n:]:  # fewer personas than authored cards: only n of them
        (personas_dir / f"{surplus}.yaml").unlink()
    authored = authored[:n]
    generated = cards_from_seeds(personas_dir.parent, max(0, n - len(authored)))
    rules = RuleSet.load(personas_dir.parent / "rules")
    checked: set[str] = set()
    files, synthesized = list(authored), []
    for i, (card, template) in enumerate(generated):
        if i % SYNTHESIZED_EVERY == SYNTHESIZED_EVERY - 1:
            synthesized.append(card.id)
            continue
        path = write_card(card, personas_dir)
        files.append(card.id)
        if template.id not in checked:  # raises, naming file and field, if the card is not valid
            load_persona_file(path, rules)
            checked.add(template.id)
    return [*authored, *(card.id for card, _ in generated)], files, synthesized


def share(i: int) -> int:
    """Partition i's place in 0..99, spread so every block of 100 partitions has each share once."""
    return (i * 19) % 100


def build_world(n: int, root: Path) -> World:
    started = time.perf_counter()
    shutil.copytree(REPO / "assets", root / "assets")
    settings = Settings(assets_dir=root / "assets", data_dir=root / "data", profile="demo")
    keys, files, synthesized = write_cards(settings.assets_dir / "personas", n)
    cleaned = {k for i, k in enumerate(keys) if share(i) < HAS_CLEANED}
    failed = {k for i, k in enumerate(keys) if HAS_CLEANED <= share(i) < HAS_CLEANED + FAILED_CLEANED}
    dialogues = {k for i, k in enumerate(keys) if share(i) < HAS_DIALOGUES}
    with fsync_off():
        instance = DagsterInstance.from_config(str(prepare_dagster_home(root / "dagster_home")))
        world = World(n, root, settings, instance, keys, files, failed, cleaned)
        request = personas_partitions.build_add_request(keys)
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        instance.report_runless_asset_event(
            AssetMaterialization("synthesized_personas", metadata={SYNTHESIZED_IDS: MetadataValue.json(synthesized)})
        )
        for key in keys:
            world.events += report(instance, key, dialogues=key in dialogues, cleaned=key in cleaned)
        for key in sorted(failed):
            fail_run(instance, key)
            world.events += 1
        write_lineage(LineageStore(settings.data_dir / "lineage"), keys, dialogues, cleaned)
    world.setup_s = time.perf_counter() - started
    return world


def report(instance: DagsterInstance, key: str, *, dialogues: bool, cleaned: bool) -> int:
    """A persona's materializations as persona_job leaves them; how many."""
    assets = ["persona_cards", *(["dialogues"] if dialogues else []), *(["cleaned_dialogues"] if cleaned else [])]
    for asset in assets:
        instance.report_runless_asset_event(AssetMaterialization(asset, partition=key, metadata={"rows": 3}))
    return len(assets)


def fail_run(instance: DagsterInstance, key: str) -> None:
    """A persona_job run for `key` that planned cleaned_dialogues and failed before materializing it."""
    run = DagsterRun(
        job_name="persona_job",
        run_id=str(uuid.uuid4()),
        status=DagsterRunStatus.FAILURE,
        tags={"dagster/partition": key},
    )
    instance.add_run(run)
    instance.report_dagster_event(
        DagsterEvent(
            event_type_value=DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value,
            job_name="persona_job",
            event_specific_data=AssetMaterializationPlannedData(CLEANED, partition=key),
        ),
        run_id=run.run_id,
    )


def write_lineage(store: LineageStore, keys: list[str], dialogues: set[str], cleaned: set[str]) -> None:
    """Each card, its dialogues and their cleaned rows (DIALOGUES_PER_PERSONA), one corpus version of
    all cleaned rows and a checkpoint trained on it."""

    def row(asset: str, row_id: str, parents: list[str], partition: str | None = None, **attrs: str) -> dict:
        return {"run_id": "bench", "asset": asset, "partition": partition, "row_id": row_id,
                "parent_ids": parents, "attrs": attrs}  # fmt: skip

    events = []
    for key in keys:
        events.append(row("persona_cards", f"card-{key}", [], key, persona_id=key))
        for i in range(DIALOGUES_PER_PERSONA if key in dialogues else 0):
            events.append(row("dialogues", f"dlg-{key}-{i}", [f"card-{key}"], key))
            if key in cleaned:
                events.append(row("cleaned_dialogues", f"clean-{key}-{i}", [f"dlg-{key}-{i}"], key))
    rows = [e["row_id"] for e in events if e["asset"] == "cleaned_dialogues"]
    events.append(row("training_corpus", "corpus-bench", rows, path="data/corpus/corpus-bench"))
    events.append(row("sft_checkpoint", "sft-bench", ["corpus-bench"]))
    store.write_events(events)


# --- the measurements ------------------------------------------------------------------------


def timed(fn: Callable[[], Any], repeat: int, prepare: Callable[[], Any] | None = None) -> tuple[float, Any]:
    """Median seconds of `repeat` calls after an untimed warm-up, and the last result; `prepare`
    runs untimed before each call."""
    result = None
    seconds = []
    for attempt in range(repeat + 1):
        if prepare:
            prepare()
        started = time.perf_counter()
        result = fn()
        if attempt:
            seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def sensor_tick(world: World, name: str, cursor: str | None = None):
    sensor = build_definitions(world.settings).resolve_sensor_def(name)
    wiring = world.resources()

    def tick():
        needed = {k: wiring[k] for k in sensor.required_resource_keys}
        with build_sensor_context(instance=world.instance, cursor=cursor, resources=needed) as context:
            return sensor(context)

    return tick


def status_counts(world: World) -> dict[str, int]:
    """cleaned_dialogues per partition as the UI shows it: materialized, failed, in progress, missing."""
    keys = personas_partitions.get_partition_keys(dynamic_partitions_store=world.instance)
    status = world.instance.get_status_by_partition(CLEANED, keys, personas_partitions) or {}
    counts = {"materialized": 0, "failed": 0, "in_progress": 0, "missing": 0}
    names = {
        AssetPartitionStatus.MATERIALIZED: "materialized",
        AssetPartitionStatus.FAILED: "failed",
        AssetPartitionStatus.IN_PROGRESS: "in_progress",
        None: "missing",
    }
    for key in keys:
        counts[names[status.get(key)]] += 1
    return counts


def load_definitions(world: World) -> int:
    """What a code location does on load, and the partition keys the UI and a backfill list."""
    defs = build_definitions(world.settings)
    Definitions.validate_loadable(defs)
    defs.resolve_asset_graph()
    defs.resolve_job_def("persona_job")
    return len(personas_partitions.get_partition_keys(dynamic_partitions_store=world.instance))


def validate_cli(world: World) -> float:
    env = {
        **os.environ,
        "DAGSTER_HOME": str(world.home),
        "RP_ASSETS_DIR": str(world.settings.assets_dir),
        "RP_DATA_DIR": str(world.settings.data_dir),
        "RP_PROFILE": "demo",
        "PYTHONPATH": str(REPO),  # this checkout's rp_pipeline, whatever the venv has installed
    }
    dagster = Path(sys.executable).with_name("dagster")
    started = time.perf_counter()
    subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


@dataclass
class Figures:
    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # cleaned_dialogues' partitions by status
    checks: list[str] = field(default_factory=list)  # what was not as set up

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.checks.append(what)


def measure(world: World, repeat: int, cli: bool) -> Figures:
    f = Figures()
    s = f.seconds
    instance = world.instance
    s["definitions load"], loaded = timed(lambda: load_definitions(world), repeat)
    f.expect(loaded == world.n, f"definitions: {loaded} partition keys, expected {world.n}")
    if cli:
        s["dagster definitions validate"] = validate_cli(world)

    def automation(cursor=None):
        defs = build_definitions(world.settings)
        return lambda: evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=CORPUS, cursor=cursor
        )

    s["corpus automation, first tick"], first = timed(automation(), repeat)
    s["corpus automation, nothing changed"], quiet = timed(automation(first.cursor), repeat)
    f.expect(quiet.total_requested == 0, f"automation requested {quiet.total_requested} with nothing changed")

    s["new sensor, nothing new"], result = timed(sensor_tick(world, "new_personas_sensor"), repeat)
    f.expect(result.skip_reason is not None, "new sensor: something new with nothing added")
    s["removed sensor, nothing removed"], none_removed = timed(sensor_tick(world, "removed_personas_sensor"), repeat)
    f.expect(not none_removed.asset_events, "removed sensor: reports with nothing removed")

    s["status, cache up to date"], _ = timed(lambda: status_counts(world), repeat)

    new_cards = cards_from_seeds(world.settings.assets_dir, world.n + CHANGED)[-CHANGED:]
    world.added = [write_card(card, world.personas_dir).stem for card, _ in new_cards]
    s["new sensor, 10 new cards"], result = timed(sensor_tick(world, "new_personas_sensor"), repeat)
    requested = sorted(r.partition_key for r in result.run_requests)
    f.expect(requested == sorted(world.added), f"new sensor: requested {len(requested)} runs, expected {CHANGED}")
    started = time.perf_counter()
    for request in result.dynamic_partitions_requests:  # what the daemon does with the tick's result
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    s["add the 10 partitions"] = time.perf_counter() - started

    wipe = lambda: instance.wipe_asset_cached_status([CLEANED])  # noqa: E731
    s["status, cache rebuilt"], counts = timed(lambda: status_counts(world), repeat, prepare=wipe)
    expected = {
        "materialized": len(world.cleaned),
        "failed": len(world.failed),
        "in_progress": 0,
        "missing": world.n + CHANGED - len(world.cleaned) - len(world.failed),
    }
    f.counts = counts
    f.expect(counts == expected, f"status counts {counts}, expected {expected}")
    s["materialized partitions"], done = timed(lambda: instance.get_materialized_partitions(CLEANED), repeat)
    f.expect(len(done) == len(world.cleaned), f"{len(done)} materialized partitions, expected {len(world.cleaned)}")

    for key in world.added:
        report(instance, key, dialogues=True, cleaned=True)
    s["corpus automation, 10 changed"], changed = timed(automation(quiet.cursor), repeat)
    f.expect(changed.total_requested == 1, f"automation requested {changed.total_requested} for 10 changed")

    gone = [k for k in world.files if k in world.cleaned][:CHANGED]
    for key in gone:
        (world.personas_dir / f"{key}.yaml").unlink()
    s["removed sensor, 10 removed"], result = timed(sensor_tick(world, "removed_personas_sensor"), repeat)
    reported = sorted(o.partition for o in result.asset_events)
    f.expect(reported == sorted(gone), f"removed sensor reported {len(reported)}, expected {CHANGED}")
    f.expect(
        all(o.metadata["checkpoints"].value == ["sft_checkpoint:sft-bench"] for o in result.asset_events),
        "removed sensor: a removed card's checkpoint is missing from its impact",
    )
    return f


# --- the report ------------------------------------------------------------------------------

SENSOR_ROWS = (
    "new sensor, nothing new",
    "new sensor, 10 new cards",
    "removed sensor, nothing removed",
    "removed sensor, 10 removed",
)
HEADLINE = {
    "sensor": SENSOR_ROWS,
    "status": ("status, cache rebuilt",),
    "definitions": ("dagster definitions validate", "definitions load"),
    "automation": ("corpus automation, 10 changed",),
}


def slowest(seconds: dict[str, float], rows: list[str]) -> str:
    return max(rows, key=lambda row: seconds[row])


@dataclass
class Outcome:
    base: World
    big: World
    baseline: Figures
    scale: Figures


def run(n: int, baseline: int, repeat: int, cli: bool) -> Outcome:
    """Both sizes set up in a temp directory, then measured, the baseline first."""
    logging.disable(logging.WARNING)  # the removed sensor warns once per card, each tick
    try:
        with tempfile.TemporaryDirectory(prefix="persona_scale-") as tmp:
            base, big = build_world(baseline, Path(tmp) / "baseline"), build_world(n, Path(tmp) / "scale")
            try:
                return Outcome(base, big, measure(base, repeat, cli), measure(big, repeat, cli))
            finally:
                base.instance.dispose()
                big.instance.dispose()
    finally:
        logging.disable(logging.NOTSET)


def render(outcome: Outcome) -> tuple[list[str], int]:
    """The report (the table, what was not as set up or passed a bound, the headline last) and the
    exit status."""
    base, big, b, f = outcome.base, outcome.big, outcome.baseline.seconds, outcome.scale.seconds
    width = max(len(row) for row in f)
    lines = [
        f"setup: {base.n} personas ({base.events} events) in {base.setup_s:.1f} s; "
        f"{big.n} personas ({big.events} events) in {big.setup_s:.1f} s",
        f"{'operation':<{width}}  {f'{base.n} personas':>12}  {f'{big.n} personas':>13}  {'ratio':>7}",
    ]
    for row, seconds in f.items():
        lines.append(f"{row:<{width}}  {b[row]:>10.3f} s  {seconds:>11.3f} s  {seconds / b[row]:>6.1f}x")
    lines.append(
        f"cleaned_dialogues at {big.n}+{CHANGED} partitions: "
        + ", ".join(f"{count} {status}" for status, count in outcome.scale.counts.items())
    )
    wrong = [f"WRONG: {problem}" for problem in [*outcome.baseline.checks, *outcome.scale.checks]]
    over = [
        f"OVER BOUND: {row} {f[row]:.2f} s > {BOUNDS[kind]:.0f} s"
        for kind, rows in HEADLINE.items()
        for row in rows
        if f.get(row, 0.0) > BOUNDS[kind]
    ]
    picked = {kind: slowest(f, [r for r in rows if r in f]) for kind, rows in HEADLINE.items()}
    figure = {kind: f[row] for kind, row in picked.items()}
    ratio = {kind: f[row] / b[row] for kind, row in picked.items()}
    headline = (
        f"{big.n} personas: sensor tick {figure['sensor']:.2f} s, status query {figure['status']:.2f} s, "
        f"definitions load {figure['definitions']:.2f} s, corpus automation tick {figure['automation']:.2f} s "
        f"({ratio['sensor']:.1f} / {ratio['status']:.1f} / {ratio['definitions']:.1f} / {ratio['automation']:.1f}x "
        f"the {base.n}-persona baseline)"
    )
    return [*lines, *wrong, *over, headline], 1 if wrong or over else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--personas", type=int, help="partitions to register (default 5000; 500 with --quick)")
    parser.add_argument("--baseline", type=int, default=50, help="partitions of the baseline measured in the same run")
    parser.add_argument("--repeat", type=int, help="timed runs per figure (default 3; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="500 personas, 2 runs each, no CLI validate")
    args = parser.parse_args(argv)
    n = args.personas or (500 if args.quick else 5000)
    lines, status = render(run(n, args.baseline, args.repeat or (2 if args.quick else 3), cli=not args.quick))
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
