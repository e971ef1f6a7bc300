"""JSONL in and out for `rp clean`. A bad row is reported with its line number and field
and skipped; the rest of the file is still cleaned."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from rp_pipeline.core.atomic import write_text_atomic
from rp_pipeline.core.cleaning.clean import CleaningResult
from rp_pipeline.core.cleaning.models import REASON_CODES, ChatRow


def read_rows(path: Path) -> tuple[list[ChatRow], list[str]]:
    """Valid rows and one error message per invalid line. An unreadable file (missing, not
    UTF-8) raises OSError/UnicodeDecodeError: that is the caller's fatal case."""
    rows, errors = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(ChatRow.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            errors.append(f"{path}:{number}: not valid JSON: {exc.msg} (column {exc.colno})")
        except ValidationError as exc:
            problems = "; ".join(f"field {'.'.join(map(str, e['loc'])) or '(row)'}: {e['msg']}" for e in exc.errors())
            errors.append(f"{path}:{number}: {problems}")
    return rows, errors


def write_outputs(result: CleaningResult, out_dir: Path) -> tuple[Path, Path]:
    """kept.jsonl and report.jsonl, each renamed into place whole. The directory is the user's
    (it may hold other files), so each file is replaced on its own rather than the directory."""
    kept = write_text_atomic(
        out_dir / "kept.jsonl", "".join(r.model_dump_json(exclude_defaults=True) + "\n" for r in result.kept)
    )
    report = write_text_atomic(
        out_dir / "report.jsonl", "".join(json.dumps(r.model_dump(), ensure_ascii=False) + "\n" for r in result.reports)
    )
    return kept, report


def summary(result: CleaningResult, rows_in: int, invalid: int) -> str:
    """Rows in/kept/cut/dropped/invalid, then flagged turns per reason code (zeros included,
    so two runs compare line by line)."""
    actions = result.action_counts()
    codes = result.code_counts()
    head = (
        f"rows in {rows_in}  kept {len(result.kept)}  cut {actions['cut']}  dropped {actions['drop']}  "
        f"invalid {invalid}  repaired turns {actions['repair']}"
    )
    lines = [head, "", f"{'code':<22}{'turns':>8}"]
    lines += [f"{code:<22}{codes[code]:>8}" for code in REASON_CODES]
    return "\n".join(lines)
