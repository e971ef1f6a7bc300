"""The `cleaner` role outside a Dagster run (`rp clean --read-endings`, the cleaning benchmark):
reads whether Chinese/Japanese replies stop mid-clause (core/cleaning/endings.py)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from rp_pipeline.core.cleaning import ChatRow
from rp_pipeline.core.cleaning.endings import ROLE, ending_queries, find_unfinished
from rp_pipeline.llm.client import role_client
from rp_pipeline.llm.config import load_llm_config


def read_endings(
    rows: Sequence[ChatRow], config_path: Path, data_dir: Path, threshold: float
) -> dict[str, dict[int, str]]:
    """{row id: {turn: why}} for the replies the model map's `cleaner` reads as cut; {} when the
    map has no such role (said on stderr: the rules alone judge endings)."""
    config = load_llm_config(config_path)
    if ROLE not in config.roles:
        print(f"endings: rules only ({config_path} has no {ROLE!r} role)", file=sys.stderr)
        return {}
    if not ending_queries(rows):
        return {}
    with role_client(config, ROLE, data_dir) as client:
        print(f"endings: read by {client.routed_model(ROLE)}", file=sys.stderr)
        reading = client.run(find_unfinished(client, rows, threshold))
    print(
        f"endings: {reading.asked} replies asked about, {sum(map(len, reading.unfinished.values()))} read as cut, "
        f"{reading.unread} answered without probabilities (left to the rules)",
        file=sys.stderr,
    )
    return reading.unfinished
