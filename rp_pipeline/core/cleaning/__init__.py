"""Cleaning simulated dialogues into training rows.

Turn filters (`filters`) return keep, drop or repair with a reason code; a row is cut before
its first dropped turn or its degenerate loop (`rows`, `loops`), then duplicates and
over-frequent openings are removed across rows (`corpus_filters`). `clean_rows` is the one
entry point for `rp clean` and the Dagster assets.
"""

from rp_pipeline.core.cleaning.clean import CleaningResult, clean_rows, dialogue_row, to_drops
from rp_pipeline.core.cleaning.models import REASON_CODES, ChatRow, CleaningConfig, TurnReport

__all__ = [
    "REASON_CODES",
    "ChatRow",
    "CleaningConfig",
    "CleaningResult",
    "TurnReport",
    "clean_rows",
    "dialogue_row",
    "to_drops",
]
