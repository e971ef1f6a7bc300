"""`rp`: the command line of rp_pipeline (demo run, lineage queries)."""

from __future__ import annotations

import argparse
import sys

from rp_pipeline.lineage import cli as lineage_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="materialize the whole asset graph on the embedded default model")
    demo.add_argument("--profile", help="run profile name under assets/profiles/ or a YAML path (default: demo)")
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
