"""`rp lineage …`: answer lineage questions from a terminal, without Dagster running.

`register(subparsers)` plugs the command group into the `rp` console entry point;
`main()` runs the same commands standalone (`python -m rp_pipeline.lineage.cli trace ID`).
Every leaf sets `func(args) -> int` (the exit code): 0 on success, 2 when the store,
row or persona asked for does not exist (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rp_pipeline.core.storage import Location, location
from rp_pipeline.lineage.store import LineageStore

NOT_FOUND = 2


def default_root() -> Location:
    """`$RP_LINEAGE_DIR`, else `$RP_DATA_DIR/lineage`, else `./data/lineage` (read at call
    time, so tests and wrappers can set the environment after import). Either may be an
    object-storage URL (s3://bucket/rp/lineage)."""
    if explicit := os.environ.get("RP_LINEAGE_DIR"):
        return location(explicit)
    if data_dir := os.environ.get("RP_DATA_DIR"):
        return location(data_dir) / "lineage"
    return Path("data") / "lineage"


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `lineage {trace,checkpoints,drops,costs,compact}` to an existing subparsers object."""
    parser = subparsers.add_parser(
        "lineage",
        help="query row-level lineage (trace, checkpoints, drops, costs)",
        description="Query the row-level lineage store.",
    )
    add_commands(parser.add_subparsers(dest="lineage_command", metavar="COMMAND", required=True))
    return parser


def add_commands(subparsers: Any) -> None:
    """The query commands plus `compact`, each with `--root`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root",
        type=location,
        default=None,
        help="lineage directory or URL (default: $RP_LINEAGE_DIR, else $RP_DATA_DIR/lineage, else ./data/lineage)",
    )

    trace = subparsers.add_parser("trace", parents=[common], help="a row and all its ancestors")
    trace.add_argument("row_id")
    trace.add_argument("--limit", type=int, default=200, help="rows to print, 0 for all (default 200)")
    trace.set_defaults(func=cmd_trace)

    checkpoints = subparsers.add_parser("checkpoints", parents=[common], help="checkpoints trained on a persona's data")
    checkpoints.add_argument("--persona", required=True, help="partition key, card name or persona_id")
    checkpoints.set_defaults(func=cmd_checkpoints)

    drops = subparsers.add_parser("drops", parents=[common], help="dropped rows by asset and reason")
    drops.add_argument("--asset", default=None, help="only this asset")
    drops.set_defaults(func=cmd_drops)

    costs = subparsers.add_parser("costs", parents=[common], help="LLM calls, tokens and cost")
    costs.set_defaults(func=cmd_costs)

    compact = subparsers.add_parser(
        "compact", parents=[common], help="merge small segments (safe while the pipeline runs)"
    )
    compact.set_defaults(func=cmd_compact)


# --- commands ------------------------------------------------------------------------


def cmd_trace(args: argparse.Namespace) -> int:
    def run(store: LineageStore) -> None:
        rows = store.trace(args.row_id)
        table = [
            {
                "depth": r["depth"],
                "asset": r["asset"],
                "partition": r["partition"],
                "row_id": r["row_id"],
                "kind": r["kind"],
                # Why a row is gone matters more than who wrote it.
                "reason/model": r["reason"] if r["kind"] == "drop" else r["model"],
            }
            for r in rows
        ]
        shown = table if args.limit <= 0 else table[: args.limit]
        _print_table(f"Lineage of {args.row_id} ({len(rows)} rows, depth 0 = the row)", shown)
        if len(shown) < len(table):
            print(f"... {len(table) - len(shown)} more rows (--limit 0 shows all)")

    return _run(args, run)


def cmd_checkpoints(args: argparse.Namespace) -> int:
    def run(store: LineageStore) -> None:
        rows = store.checkpoints_for_persona(args.persona)
        table = [
            {
                "asset": r["asset"],
                "row_id": r["row_id"],
                "attrs": ", ".join(f"{k}={v}" for k, v in sorted(r["attrs"].items())),
                "ts": _when(r["ts"]),
            }
            for r in rows
        ]
        _print_table(f"Checkpoints built from persona {args.persona} ({len(rows)})", table)

    return _run(args, run)


# What each action of a drop event did, as the heading of its table.
ACTION_TITLES = {
    "drop": "Dropped rows",
    "cut": "Cut rows (kept up to the turn)",
    "repair": "Repaired turns (kept, rewritten)",
    "flag": "Flagged turns (after a cut)",
}


def cmd_drops(args: argparse.Namespace) -> int:
    """One table per action: drops, cuts, repairs and flags are different outcomes."""

    def run(store: LineageStore) -> None:
        rows = store.drops(args.asset)
        scope = f" in {args.asset}" if args.asset else ""
        present = {r["action"] for r in rows}
        actions = [a for a in ACTION_TITLES if a == "drop" or a in present] + sorted(present - set(ACTION_TITLES))
        for number, action in enumerate(actions):
            table = [
                {"asset": r["asset"], "reason": r["reason"], "count": r["dropped"]}
                for r in rows
                if r["action"] == action
            ]
            total = sum(r["count"] for r in table)
            if number:
                print()
            _print_table(f"{ACTION_TITLES.get(action, action)}{scope} by reason ({total} total)", table)

    return _run(args, run)


def cmd_costs(args: argparse.Namespace) -> int:
    def run(store: LineageStore) -> None:
        rows = store.cost_summary()
        total = sum(r["cost_usd"] or 0.0 for r in rows)
        calls = sum(r["calls"] for r in rows)
        table = [{**r, "cost_usd": f"{r['cost_usd']:.4f}", "latency_s": f"{r['latency_s']:.1f}"} for r in rows]
        _print_table(f"LLM cost by asset, role, model ({calls} calls, ${total:.4f} total)", table)

    return _run(args, run)


def cmd_compact(args: argparse.Namespace) -> int:
    def run(store: LineageStore) -> None:
        print(f"Merged {store.compact()} segments under {store.root}")

    return _run(args, run)


# --- plumbing ------------------------------------------------------------------------


def _run(args: argparse.Namespace, body: Callable[[LineageStore], None]) -> int:
    root = args.root if args.root is not None else default_root()
    if not root.is_dir():
        return _fail(f"no lineage store at {root} (set --root or RP_LINEAGE_DIR)")
    try:
        body(LineageStore(root))
    except KeyError as missing:
        return _fail(str(missing.args[0]) if missing.args else "not found")
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return NOT_FOUND


def _when(ts: Any) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S") if ts is not None else "-"


def _print_table(title: str, rows: Sequence[dict[str, Any]]) -> None:
    print(title)
    if not rows:
        print("(none)")
        return
    frame = pd.DataFrame(list(rows), dtype=object).fillna("-")
    with pd.option_context("display.unicode.east_asian_width", True, "display.max_colwidth", 80):
        print(frame.to_string(index=False))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rp_pipeline.lineage.cli", description="Query the row-level lineage store."
    )
    add_commands(parser.add_subparsers(dest="lineage_command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
