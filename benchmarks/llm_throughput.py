"""LLM-layer efficiency: multi-agent dialogue generation (the real simulator and LLMClient, i.e.
litellm's Router, retries and ledger) against the fake OpenAI-compatible server on 127.0.0.1
with a fixed latency per call, at concurrency 1, 8 and 64.

    python benchmarks/llm_throughput.py [--quick] [--latency 0.25] [--profile]

Efficiency = achieved calls/s ÷ the ideal (concurrency ÷ latency), both measured in the same run;
1.0 means the client adds nothing to the provider's latency. Enough dialogues run at once to
keep every slot busy (a dialogue's own turns are sequential).

The fake provider runs in a process of its own, as a provider does: served from ours, its
threads take the GIL and a share of the CPU from the event loop being measured. The same levels
are then run with it in our process, the setup of the first version of this script, to show
what that costs. Beside each level: the CPU our process spends per call, on the event-loop
thread and on others (litellm's workers; the server's, when it is ours). One event loop runs
every call, so its CPU per call caps the calls per second whatever the concurrency: the
ceiling line says where. `--profile` splits the event loop's time at concurrency 64 among
litellm's stages and ours (see `profiling.py`). Last line: efficiency at 64, provider apart.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from profiling import Stages, profile_stages, table

from rp_pipeline.core.models import TopicSet
from rp_pipeline.core.personas import load_persona_file
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.core.seeds import load_seed_variables, sample_seeds
from rp_pipeline.core.simulate import DialogueSimulator, SimulationConfig, simulate_many
from rp_pipeline.llm.client import LLMClient
from rp_pipeline.llm.config import load_llm_config
from rp_pipeline.settings import REPO_ROOT
from rp_pipeline_tests.fake_llm import FakeLLM, FakeLLMProcess

ASSETS = REPO_ROOT / "assets"
GOAL = 0.90  # efficiency at concurrency 64 (issue 15)

# Where the event loop's time goes, per call: litellm's layers from the outside in (a stage's
# functions below a deeper stage's entry belong to the deeper one), then ours.
LLM_STAGES: Stages = (
    ("litellm Router (deployment pick, retries, kwargs)", (("litellm/router.py", "acompletion"),)),
    ("litellm completion (params, transforms, response)", (("litellm/main.py", "acompletion"),)),
    ("OpenAI SDK and HTTP", (("openai/_base_client.py", "request"),)),
    (
        "litellm cost and logging payload (every call)",
        (
            ("litellm_core_utils/litellm_logging.py", "async_success_handler"),
            ("llm_response_utils/response_metadata.py", "update_response_metadata"),
            ("litellm_core_utils/litellm_logging.py", "__init__"),
            ("litellm/utils.py", "function_setup"),
        ),
    ),
    (
        "our rule checks on each turn",
        (("core/rules.py", "check_character_reply"), ("core/rules.py", "check_user_turn")),
    ),
    (
        "our prompts, cache keys, ledger",
        (
            ("core/prompts.py", "render"),
            ("core/ids.py", "content_hash"),
            ("core/ids.py", "stable_seed"),
            ("llm/client.py", "_cost"),
        ),
    ),
    ("waiting for responses (idle)", (("selectors.py", "select"),)),
)
LOOP = "event loop, simulator, the rest"


@dataclass(frozen=True)
class Level:
    concurrency: int
    dialogues: int
    calls: int
    seconds: float
    loop_cpu: float  # CPU seconds of the event-loop thread
    other_cpu: float  # CPU seconds of our other threads
    served: int  # requests the provider answered (every call reached it: no cache, no retries expected)

    def efficiency(self, latency: float) -> float:
        return self.calls / self.seconds / (self.concurrency / latency)

    def line(self, latency: float) -> str:
        rate, ideal = self.calls / self.seconds, self.concurrency / latency
        return (
            f"concurrency {self.concurrency:>2}: {self.dialogues:>3} dialogues, {self.calls:>4} calls in "
            f"{self.seconds:6.2f} s = {rate:6.1f} calls/s (ideal {ideal:5.1f})"
            f" -> efficiency {self.efficiency(latency):.2f}; our CPU per call: event loop "
            f"{1000 * self.loop_cpu / self.calls:.1f} ms, other threads {1000 * self.other_cpu / self.calls:.1f} ms"
        )


def run(
    concurrency: int,
    dialogues: int,
    latency: float,
    work: Path,
    *,
    own_process: bool = True,
    measure: Callable[[Callable[[], object]], object] = lambda generate: generate(),
) -> Level:
    """`dialogues` dialogues at `concurrency` against a fake provider with `latency` per call;
    `measure` runs the generation (the setup around it is not measured)."""
    fake = (FakeLLMProcess if own_process else FakeLLM)(latency_s=latency, violation_every=0).start()
    stopped = False
    try:
        config = load_llm_config(fake.write_config(work / f"m{concurrency}.yaml", max_concurrency=concurrency))
        client = LLMClient(config)  # no cache: every call goes to the server
        card = load_persona_file(ASSETS / "personas" / "lin-xiaoman.yaml")
        sample = sample_seeds(load_seed_variables(ASSETS / "seeds"), 1, seed=0)[0]
        topics = TopicSet(id="topics", sample_id=sample.id, keywords=["咖啡", "猫"])
        simulation = SimulationConfig(min_turns=5, max_turns=5, topic_every=2, moderator_every=2)
        simulator = DialogueSimulator(client, Prompts(ASSETS / "prompts"), RuleSet.load(ASSETS / "rules"), simulation)
        jobs = [(card, sample, topics, i) for i in range(dialogues)]
        started, loop_cpu, cpu = time.perf_counter(), time.thread_time(), time.process_time()
        measure(lambda: client.run(simulate_many(simulator, jobs)))
        seconds = time.perf_counter() - started
        loop_cpu, cpu = time.thread_time() - loop_cpu, time.process_time() - cpu
        fake.stop()
        stopped = True
        served = sum(fake.calls.values())
        return Level(concurrency, dialogues, len(client.calls), seconds, loop_cpu, cpu - loop_cpu, served)
    finally:
        if not stopped:
            fake.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer dialogues per level")
    parser.add_argument("--latency", type=float, default=0.25, help="seconds the fake provider takes per call")
    parser.add_argument("--profile", action="store_true", help="where the event loop's time goes at the top level")
    parser.add_argument("--levels", default="1,8,64", help="concurrency levels, the headline's last (default 1,8,64)")
    args = parser.parse_args(argv)
    latency, levels = args.latency, [int(c) for c in args.levels.split(",")]
    if latency <= 0 or min(levels) < 1:
        parser.error("the latency must be positive and every level at least 1")
    top_level = levels[-1]
    results: dict[bool, dict[int, Level]] = {True: {}, False: {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run(1, 1, 0.0, work)  # warm-up: imports, the router, lingua's models, the child's start
        for own_process in (True, False):
            print("fake provider in its own process:" if own_process else "fake provider in our process (as before):")
            for concurrency in levels:
                dialogues = max(2, concurrency * (1 if args.quick else 2))
                level = run(concurrency, dialogues, latency, work, own_process=own_process)
                results[own_process][concurrency] = level
                print("  " + level.line(latency))
        top = results[True][top_level]
        per_call = top.loop_cpu / top.calls
        print(
            f"ceiling: at {1000 * per_call:.1f} ms of event-loop CPU per call, one loop makes at most "
            f"{1 / per_call:.0f} calls/s = efficiency {min(1.0, latency / (top_level * per_call)):.2f} at "
            f"concurrency {top_level} and {latency} s latency; {GOAL:.2f} needs a latency of "
            f"{GOAL * top_level * per_call:.2f} s or more"
        )
        if args.profile:
            seconds: dict[str, float] = {}
            profiled = run(
                top_level,
                top_level,
                latency,
                work,
                measure=lambda generate: seconds.update(profile_stages(generate, LLM_STAGES, LOOP)),
            )
            print(f"\nwhere the event loop's time goes at concurrency {top_level} (cProfile, wall clock):")
            print("\n".join(table(seconds, (profiled.calls, "call"))))
    in_ours = results[False][top_level].efficiency(latency)
    print(
        f"LLM efficiency at concurrency {top_level}: {top.efficiency(latency):.2f} (goal {GOAL:.2f}; latency "
        f"{latency} s per call; fake provider in its own process, {in_ours:.2f} in ours)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
