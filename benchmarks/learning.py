"""Does the factory make a better role-play model? Base -> SFT (LoRA), base -> SFT (full) and
SFT -> DPO, each played through the held-out eval scenarios beside the base (issue 13).

    python benchmarks/learning.py [--sft-steps N] [--dpo-steps N] [--eval-turns K] [--quick]
    python benchmarks/learning.py --rescore [--out OUT]   # the last run's replies, current rules

Data: the `learn` profile's corpus and on-policy preference pairs, as its run left them in its
data directory (default data/learn: `data/learn/assets/training_corpus.json` and
`preference_pairs.json`). When they are missing, the profile runs first, as `rp demo` runs it,
stopped after the pairs (generation, cleaning, corpus, the profile's SFT, pairs sampled from
it): over an hour on 2 cores. `--corpus FILE --pairs FILE` train on other files instead.

Training runs the project's own scripts (rp_pipeline/training/sft.py, dpo.py) with the configs
the `sft_checkpoint` and `dpo_checkpoint` assets write (`defs/training.py`), so LoRA and full
SFT differ only in `method` and see the same rows and steps; DPO starts from the SFT of the
profile's `training.method`, the model the pairs were sampled from.

Evaluation is the `eval_scores` asset's: the 12 scripted scenarios of assets/eval (10 held-out
personas in zh/en/ja/es/ko), the user turns answered in order by each version, sampled plainly
(temperature 0.7, no grammar), and scored by the automatic metrics of the cleaning rule engine
(`core/evaluation.automatic_metrics`), each with its 95% bootstrap interval over replies, and
the difference from the base with the interval of `core/judging.difference_interval`. On the
embedded base every tuned version is merged and exported to a Q8_0 GGUF (quantize.py) and
served by llama.cpp, and the base is the shipped GGUF, as `eval_scores` compares them; any other
base (the tiny model of `--quick`) generates in generate.py. No judge: the embedded 0.5B judge
fails calibration (agreement 0.06), so its scores would rank nothing.

Sizes: by default the profile's (learn: SFT 48 steps at batch 1 for LoRA and for full, DPO 16
steps) and every eval turn (87 replies per version). Measured on 2 cores with the data in place
(benchmarks/RESULTS.md, 2026-12-02): on a Xeon box LoRA SFT 7.1 min, full SFT 11.4 min, DPO 7.5
min, each version merged, exported and played ~3 min: 38.5 min; on an AMD EPYC box the same stages
took 80.1 min in fp32 (training 19.2, 25.6 and 19.3 min) and 46.8 min with bf16 autocast and freed
memory kept (training 9.3, 12.9 and 8.2 min; `training/common.py`, `train_precision`). `--sft-steps`, `--dpo-steps` and
`--eval-turns` trade figures for time.

Each stage reports its wall time and the peak resident memory of this process and every process
it started (training scripts, the llama.cpp server), sampled every 0.2 s. The table goes to
stdout and, with every figure, to OUT/results.json; the last line is the format-valid gain of
the best tuned version (highest format-valid, then rule-clean) over the base.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rp_pipeline.core.artifacts import Checkpoint, CorpusArtifact, PairsArtifact
from rp_pipeline.core.base_models import BaseModelSpec, load_base_models, resolve_base_model
from rp_pipeline.core.evaluation import (
    EvalScenario,
    automatic_metrics,
    load_eval_cards,
    load_scenarios,
    read_played_replies,
    scenario_generate_config,
    scenario_plays,
)
from rp_pipeline.core.judging import difference_interval
from rp_pipeline.core.launch import training_command
from rp_pipeline.core.personas import system_prompt
from rp_pipeline.core.profile import Profile, load_profile, profile_path
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.defs.training import base_model_config, dpo_job_config, sft_job_config
from rp_pipeline.settings import REPO_ROOT, Settings

# The assets of the learn profile's run this benchmark needs (train_job stopped after them).
DATA_ASSETS = ("training_corpus", "sft_checkpoint", "preference_pairs")
# (key in automatic_metrics, column); for the *_rate of a fault lower is better.
METRICS = (
    ("format_valid_rate", "format-valid"),
    ("rule_clean_rate", "rule-clean"),
    ("assistant_speak_rate", "assistant-speak"),
    ("in_language_rate", "in-language"),
    ("opening_echo_rate", "opening-echo"),
    ("self_repetition_rate", "self-repetition"),
)
BASE = "base"
QUICK = {
    "sft_steps": 2,
    "dpo_steps": 1,
    "sft_eval_rows": 2,
    "eval_turns": 1,
    "eval_max_new_tokens": 8,
    "max_length": 512,
}
T = TypeVar("T")


def say(message: str) -> None:
    print(f"[learning {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- figures (no models needed)


@dataclass
class VersionResult:
    """One model version played through the scenarios: its metrics (rates with _low/_high) and
    the per-reply values the differences are computed from."""

    name: str
    metrics: dict[str, float]
    values: dict[str, list[float]]


@dataclass
class StageCost:
    name: str
    wall_s: float
    peak_mb: float


@dataclass
class Difference:
    value: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def differences(result: VersionResult, base: VersionResult) -> dict[str, Difference]:
    """Per metric, the version's rate minus the base's and the 95% bootstrap interval of that
    difference (replies resampled within each version)."""
    out = {}
    for key, _ in METRICS:
        values, baseline = result.values[key], base.values[key]
        low, high = difference_interval(values, baseline)
        out[key] = Difference(round(mean(values) - mean(baseline), 4), low, high)
    return out


def best_version(results: Sequence[VersionResult]) -> VersionResult:
    """The tuned version with the highest format-valid rate, then rule-clean rate."""
    tuned = [r for r in results if r.name != BASE]
    return max(tuned, key=lambda r: (r.metrics["format_valid_rate"], r.metrics["rule_clean_rate"]))


def done_when(results: Sequence[VersionResult]) -> tuple[bool, str]:
    """Issue 13's bar: the best version at least 0.25 above the base in format-valid and
    rule-clean, both differences' intervals above zero, and in-language not lower."""
    base = next(r for r in results if r.name == BASE)
    best = best_version(results)
    diff = differences(best, base)
    checks = {
        "format-valid +0.25": diff["format_valid_rate"].value >= 0.25 and diff["format_valid_rate"].low > 0,
        "rule-clean +0.25": diff["rule_clean_rate"].value >= 0.25 and diff["rule_clean_rate"].low > 0,
        "in-language not lower": diff["in_language_rate"].value >= 0,
    }
    words = ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in checks.items())
    return all(checks.values()), f"{best.name} vs base: {words}"


def _rate(metrics: dict[str, float], key: str) -> str:
    return f"{metrics[key]:.2f} [{metrics[f'{key}_low']:.2f}, {metrics[f'{key}_high']:.2f}]"


def _signed(d: Difference) -> str:
    return f"{d.value:+.2f} [{d.low:+.2f}, {d.high:+.2f}]{' *' if d.excludes_zero else ''}"


def _table(header: Sequence[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def render(results: Sequence[VersionResult], stages: Sequence[StageCost], notes: Sequence[str] = ()) -> str:
    """The tables (markdown): rates per version, differences from the base, cost per stage;
    then `notes`, the done-when verdict and, last, the format-valid gain line."""
    base = next(r for r in results if r.name == BASE)
    columns = [label for _, label in METRICS]
    lines = ["Rates per version (95% bootstrap interval over replies); for the last four, lower is better:", ""]
    lines += _table(
        ["version", "replies", *columns],
        [[r.name, f"{r.metrics['replies']:.0f}", *(_rate(r.metrics, k) for k, _ in METRICS)] for r in results],
    )
    lines += ["", "Difference from the base (95% bootstrap interval; * excludes zero):", ""]
    lines += _table(
        ["version", *columns],
        [[r.name, *(_signed(d) for d in differences(r, base).values())] for r in results if r.name != BASE],
    )
    lines += ["", "Cost per stage (peak: resident memory of the benchmark and every process it started):", ""]
    lines += _table(
        ["stage", "wall", "peak memory"],
        [[s.name, f"{s.wall_s / 60:.1f} min", f"{s.peak_mb / 1024:.1f} GB"] for s in stages]
        + [["total", f"{sum(s.wall_s for s in stages) / 60:.1f} min", ""]],
    )
    lines += ["", *notes]
    _, verdict = done_when(results)
    lines.append(f"done when: {verdict}")
    best = best_version(results)
    gain = best.metrics["format_valid_rate"] - base.metrics["format_valid_rate"]
    lines.append(f"format-valid gain: {gain:+.2f}")
    return "\n".join(lines)


# ---------------------------------------------------------------- measuring a stage


class PeakMemory:
    """Peak resident memory (MB) of this process and all its descendants together, sampled in
    a thread while the block runs."""

    def __init__(self, interval_s: float = 0.2):
        self.interval_s, self.peak_mb = interval_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while True:
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:  # ended between the listing and the reading
                    continue
            self.peak_mb = max(self.peak_mb, total / 2**20)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def stage(name: str, costs: list[StageCost], work: Callable[[], T]) -> T:
    say(f"{name} ...")
    started = time.perf_counter()
    with PeakMemory() as memory:
        result = work()
    costs.append(StageCost(name, round(time.perf_counter() - started, 1), round(memory.peak_mb, 1)))
    say(f"{name}: {costs[-1].wall_s / 60:.1f} min, peak {memory.peak_mb / 1024:.1f} GB")
    return result


# ---------------------------------------------------------------- the run


@dataclass
class Run:
    """Where this run writes, and what every stage shares."""

    profile: Profile
    spec: BaseModelSpec
    base: dict[str, Any]  # base_model_dir (+ gguf_file for the embedded base)
    corpus_file: str
    pairs_file: str
    out: Path
    model_map: Path
    eval_turns: int | None
    costs: list[StageCost] = field(default_factory=list)

    @property
    def template(self) -> str | None:
        """The embedded base's GGUF: tuned versions are exported against it and served by llama.cpp."""
        return self.base.get("gguf_file")


def run_script(script: str, config: dict[str, Any], work_dir: Path, python: str = sys.executable) -> None:
    """A training script as a plain subprocess (as the local launcher runs it, without Pipes)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / f"{script}_config.json"
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    # its output goes to stderr (fd 2) with the progress: stdout is the table alone
    done = subprocess.run(training_command(script, path, python=python), env=env, stdout=2, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{script} failed (exit {done.returncode}); its config: {path}")


def train(run: Run) -> dict[str, Checkpoint]:
    """base -> SFT (LoRA), base -> SFT (full), SFT of the profile's method -> DPO."""
    models = run.out / "models"
    checkpoints: dict[str, Checkpoint] = {}
    for method in ("lora", "full"):
        profile = run.profile.model_copy(
            update={"training": run.profile.training.model_copy(update={"method": method})}
        )
        weights = models / f"sft-{method}" / ("adapter" if method == "lora" else "model")
        config = sft_job_config(profile, run.spec, run.base, run.corpus_file, weights)
        steps = profile.training.sft_steps
        stage(
            f"train sft-{method} ({steps} steps)",
            run.costs,
            functools.partial(run_script, "sft", config, weights.parent),
        )
        checkpoints[f"sft-{method}"] = Checkpoint(
            version=f"sft-{method}",
            stage="sft",
            method=method,
            base_model_dir=run.base["base_model_dir"],
            model_dir=str(weights) if method == "full" else None,
            adapters=[str(weights)] if method == "lora" else [],
            corpus_version=Path(run.corpus_file).parent.name,
            steps={"sft": steps},
        )
    sft = checkpoints[f"sft-{run.profile.training.method}"]
    adapter = models / "dpo" / "adapter"
    config = dpo_job_config(run.profile, run.spec, sft, run.pairs_file, adapter)
    steps = run.profile.training.dpo_steps
    stage(
        f"train dpo on {sft.version} ({steps} steps)",
        run.costs,
        functools.partial(run_script, "dpo", config, adapter.parent),
    )
    checkpoints["dpo"] = sft.model_copy(
        update={
            "version": "dpo",
            "stage": "dpo",
            "adapters": [*sft.adapters, str(adapter)],
            "steps": {**sft.steps, "dpo": steps},
            "sft_version": sft.version,
        }
    )
    return checkpoints


def scenarios_and_prompts(eval_turns: int | None) -> tuple[list[EvalScenario], dict[str, str], dict, RuleSet]:
    assets = Settings().assets_dir
    rules = RuleSet.load(assets / "rules")
    cards = load_eval_cards(assets / "eval", rules)
    scenarios = load_scenarios(assets / "eval" / "scenarios.yaml", cards)
    if eval_turns is not None:
        scenarios = [s.model_copy(update={"user_turns": s.user_turns[:eval_turns]}) for s in scenarios]
    prompts = Prompts(assets / "prompts")
    return scenarios, {key: system_prompt(card, prompts) for key, card in cards.items()}, cards, rules


def play(run: Run, name: str, checkpoint: Checkpoint | None, scenarios, system_prompts) -> dict[str, list[str]]:
    """{scenario id: replies} of one version (None: the base)."""
    work = run.out / "eval" / name
    work.mkdir(parents=True, exist_ok=True)
    max_tokens = run.profile.training.eval_max_new_tokens
    if run.template is None:  # any base but the embedded one: transformers in generate.py
        model = checkpoint.dense_dir if checkpoint else run.base["base_model_dir"]
        output = work / "replies.jsonl"
        dense = {"model_dir": model, "kind": "dense", "adapters": checkpoint.adapters if checkpoint else []}
        seed = run.profile.seed
        run_script(
            "generate", scenario_generate_config(dense, scenarios, system_prompts, work, output, max_tokens, seed), work
        )
        return read_played_replies(output)
    from rp_pipeline.defs.evaluation import play_on_llama_cpp
    from rp_pipeline.defs.quantize import quantize_job
    from rp_pipeline.defs.resources import LLMResource

    gguf = run.template
    if checkpoint is not None:
        # a few held-out rows for quantize.py's agreement check: it is not what is measured here
        training = run.profile.training.model_copy(update={"quantization": "gguf_q8_0", "heldout_rows": 4})
        script, config, python = quantize_job(
            training, run.profile.seed, checkpoint, run.corpus_file, work / "model", run.template
        )
        run_script(script, config, work, python)
        gguf = str(work / "model" / "model.gguf")
    llm = LLMResource(config_path=str(run.model_map), cache_path=str(run.out / "eval" / "llm_cache.sqlite"))
    replies, _ = play_on_llama_cpp(llm, gguf, name, scenarios, system_prompts, work, max_tokens)
    return replies


def evaluate(run: Run, checkpoints: dict[str, Checkpoint]) -> list[VersionResult]:
    scenarios, system_prompts, cards, rules = scenarios_and_prompts(run.eval_turns)
    shutil.rmtree(
        run.out / "eval", ignore_errors=True
    )  # its cache too: served names repeat across runs, weights do not
    turns = sum(len(s.user_turns) for s in scenarios)
    results = []
    for name, checkpoint in [(BASE, None), *checkpoints.items()]:
        how = (
            "the shipped GGUF on llama.cpp"
            if run.template and checkpoint is None
            else ("merged, Q8_0 GGUF on llama.cpp" if run.template else "transformers")
        )
        replies = stage(
            f"eval {name} ({len(scenarios)} scenarios, {turns} replies; {how})",
            run.costs,
            functools.partial(play, run, name, checkpoint, scenarios, system_prompts),
        )
        (run.out / "eval" / name / "played.json").write_text(json.dumps(replies, ensure_ascii=False, indent=1))
        metrics, values = automatic_metrics(scenario_plays(scenarios, cards, replies), rules)
        results.append(VersionResult(name, metrics, values))
    return results


def rescore(out: Path) -> str:
    """The table of the run in `out` with its played replies scored again under the current
    rules: seconds and no model, for when the rules change after a run. Its costs and training
    figures are the run's; results.json gets the new scores and when they were made."""
    path = out / "results.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no results of an earlier run to score again")
    saved = json.loads(path.read_text(encoding="utf-8"))
    scenarios, _prompts, cards, rules = scenarios_and_prompts(saved.get("eval_turns"))
    results = []
    for name in (r["name"] for r in saved["results"]):
        replies = json.loads((out / "eval" / name / "played.json").read_text(encoding="utf-8"))
        metrics, values = automatic_metrics(scenario_plays(scenarios, cards, replies), rules)
        results.append(VersionResult(name, metrics, values))
    saved["results"] = [asdict(r) for r in results]
    saved["rescored_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path.write_text(json.dumps(saved, ensure_ascii=False, indent=1), encoding="utf-8")
    return render(results, [StageCost(**s) for s in saved["stages"]], saved["notes"])


def training_notes(run: Run) -> list[str]:
    """What the training scripts reported: SFT's held-out loss, DPO's reward accuracy and margin."""
    notes = []
    for name in ("sft-lora", "sft-full"):
        sub = "adapter" if name == "sft-lora" else "model"
        m = json.loads((run.out / "models" / name / sub / "metrics.json").read_text(encoding="utf-8"))
        held = (
            f"held-out loss {m['eval_loss_before']:.3f} -> {m['eval_loss']:.3f} on {m['eval_rows']} rows"
            if m.get("eval_loss") is not None
            else "no held-out rows"
        )
        notes.append(f"{name}: {m['steps']} steps on {m['train_rows']} rows, final loss {m['final_loss']:.3f}, {held}")
    m = json.loads((run.out / "models" / "dpo" / "adapter" / "metrics.json").read_text(encoding="utf-8"))
    notes.append(
        f"dpo: {m['steps']} steps on {m['train_rows']} pairs, final loss {m['final_loss']:.3f}, reward accuracy "
        f"{m['final_reward_accuracy']:.2f}, reward margin {m['final_reward_margin']:+.3f}"
    )
    return notes


# ---------------------------------------------------------------- data and arguments


def learn_data(settings: Settings, regenerate: bool) -> tuple[str, str]:
    """(corpus messages JSONL, TRL pairs JSONL) of the profile's run in its data directory;
    the run is made first (stopped after the pairs) when they are missing."""
    outputs = settings.data_dir / "assets"
    if regenerate or not all((outputs / f"{name}.json").is_file() for name in DATA_ASSETS):
        from rp_pipeline.demo import run_demo

        say(f"running the {settings.profile} profile up to its on-policy pairs in {settings.data_dir}")
        if run_demo(settings, train_assets=DATA_ASSETS) != 0:
            raise SystemExit(f"the {settings.profile} profile's run failed; see above")
    corpus = CorpusArtifact.model_validate_json((outputs / "training_corpus.json").read_text(encoding="utf-8"))
    pairs = PairsArtifact.model_validate_json((outputs / "preference_pairs.json").read_text(encoding="utf-8"))
    say(f"corpus {corpus.version} ({corpus.rows} rows), pairs {pairs.version} ({pairs.pairs} pairs)")
    return corpus.for_scripts(settings.local_dir).messages, pairs.file  # the scripts open local files


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--profile", default="learn", help="run profile (default: learn)")
    parser.add_argument("--data-dir", type=Path, help="the profile's data directory (default: data/<profile>)")
    parser.add_argument("--out", type=Path, help="where models, replies and results go (default: DATA_DIR/learning)")
    parser.add_argument("--sft-steps", type=int, help="SFT steps, LoRA and full alike (default: the profile's)")
    parser.add_argument("--dpo-steps", type=int, help="DPO steps (default: the profile's)")
    parser.add_argument("--eval-turns", type=int, help="scripted user turns per scenario to answer (default: all)")
    parser.add_argument("--corpus", type=Path, help="train on this messages JSONL instead of the profile's corpus")
    parser.add_argument("--pairs", type=Path, help="and on these TRL preference pairs (JSONL)")
    parser.add_argument("--base-model", help="a model directory instead of the profile's base")
    parser.add_argument("--regenerate", action="store_true", help="run the profile again even if its outputs exist")
    parser.add_argument(
        "--rescore", action="store_true", help="score OUT's played replies again under the current rules; no training"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"the tiny test model (unless --base-model), sizes {QUICK}"
    )
    args = parser.parse_args(argv)
    if (args.corpus is None) != (args.pairs is None):
        parser.error("--corpus and --pairs go together")
    for name in ("sft_steps", "dpo_steps", "eval_turns"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def data_and_out_dirs(args: argparse.Namespace) -> tuple[Path, Path]:
    """The profile's data directory and where this benchmark writes (default DATA_DIR/learning)."""
    data_dir = args.data_dir or REPO_ROOT / "data" / Path(args.profile).stem
    return data_dir, (args.out or data_dir / "learning").resolve()


def prepare(args: argparse.Namespace) -> Run:
    assets = Settings().assets_dir
    data_dir, out = data_and_out_dirs(args)
    settings = Settings(data_dir=data_dir, profile=args.profile)
    profile = load_profile(profile_path(args.profile, assets))
    out.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, Any] = {}
    if args.quick:
        sizes = {k: v for k, v in QUICK.items() if k != "eval_turns"}
        if args.base_model is None:
            from rp_pipeline_tests.tiny_model import build_tiny_model

            args.base_model = str(build_tiny_model(out / "tiny-model"))
    sizes |= {k: v for k, v in (("sft_steps", args.sft_steps), ("dpo_steps", args.dpo_steps)) if v is not None}
    if args.base_model is not None:
        sizes |= {"base_model": str(Path(args.base_model).resolve()), "quantization": "int8_weight_only"}
    training = profile.training.model_copy(update=sizes)
    profile = profile.model_copy(update={"training": training})
    spec = resolve_base_model(
        training.base_model, load_base_models(assets / "models" / "base_models.yaml"), training.max_length
    )
    if args.corpus is not None:
        corpus_file, pairs_file = str(args.corpus.resolve()), str(args.pairs.resolve())
    else:
        corpus_file, pairs_file = learn_data(settings, args.regenerate)
    eval_turns = args.eval_turns or (QUICK["eval_turns"] if args.quick else None)
    return Run(
        profile=profile,
        spec=spec,
        base=base_model_config(training, spec),
        corpus_file=corpus_file,
        pairs_file=pairs_file,
        out=out,
        model_map=settings.llm_config_path,
        eval_turns=eval_turns,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rescore:
        print(rescore(data_and_out_dirs(args)[1]), flush=True)
        return 0
    started = time.perf_counter()
    run = prepare(args)
    training = run.profile.training
    say(
        f"profile {run.profile.name}: base {training.base_model}, SFT {training.sft_steps} steps (lora and full, "
        f"batch {training.batch_size}, max_length {training.max_length}), DPO {training.dpo_steps} steps on "
        f"sft-{training.method}; out {run.out}"
    )
    checkpoints = train(run)
    results = evaluate(run, checkpoints)
    notes = training_notes(run)
    table = render(results, run.costs, notes)
    (run.out / "results.json").write_text(
        json.dumps(
            {
                "profile": run.profile.name,
                "training": training.model_dump(),
                "eval_turns": run.eval_turns,
                "results": [asdict(r) for r in results],
                "stages": [asdict(s) for s in run.costs],
                "notes": notes,
                "wall_s": round(time.perf_counter() - started, 1),
            },
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
    print(table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
