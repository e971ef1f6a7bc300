"""LLM-layer efficiency: multi-agent dialogue generation (the real simulator and LLMClient, i.e.
litellm's Router, retries and ledger) against the fake OpenAI-compatible server on 127.0.0.1
with a fixed latency per call, at concurrency 1, 8 and 64.

    python benchmarks/llm_throughput.py [--quick] [--latency 0.25]

Efficiency = achieved calls/s ÷ the ideal (concurrency ÷ latency), both measured in the same run;
1.0 means the client adds nothing to the provider's latency. Enough dialogues run at once to
keep every slot busy (a dialogue's own turns are sequential). Last line: efficiency at 64.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rp_pipeline.core.models import TopicSet
from rp_pipeline.core.personas import load_persona_file
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.core.seeds import load_seed_variables, sample_seeds
from rp_pipeline.core.simulate import DialogueSimulator, SimulationConfig, simulate_many
from rp_pipeline.llm.client import LLMClient
from rp_pipeline.llm.config import load_llm_config
from rp_pipeline.settings import REPO_ROOT
from rp_pipeline_tests.fake_llm import FakeLLM

ASSETS = REPO_ROOT / "assets"


def run(concurrency: int, dialogues: int, latency: float, work: Path) -> tuple[int, float]:
    """(calls made, seconds) for `dialogues` dialogues at `concurrency`."""
    fake = FakeLLM(latency_s=latency, violation_every=0).start()
    try:
        config = load_llm_config(fake.write_config(work / f"m{concurrency}.yaml", max_concurrency=concurrency))
        client = LLMClient(config)  # no cache: every call goes to the server
        card = load_persona_file(ASSETS / "personas" / "lin-xiaoman.yaml")
        sample = sample_seeds(load_seed_variables(ASSETS / "seeds"), 1, seed=0)[0]
        topics = TopicSet(id="topics", sample_id=sample.id, keywords=["咖啡", "猫"])
        simulation = SimulationConfig(min_turns=5, max_turns=5, topic_every=2, moderator_every=2)
        simulator = DialogueSimulator(client, Prompts(ASSETS / "prompts"), RuleSet.load(ASSETS / "rules"), simulation)
        jobs = [(card, sample, topics, i) for i in range(dialogues)]
        started = time.perf_counter()
        client.run(simulate_many(simulator, jobs))
        return len(client.calls), time.perf_counter() - started
    finally:
        fake.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer dialogues per level")
    parser.add_argument("--latency", type=float, default=0.25, help="seconds the fake provider takes per call")
    args = parser.parse_args(argv)
    efficiency = {}
    with tempfile.TemporaryDirectory() as tmp:
        run(1, 1, 0.0, Path(tmp))  # warm-up: imports, the router, lingua's models
        for concurrency in (1, 8, 64):
            dialogues = max(2, concurrency * (1 if args.quick else 2))
            calls, seconds = run(concurrency, dialogues, args.latency, Path(tmp))
            ideal = concurrency / args.latency
            efficiency[concurrency] = calls / seconds / ideal
            print(
                f"concurrency {concurrency:>2}: {dialogues:>3} dialogues, {calls:>4} calls in {seconds:6.2f} s = "
                f"{calls / seconds:7.1f} calls/s (ideal {ideal:6.1f}) -> efficiency {efficiency[concurrency]:.2f}"
            )
    print(f"LLM efficiency at concurrency 64: {efficiency[64]:.2f} (latency {args.latency} s per call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
