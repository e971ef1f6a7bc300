"""Lineage queries at scale: ingest N synthetic lineage events through `LineageStore.write_events`,
one segment per pipeline step as the assets write them, then time `trace(row_id)` on random
corpus rows and `checkpoints_for_persona(persona)` (what `rp lineage trace` and
`rp lineage checkpoints --persona` call).

    python benchmarks/lineage_query.py [--quick] [--events N] [--queries Q] [--root DIR]

The history is shaped like the real graph, grown in waves (each adds personas, then rebuilds
the corpus over everything so far, re-emitting older corpus rows, and trains on it):
seed table -> seed samples -> topics -> synthesized personas -> persona cards -> dialogues
(parents: card, sample, topic) -> cleaned rows (and drop/cut/repair events on the dialogue id)
-> corpus rows (some dialogues split in two, general rows whose parent was never emitted) ->
corpus version (fan-in: every corpus row) -> SFT -> DPO (also over the preference-pair
version) -> quantized model. Samples and topics fan out to many dialogues.

Full mode 10M events, `--quick` 1M. Last line: trace p50 at N events against the 50 ms goal.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rp_pipeline.lineage.compaction import segment_files
from rp_pipeline.lineage.models import LineageEvent
from rp_pipeline.lineage.store import LineageStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WAVES = 4
#: Events of one persona's data over the whole history (dialogues, cleaning, and its corpus
#: rows and pairs re-emitted by every later corpus build), per dialogue; sizes the history.
EVENTS_PER_DIALOGUE = 6.0
#: One pipeline step writes one segment; steps larger than this (the corpus) are written in
#: several, which bounds this script's memory and changes no answer.
MAX_SEGMENT_EVENTS = 200_000
DROP_REASONS = ("language_mismatch", "bad_format", "assistant_speak", "echo", "goodbye", "truncated")


@dataclass
class Step:
    """One asset materialization (a partition of it, if partitioned): its events, in order."""

    asset: str
    partition: str | None
    run_id: str
    ts: datetime
    rows: list[tuple[str, list[str], dict[str, str]]] = field(default_factory=list)
    drops: list[tuple[str, str, str]] = field(default_factory=list)  # row_id, reason, action

    def events(self) -> Iterator[LineageEvent]:
        """As `LineageResource.record` builds them: validated models, rows then drops."""
        model = "character-7b" if self.asset == "dialogues" else None
        for row_id, parents, attrs in self.rows:
            yield LineageEvent(
                run_id=self.run_id,
                asset=self.asset,
                partition=self.partition,
                row_id=row_id,
                parent_ids=parents,
                code_version="1",
                model=model,
                attrs=attrs,
                ts=self.ts,
            )
        for row_id, reason, action in self.drops:
            yield LineageEvent(
                run_id=self.run_id,
                asset=self.asset,
                partition=self.partition,
                row_id=row_id,
                kind="drop",
                reason=reason,
                detail=f"{action}: turn 3",
                code_version="1",
                attrs={"action": action},
                ts=self.ts,
            )

    def __len__(self) -> int:
        return len(self.rows) + len(self.drops)


@dataclass
class History:
    """What the queries sample: corpus rows of the last build and persona partition keys."""

    corpus_rows: list[str] = field(default_factory=list)
    personas: list[str] = field(default_factory=list)


def plan(events: int) -> tuple[int, int]:
    """(personas, dialogues per persona) for about `events` events in all."""
    dialogues = max(5, min(500, events // 2_000))
    return max(WAVES, round(events / (EVENTS_PER_DIALOGUE * dialogues))), dialogues


def history(events: int, seed: int, out: History) -> Iterator[Step]:
    """The pipeline's steps in the order they run; fills `out` as it goes."""
    rng = random.Random(seed)

    def new_id(prefix: str) -> str:
        return f"{prefix}-{rng.getrandbits(64):016x}"

    n_personas, per_persona = plan(events)
    table = new_id("seedtable")
    samples: list[str] = []
    topic_of: dict[str, str] = {}
    synthesized: list[tuple[str, list[str]]] = []
    cleaned: list[str] = []  # every kept cleaned row so far, in order
    corpus_ids: dict[str, list[str]] = {}  # cleaned row -> its corpus rows (stable across builds)
    pair_ids: dict[str, str] = {}  # cleaned row -> its preference pair, when it has one
    general = [(new_id("row"), [new_id("general")]) for _ in range(max(1, n_personas * per_persona // 10))]
    made = 0
    for wave in range(WAVES):
        day = T0 + timedelta(days=wave)
        run = f"run-w{wave}"
        if wave == 0:
            yield Step("seed_variables", None, f"{run}-seed", day, rows=[(table, [], {"tables": "9"})])
        wanted = (wave + 1) * n_personas // WAVES
        new_personas = wanted - made
        for _ in range(max(4, new_personas * per_persona // 50)):  # one sample (and topic) per ~50 dialogues
            samples.append(sample := new_id("seed"))
            topic_of[sample] = new_id("topic")
        # Unpartitioned assets re-materialize whole: older samples and topics are re-emitted.
        yield Step("seed_samples", None, f"{run}-seed", day, rows=[(s, [table], {"language": "zh"}) for s in samples])
        topics = [(topic_of[s], [s], {}) for s in samples]
        yield Step("topic_keywords", None, f"{run}-topics", day + timedelta(minutes=5), rows=topics)
        fresh = []
        for i in range(new_personas):
            sample = rng.choice(samples)
            if i % 2:  # half the cards are synthesized, half authored
                synthesized.append((key := new_id("syn"), [sample, topic_of[sample]]))
            else:
                key = f"persona-{made + i:05d}"
            fresh.append(key)
        cards = [(k, parents, {"name": k, "persona_id": k}) for k, parents in synthesized]
        yield Step("synthesized_personas", None, f"{run}-synth", day + timedelta(minutes=10), rows=cards)
        for i, key in enumerate(fresh):
            at = day + timedelta(minutes=20, seconds=i)
            card = new_id("card")
            parents = [key] if key.startswith("syn-") else []
            attrs = {"name": f"Name {key}", "persona_id": key, "source": "yaml"}
            yield Step("persona_cards", key, f"{run}-p{i}", at, rows=[(card, parents, attrs)])
            dialogues = Step("dialogues", key, f"{run}-p{i}", at + timedelta(minutes=30))
            cleaning = Step("cleaned_dialogues", key, f"{run}-p{i}", at + timedelta(minutes=60))
            for _ in range(per_persona):
                sample = rng.choice(samples)
                dialogue = new_id("dlg")
                dialogues.rows.append((dialogue, [card, sample, topic_of[sample]], {"persona_id": key}))
                fate = rng.random()
                if fate < 0.15:  # dropped, with one or two reason codes
                    for reason in rng.sample(DROP_REASONS, rng.choice((1, 2))):
                        cleaning.drops.append((dialogue, reason, "drop"))
                    continue
                if fate < 0.45:  # kept after a cut or a repair
                    cleaning.drops.append((dialogue, rng.choice(DROP_REASONS), "cut" if fate < 0.35 else "repair"))
                cleaning.rows.append((clean := new_id("clean"), [dialogue], {"persona_id": key}))
                cleaned.append(clean)
                corpus_ids[clean] = [new_id("row") for _ in range(2 if rng.random() < 0.15 else 1)]
                if rng.random() < 0.3:
                    pair_ids[clean] = new_id("pair")
            yield dialogues
            yield cleaning
        made = wanted
        out.personas += fresh
        # The corpus is rebuilt over every cleaned row so far: older rows are re-emitted.
        at = day + timedelta(hours=6)
        rows = [(r, [c], {"source": "roleplay", "language": "zh"}) for c in cleaned for r in corpus_ids[c]]
        out.corpus_rows = [r for r, _, _ in rows]
        rows += [(r, parents, {"source": "general", "language": "en"}) for r, parents in general]
        version = new_id("corpus")
        rows.append((version, [r for r, _, _ in rows], {"path": f"/data/corpus/{version}"}))
        held_back = [(rng.choice(cleaned), "language_mix", "drop") for _ in range(len(cleaned) // 100)]
        yield from _chunked(Step("training_corpus", None, f"{run}-corpus", at, rows=rows, drops=held_back))
        pairs = [(p, [c], {"origin": "regenerated"}) for c, p in pair_ids.items()]
        pairs_version = new_id("pairs")
        pairs.append((pairs_version, [p for p, _, _ in pairs], {"path": f"/data/preferences/{pairs_version}"}))
        yield from _chunked(Step("preference_pairs", None, f"{run}-pairs", at + timedelta(minutes=30), rows=pairs))
        sft, dpo, quant = new_id("sft"), new_id("dpo"), new_id("int8")
        for asset, row, parents, hours in (
            ("sft_checkpoint", sft, [version], 8),
            ("dpo_checkpoint", dpo, [sft, pairs_version], 10),
            ("quantized_model", quant, [dpo, version], 11),
        ):
            attrs = {"model_version": row, "path": f"/data/models/{row}"}
            yield Step(asset, None, f"{run}-{asset}", day + timedelta(hours=hours), rows=[(row, parents, attrs)])


def _chunked(step: Step) -> Iterator[Step]:
    """The step as segments of at most MAX_SEGMENT_EVENTS events, rows first, then drops."""
    rows, drops = step.rows, step.drops
    for start in range(0, len(step), MAX_SEGMENT_EVENTS):
        stop = start + MAX_SEGMENT_EVENTS
        yield Step(
            step.asset,
            step.partition,
            step.run_id,
            step.ts,
            rows=rows[start:stop],
            drops=drops[max(0, start - len(rows)) : max(0, stop - len(rows))],
        )


@dataclass
class Ingest:
    events: int
    segments: int
    build_s: float  # making and validating LineageEvent models, as LineageResource.record does
    write_s: float  # write_events, compaction included
    compact_s: float  # of which compaction (automatic, then one final `compact()`)
    merges: int
    files: int


def ingest(store: LineageStore, events: int, seed: int, out: History, progress: bool) -> Ingest:
    """Write the history step by step (the store compacts as it goes, as in production), then
    one final `compact()` as `rp lineage compact` does; times each part."""
    done = Ingest(0, 0, 0.0, 0.0, 0.0, 0, 0)
    compact = store.compact

    def timed_compact() -> int:  # the store calls self.compact() when segments pile up
        started = time.perf_counter()
        merged = compact()
        done.compact_s += time.perf_counter() - started
        done.merges += bool(merged)
        return merged

    store.compact = timed_compact  # type: ignore[method-assign]
    began = next_report = time.perf_counter()
    for step in history(events, seed, out):
        started = time.perf_counter()
        batch = list(step.events())
        written = time.perf_counter()
        store.write_events(batch)
        done.build_s += written - started
        done.write_s += time.perf_counter() - written
        done.events += len(batch)
        done.segments += 1
        if progress and time.perf_counter() >= next_report:
            print(f"  ingest: {done.events:,} events, {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
            next_report = time.perf_counter() + 10
    started = time.perf_counter()
    store.compact()
    done.write_s += time.perf_counter() - started
    done.files = len(segment_files(store.root / "events"))
    return done


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_queries(store: LineageStore, out: History, traces: int, personas: int, seed: int) -> dict[str, list[float]]:
    """Milliseconds per call, traces after one untimed warm-up (the persona query reads the
    whole store, which the ingest left in the page cache). Every answer is checked: a trace
    reaches the seed table through a dialogue, a persona's checkpoints are all there."""
    rng = random.Random(seed + 1)
    rows = rng.sample(out.corpus_rows, min(traces, len(out.corpus_rows)))
    cards = rng.sample(out.personas, min(personas, len(out.personas)))
    timings: dict[str, list[float]] = {"trace": [], "checkpoints": []}
    store.trace(rows[0])
    for row in rows:
        started = time.perf_counter()
        found = store.trace(row)
        timings["trace"].append((time.perf_counter() - started) * 1000)
        assets = {r["asset"] for r in found}
        if not {"training_corpus", "cleaned_dialogues", "dialogues", "persona_cards", "seed_variables"} <= assets:
            raise AssertionError(f"trace({row}) is incomplete: {sorted(assets)}")
    for persona in cards:
        started = time.perf_counter()
        found = store.checkpoints_for_persona(persona)
        timings["checkpoints"].append((time.perf_counter() - started) * 1000)
        if not {"sft_checkpoint", "dpo_checkpoint", "quantized_model"} <= {r["asset"] for r in found}:
            raise AssertionError(f"checkpoints_for_persona({persona}) found {len(found)} rows")
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1M events instead of 10M")
    parser.add_argument("--events", type=int, help="events to ingest (default 10M, 1M with --quick)")
    parser.add_argument("--queries", type=int, help="timed traces (default 50, 20 with --quick)")
    parser.add_argument(
        "--persona-queries", type=int, help="timed checkpoints_for_persona calls (default 3; each reads the store)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, help="keep the store here (default: a temp dir, removed)")
    args = parser.parse_args(argv)
    events = args.events or (1_000_000 if args.quick else 10_000_000)
    queries = args.queries or (20 if args.quick else 50)
    persona_queries = args.persona_queries or 3
    root = args.root or Path(tempfile.mkdtemp(prefix="lineage-bench-"))
    try:
        store = LineageStore(root)
        out = History()
        done = ingest(store, events, args.seed, out, progress=True)
        size = sum(p.stat().st_size for p in (root / "events").glob("*.parquet"))
        print(
            f"ingest: {done.events:,} events in {done.segments:,} segments, "
            f"{done.build_s + done.write_s:.1f} s = {done.build_s:.1f} s making LineageEvent models + "
            f"{done.write_s:.1f} s write_events, of which {done.compact_s:.1f} s compaction ({done.merges} merges) "
            f"-> {done.files} files, {size / 2**20:.0f} MiB"
        )
        timings = time_queries(store, out, queries, persona_queries, args.seed)
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    for name, label in (("trace", "trace(corpus row)"), ("checkpoints", "checkpoints_for_persona")):
        ms = timings[name]
        print(
            f"{label:<24} p50 {statistics.median(ms):8.1f} ms  p95 {percentile(ms, 0.95):8.1f} ms  "
            f"max {max(ms):8.1f} ms  ({len(ms)} calls)"
        )
    p50 = statistics.median(timings["trace"])
    print(f"lineage trace p50 at {done.events:,} events: {p50:.1f} ms (goal < 50 ms at 10M)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
