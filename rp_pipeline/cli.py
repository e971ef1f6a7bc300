"""`rp`: the command line of rp_pipeline (demo run, cleaning a JSONL file, judge calibration, lineage queries)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rp_pipeline.lineage import cli as lineage_cli

CLEAN_HELP = """Clean a JSONL file of {"id", "language", "messages": [{"role", "content"}]} rows (optionally
"opening_line" and "character_name") with the pipeline's cleaning rules, for both speakers. Writes
OUT/kept.jsonl (kept rows, repaired or cut, same schema) and OUT/report.jsonl (one row per flagged
turn: id, turn, role, every code of the turn, action; turn and role are null for row-level codes
such as duplicates), and prints a summary per reason code.
An invalid row is reported on stderr with its line number and field and skipped. Exit status:
0 when the file was cleaned, 1 when no row in it was valid, 2 when it cannot be read."""


def clean_command(args: argparse.Namespace) -> int:
    from rp_pipeline.core.cleaning import CleaningConfig, clean_rows
    from rp_pipeline.core.cleaning.files import read_rows, summary, write_outputs
    from rp_pipeline.core.profile import load_profile, profile_path
    from rp_pipeline.core.rules import RuleSet
    from rp_pipeline.llm.cleaner import read_endings
    from rp_pipeline.settings import Settings

    settings = Settings(**({"llm_config": args.config} if args.config else {}))
    try:
        rows, errors = read_rows(args.input)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"rp clean: cannot read {args.input}: {exc}", file=sys.stderr)
        return 2
    for error in errors:
        print(error, file=sys.stderr)
    if not rows:
        print(f"rp clean: no valid row in {args.input}", file=sys.stderr)
        return 1
    config = CleaningConfig()
    if args.profile:
        config = load_profile(profile_path(args.profile, settings.assets_dir)).cleaning
    unfinished = {}
    if args.read_endings:
        unfinished = read_endings(rows, settings.llm_config_path, settings.local_dir, config.ending_min_probability)
    result = clean_rows(rows, RuleSet.load(settings.assets_dir / "rules"), config, unfinished)
    kept, report = write_outputs(result, args.out)
    print(summary(result, rows_in=len(rows) + len(errors), invalid=len(errors)))
    print(f"\nwrote {kept} and {report}")
    return 0


def calibrate_command(args: argparse.Namespace) -> int:
    """Run the configured judge on the calibration set, in both orders, and print its verdict."""
    from rp_pipeline.core.evaluation import load_eval_cards
    from rp_pipeline.core.judging import calibrate, load_calibration
    from rp_pipeline.core.profile import load_profile, profile_path
    from rp_pipeline.core.prompts import Prompts
    from rp_pipeline.core.rules import RuleSet
    from rp_pipeline.llm.client import role_client
    from rp_pipeline.llm.config import load_llm_config
    from rp_pipeline.settings import Settings

    settings = Settings(**({"llm_config": args.config} if args.config else {}))
    assets = settings.assets_dir
    profile = load_profile(profile_path(args.profile, assets))
    cards = load_eval_cards(assets / "eval", RuleSet.load(assets / "rules"))
    items = load_calibration(assets / "eval" / "calibration", cards)
    config = load_llm_config(settings.llm_config_path)
    with role_client(config, "judge", settings.local_dir) as client:
        judge = client.routed_model("judge")
        print(f"judging {len(items)} calibration items in both orders with {judge}", file=sys.stderr)
        threshold = profile.evaluation.calibration_threshold
        result = client.run(calibrate(client, Prompts(assets / "prompts"), items, cards, threshold, judge))
    print(f"judge:          {result.judge}")
    print(f"items:          {result.items} ({result.scored_items} with a known better reply)")
    print(f"agreement:      {result.agreement:.3f} (threshold {result.threshold:.2f})")
    print(f"position bias:  {result.position_bias:+.3f} (+1: always the first reply, -1: always the second)")
    print(f"unparsed:       {result.unparsed} verdicts")
    print("by category:    " + ", ".join(f"{k} {v:.2f}" for k, v in result.by_category.items()))
    print(f"verdict:        {result.verdict}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="materialize the whole asset graph on the embedded default model")
    demo.add_argument("--profile", help="run profile name under assets/profiles/ or a YAML path (default: demo)")
    clean = commands.add_parser("clean", help="clean a JSONL file of chat rows", description=CLEAN_HELP)
    clean.add_argument("input", type=Path, help="JSONL file, one chat row per line")
    clean.add_argument("--out", type=Path, required=True, help="output directory")
    clean.add_argument("--profile", help="take the cleaning settings from this run profile (default: built-in)")
    clean.add_argument(
        "--read-endings",
        action="store_true",
        help="also ask the model map's `cleaner` role whether Chinese/Japanese replies stop mid-clause, which "
        "no word list can tell (starts the bundled 1.5B model with the default map)",
    )
    clean.add_argument("--config", type=Path, help="role -> model map (default: RP_LLM_CONFIG or embedded)")
    clean.set_defaults(func=clean_command)
    evaluation = commands.add_parser("eval", help="evaluation tools")
    eval_commands = evaluation.add_subparsers(dest="eval_command", required=True)
    calibrate = eval_commands.add_parser(
        "calibrate",
        help="run the judge on the calibration set (assets/eval/calibration/) and print agreement, bias, verdict",
    )
    calibrate.add_argument("--config", type=Path, help="role -> model map (default: RP_LLM_CONFIG or embedded)")
    calibrate.add_argument("--profile", default="demo", help="profile with the calibration threshold (default: demo)")
    calibrate.set_defaults(func=calibrate_command)
    lineage_cli.register(commands)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from rp_pipeline.demo import run_demo
        from rp_pipeline.settings import Settings

        settings = Settings(**({"profile": args.profile} if args.profile else {}))
        return run_demo(settings)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
