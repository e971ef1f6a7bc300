"""`rp lineage …` and `python -m rp_pipeline.lineage.cli …`: readable tables, exit 2
with a one-line error for anything that does not exist."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from rp_pipeline.lineage import cli
from rp_pipeline.lineage.store import LineageStore
from rp_pipeline_tests.lineage.conftest import T0, event


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_trace_prints_the_chain_up_to_the_seed_sample(store: LineageStore, capsys) -> None:
    code, out, err = run(capsys, "trace", "corpus-row-1", "--root", str(store.root))

    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("Lineage of corpus-row-1")
    assert lines[1].split()[:5] == ["depth", "asset", "partition", "row_id", "kind"]
    body = "\n".join(lines[2:])
    for row_id in ("corpus-row-1", "turn-1", "dlg-1", "persona-lin", "topic-1", "seed-1"):
        assert row_id in body
    assert body.index("corpus-row-1") < body.index("dlg-1") < body.index("seed-1")
    assert "character-7b" in body  # the model that wrote the dialogue


def test_trace_shows_the_drop_reason(store: LineageStore, capsys) -> None:
    code, out, _ = run(capsys, "trace", "turn-2", "--root", str(store.root))

    assert code == 0
    assert "bad_format" in out.splitlines()[2]


def test_trace_limit_says_how_many_rows_were_left_out(store: LineageStore, capsys) -> None:
    code, out, _ = run(capsys, "trace", "dpo-v1", "--limit", "3", "--root", str(store.root))

    assert code == 0
    assert "... 6 more rows" in out


def test_unknown_row_exits_2_with_one_line_on_stderr(store: LineageStore, capsys) -> None:
    code, out, err = run(capsys, "trace", "no-such-row", "--root", str(store.root))

    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "no-such-row" in err and "Traceback" not in err


def test_checkpoints_for_a_chinese_persona_name(store: LineageStore, capsys) -> None:
    code, out, _ = run(capsys, "checkpoints", "--persona", "林小雨", "--root", str(store.root))

    assert code == 0
    assert out.splitlines()[0] == "Checkpoints built from persona 林小雨 (2)"
    assert "sft-v1" in out and "dpo-v1" in out and "model_version=dpo-1" in out


def test_unknown_persona_exits_2(store: LineageStore, capsys) -> None:
    code, _, err = run(capsys, "checkpoints", "--persona", "nobody", "--root", str(store.root))

    assert code == 2 and "nobody" in err


def test_drops_and_costs_tables(store: LineageStore, capsys) -> None:
    code, out, _ = run(capsys, "drops", "--root", str(store.root))
    assert code == 0
    assert out.splitlines()[0] == "Dropped rows by reason (3 total)"
    assert "bad_format" in out and "language_mismatch" in out

    code, out, _ = run(capsys, "drops", "--asset", "dialogues", "--root", str(store.root))
    assert code == 0 and "(none)" in out

    cleaning = [("goodbye", "cut"), ("echo", "cut"), ("pii", "repair")]
    store.write_events(
        [
            event(
                "cleaned_dialogues",
                "bob",
                "dlg-9",
                [],
                "run-9",
                T0 + timedelta(hours=1),
                kind="drop",
                reason=r,
                attrs={"action": a},
            )
            for r, a in cleaning
        ]
    )
    code, out, _ = run(capsys, "drops", "--root", str(store.root))
    sections = out.split("\n\n")
    assert [s.splitlines()[0] for s in sections] == [
        "Dropped rows by reason (3 total)",
        "Cut rows (kept up to the turn) by reason (2 total)",
        "Repaired turns (kept, rewritten) by reason (1 total)",
    ]
    assert "goodbye" in sections[1] and "echo" in sections[1] and "pii" in sections[2] and "pii" not in sections[0]

    code, out, _ = run(capsys, "costs", "--root", str(store.root))
    assert code == 0
    assert out.splitlines()[0] == "LLM cost by asset, role, model (6 calls, $0.0320 total)"
    assert "character-7b" in out and "topic_writer" in out


def test_compact_command_keeps_the_answers(store: LineageStore, capsys) -> None:
    before = run(capsys, "trace", "dpo-v1", "--root", str(store.root))

    code, out, _ = run(capsys, "compact", "--root", str(store.root))

    assert code == 0 and out.startswith("Merged 11 segments")
    assert run(capsys, "trace", "dpo-v1", "--root", str(store.root)) == before


def test_missing_store_exits_2(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "drops", "--root", str(tmp_path / "absent"))

    assert code == 2 and "absent" in err


def test_root_defaults_come_from_the_environment(store: LineageStore, capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("RP_LINEAGE_DIR", raising=False)
    monkeypatch.setenv("RP_DATA_DIR", str(store.root.parent))  # the fixture's root is <data>/lineage
    assert cli.default_root() == store.root
    assert run(capsys, "drops")[0] == 0

    monkeypatch.setenv("RP_LINEAGE_DIR", str(tmp_path / "elsewhere"))
    assert cli.default_root() == tmp_path / "elsewhere"

    monkeypatch.delenv("RP_LINEAGE_DIR")
    monkeypatch.delenv("RP_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    assert cli.default_root() == Path("data") / "lineage"


def test_register_adds_a_lineage_group_to_the_rp_parser(store: LineageStore, capsys) -> None:
    parser = argparse.ArgumentParser(prog="rp")
    register_into = parser.add_subparsers(dest="command", required=True)
    register_into.add_parser("demo")
    cli.register(register_into)

    args = parser.parse_args(["lineage", "trace", "sft-v1", "--root", str(store.root)])

    assert args.func(args) == 0
    assert "corpus-v1" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["lineage"])  # a sub-command is required


def test_module_runs_standalone(store: LineageStore) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rp_pipeline.lineage.cli", "trace", "dlg-1", "--root", str(store.root)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert "dlg-1" in result.stdout and "seed-1" in result.stdout

    missing = subprocess.run(
        [sys.executable, "-m", "rp_pipeline.lineage.cli", "trace", "nope", "--root", str(store.root)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")
