"""Code-location load time: how long `import rp_pipeline.definitions` (what `dagster dev` and the
gRPC code server load) takes in a fresh interpreter, against `import dagster` alone measured in
the same run, and whether any heavy module (torch, transformers, trl, peft, deepspeed, litellm,
kubernetes, docker) came along.

    python benchmarks/load_time.py [--quick] [--runs N]

Last line: the load time, its ratio to importing dagster, and the heavy modules imported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "trl", "peft", "deepspeed", "litellm", "kubernetes", "docker")
PROBE = """
import json, sys, time
started = time.perf_counter()
import {module}
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def timed_import(module: str) -> dict:
    code = PROBE.format(module=module, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 runs each instead of 7")
    parser.add_argument("--runs", type=int)
    args = parser.parse_args(argv)
    runs = args.runs or (3 if args.quick else 7)
    timed_import("rp_pipeline.definitions")  # warm the OS file cache and __pycache__ once
    baseline = [timed_import("dagster")["seconds"] for _ in range(runs)]
    loads = [timed_import("rp_pipeline.definitions") for _ in range(runs)]
    seconds = [load["seconds"] for load in loads]
    heavy = sorted({m for load in loads for m in load["heavy"]})
    print(f"import dagster:              median {statistics.median(baseline):.2f} s over {runs} runs")
    print(f"import rp_pipeline.definitions: median {statistics.median(seconds):.2f} s (max {max(seconds):.2f} s)")
    ratio = statistics.median(seconds) / statistics.median(baseline)
    print(
        f"code location load: {statistics.median(seconds):.2f} s = {ratio:.2f}x import dagster; "
        f"heavy modules imported: {', '.join(heavy) or 'none'}"
    )
    return 0 if not heavy else 1


if __name__ == "__main__":
    sys.exit(main())
