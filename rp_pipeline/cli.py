"""`rp`: the command line of rp_pipeline (demo run, cleaning a JSONL file, lineage queries)."""

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
    from rp_pipeline.core.profile import load_profile
    from rp_pipeline.core.rules import RuleSet
    from rp_pipeline.settings import Settings

    settings = Settings()
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
        path = Path(args.profile)
        if not path.suffix:
            path = settings.assets_dir / "profiles" / f"{args.profile}.yaml"
        config = load_profile(path).cleaning
    result = clean_rows(rows, RuleSet.load(settings.assets_dir / "rules"), config)
    kept, report = write_outputs(result, args.out)
    print(summary(result, rows_in=len(rows) + len(errors), invalid=len(errors)))
    print(f"\nwrote {kept} and {report}")
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
    clean.set_defaults(func=clean_command)
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
