"""`rp clean`: any file in the chat-row schema is cleaned into kept.jsonl + report.jsonl;
bad rows are named by line and field and skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from rp_pipeline.cli import main

E = "<emotion>{}</emotion>".format


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _row(row_id: str, lang: str, pairs: list[tuple[str, str]], system: str = "You are Mia.") -> str:
    messages = [{"role": "system", "content": system}]
    for user, reply in pairs:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return json.dumps({"id": row_id, "language": lang, "messages": messages}, ensure_ascii=False)


GOOD_EN = [("Hi!", "Hey, you came back" + E("happy")), ("How are you?", "Tired but happy, you?" + E("neutral"))]
GOOD_ZH = [("在吗", "在呢，刚忙完" + E("neutral")), ("吃了吗", "还没，你请我？" + E("happy"))]


def test_clean_writes_kept_and_report_and_a_summary(tmp_path, capsys):
    source = _write(
        tmp_path / "in.jsonl",
        [
            _row("ok", "en", GOOD_EN),
            _row("cut", "zh", [*GOOD_ZH, ("好吧", "好啦我先下线了，再见" + E("sad"))], system="你是小满"),
            _row("dup", "en", GOOD_EN),
            _row("repair", "en", [*GOOD_EN, ("Number?", "Call me at (415) 555-0132" + E("happy"))]),
            '{"id": "bad", "language": "en", "messages": [{"role": "bot", "content": "hi"}]}',
            "{not json",
            "",
        ],
    )
    code = main(["clean", str(source), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0
    assert f"{source}:5: field messages.0.role" in err and f"{source}:6: not valid JSON" in err
    kept = [json.loads(line) for line in (tmp_path / "out" / "kept.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in kept] == ["ok", "cut", "repair"]
    assert set(kept[0]) == {"id", "language", "messages"} and kept[0]["messages"][0]["role"] == "system"
    assert len(kept[1]["messages"]) == 5 and kept[2]["messages"][-1]["content"] == "Call me at ••••" + E("happy")
    report = [json.loads(line) for line in (tmp_path / "out" / "report.jsonl").read_text(encoding="utf-8").splitlines()]
    assert report == [
        {"id": "cut", "turn": 6, "role": "assistant", "codes": ["goodbye"], "action": "cut"},
        {"id": "repair", "turn": 6, "role": "assistant", "codes": ["pii"], "action": "repair"},
        {"id": "dup", "turn": None, "role": None, "codes": ["exact_duplicate"], "action": "drop"},
    ]
    assert "rows in 6  kept 3  cut 1  dropped 1  invalid 2  repaired turns 1" in out
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()[3:] if len(line.split()) == 2}
    assert (
        lines["goodbye"] == "1" and lines["pii"] == "1" and lines["exact_duplicate"] == "1" and lines["lang_mix"] == "0"
    )


def test_unreadable_and_all_invalid_files_exit_non_zero(tmp_path, capsys):
    assert main(["clean", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "out")]) == 2
    assert "cannot read" in capsys.readouterr().err
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["clean", str(binary), "--out", str(tmp_path / "out")]) == 2
    invalid = _write(tmp_path / "invalid.jsonl", ['{"id": "x", "language": "en"}'])
    assert main(["clean", str(invalid), "--out", str(tmp_path / "out")]) == 1
    assert f"{invalid}:1: field messages: Field required" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_clean_takes_the_profile_settings(tmp_path, capsys):
    source = _write(tmp_path / "in.jsonl", [_row("short", "en", GOOD_EN[:1])])
    assert main(["clean", str(source), "--out", str(tmp_path / "default")]) == 0  # min_exchanges 2: dropped
    assert (tmp_path / "default" / "kept.jsonl").read_text() == ""
    assert main(["clean", str(source), "--out", str(tmp_path / "demo"), "--profile", "demo"]) == 0  # min 1
    assert (tmp_path / "demo" / "kept.jsonl").read_text().count("\n") == 1


def test_rp_clean_runs_as_a_command(tmp_path):
    source = _write(tmp_path / "in.jsonl", [_row("ok", "en", GOOD_EN)])
    proc = subprocess.run(
        [sys.executable, "-m", "rp_pipeline.cli", "clean", str(source), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "rows in 1  kept 1" in proc.stdout and (tmp_path / "o" / "report.jsonl").read_text() == ""


OTHER_EN = [("Busy today?", "Packed, a whole class came in" + E("sad")), ("Tired?", "Very, my feet hurt" + E("sad"))]


def test_clean_reports_every_code_of_a_flagged_turn(tmp_path, capsys):
    """A reply that breaks several rules, judged by several filters (structure before debris
    removal, PII masking, the reply rules), carries every code in report.jsonl and the summary;
    a row's opening line is read and written back, and a garbage user turn cuts the row."""
    bad = "**Note:** As an AI, I have to go, bye! Call 13812345678" + E("neutral")
    opening = {"opening_line": "Morning! Coffee before work?" + E("happy")}
    rows = [
        json.loads(_row("multi", "en", [*GOOD_EN, ("Ok", bad)])) | opening,
        json.loads(_row("user", "en", [*OTHER_EN, ("I'm sorry, but I can't help with that.", "Oh? Why?" + E("sad"))])),
    ]
    source = _write(tmp_path / "in.jsonl", [json.dumps(r, ensure_ascii=False) for r in rows])
    assert main(["clean", str(source), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    report = [json.loads(line) for line in (tmp_path / "out" / "report.jsonl").read_text(encoding="utf-8").splitlines()]
    multi = next(r for r in report if r["id"] == "multi")
    assert {"assistant_speak", "pii", "symbol_debris", "meta_commentary", "goodbye"} <= set(multi["codes"])
    assert multi["turn"] == 6 and multi["action"] == "cut"
    user = next(r for r in report if r["id"] == "user")
    assert (user["turn"], user["role"], user["codes"], user["action"]) == (5, "user", ["user_assistant_speak"], "cut")
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()[3:] if len(line.split()) == 2}
    assert lines["user_assistant_speak"] == "1" and lines["goodbye"] == "1" and lines["truncated"] == "0"
    kept = [json.loads(line) for line in (tmp_path / "out" / "kept.jsonl").read_text(encoding="utf-8").splitlines()]
    assert kept[0]["opening_line"] == opening["opening_line"] and "opening_line" not in kept[1]


def test_clean_reads_chinese_endings_with_the_cleaner_model_when_asked(tmp_path, capsys, fake_llm, monkeypatch):
    """`--read-endings` asks the map's `cleaner` about Chinese replies that end on a letter: a
    reply cut after whole words (我听说你们下周) is `truncated` only then; a map without the role
    cleans by the rules and says so."""
    monkeypatch.setenv("RP_DATA_DIR", str(tmp_path / "data"))
    fake_llm.unfinished_endings = {"下周"}
    cut = ("考试咋样", "好嘞" + E("happy") + "我听说你们下周" + E("neutral"))
    source = _write(tmp_path / "in.jsonl", [_row("exam", "zh", [*GOOD_ZH, cut], system="你是小满")])
    config = fake_llm.write_config(tmp_path / "models.yaml")
    out = tmp_path / "out"
    assert main(["clean", str(source), "--out", str(out), "--config", str(config)]) == 0
    assert (out / "report.jsonl").read_text(encoding="utf-8") == "" and fake_llm.calls["cleaner"] == 0
    assert main(["clean", str(source), "--out", str(out), "--config", str(config), "--read-endings"]) == 0
    report = [json.loads(line) for line in (out / "report.jsonl").read_text(encoding="utf-8").splitlines()]
    assert report == [{"id": "exam", "turn": 6, "role": "assistant", "codes": ["truncated"], "action": "cut"}]
    assert fake_llm.calls["cleaner"] == 2  # 刚忙完 and 下周 end on a letter; 你请我？ is closed
    assert "endings: read by openai/fake-cleaner" in capsys.readouterr().err

    without = yaml.safe_load(config.read_text(encoding="utf-8"))
    del without["roles"]["cleaner"]
    config.write_text(yaml.safe_dump(without), encoding="utf-8")
    assert main(["clean", str(source), "--out", str(out), "--config", str(config), "--read-endings"]) == 0
    assert "endings: rules only" in capsys.readouterr().err
    assert (out / "report.jsonl").read_text(encoding="utf-8") == ""
