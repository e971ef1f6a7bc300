"""Recorded demo runs of the embedded model, replayed through `cleaned_dialogues`.

The rows a reviewer rejected at a glance must not survive: a reply that repeats the opening
line, a degenerate or assistant-speaking user turn, a label word outside its tag, a reply cut
mid-word. The checks here are deliberately simple and independent of the rule engine, so the
test does not grade the cleaner with its own code.
"""

from __future__ import annotations

import json
import re
import shutil
from difflib import SequenceMatcher
from pathlib import Path

import pytest
import yaml
from dagster import AssetSpec, DagsterInstance, materialize

from rp_pipeline.core.models import EMOTIONS
from rp_pipeline.defs.build import resources
from rp_pipeline.defs.cleaning import cleaned_dialogues
from rp_pipeline.defs.personas import personas_partitions
from rp_pipeline.settings import Settings

RUNS = Path(__file__).resolve().parents[1] / "data" / "demo_runs"
TAG = re.compile(r"<[^<>]*>[^<>]*</[^<>]*>|<[^<>]*>")
LABEL_WORD = re.compile(r"(?<![A-Za-z])(" + "|".join(EMOTIONS) + r")(?![A-Za-z])", re.IGNORECASE)
DEGENERATE = re.compile(r"(.)\1{5,}|(..)\2{4,}")
USER_ASSISTANT = re.compile(
    r"I'?m sorry, but I can'?t|as an AI|I'?m an AI|申し訳ありませんが|お手伝いできません"
    r"|作为(一个)?AI|我(只)?是(一个)?(AI|人工智能)",
    re.IGNORECASE,
)
# A Latin-script clause cut mid-word: a word fragment glued to the tag that closes the clause.
CUT_BEFORE_TAG = re.compile(r"[A-Za-z]-?<emotion>|[a-z]{2,}-[a-z]{1,6}<emotion>")


def _visible(raw: str) -> str:
    return TAG.sub(" ", raw).strip()


def _similar(a: str, b: str) -> bool:
    a, b = re.sub(r"\W", "", a.casefold()), re.sub(r"\W", "", b.casefold())
    return bool(a and b) and (a in b or b in a or SequenceMatcher(None, a, b).ratio() >= 0.8)


def _replay(run: Path, tmp_path: Path) -> dict[str, list]:
    """cleaned_dialogues materialized per recorded partition, upstream read from the recording."""
    data = tmp_path / "data"
    shutil.copytree(run / "dialogues", data / "assets" / "dialogues")
    # The rules alone: the default map's `cleaner` (reading Chinese/Japanese endings) is the
    # bundled 1.5B, which the test install does not carry; the checks below need no model.
    models = yaml.safe_load((Settings().llm_config_path).read_text(encoding="utf-8"))
    del models["roles"]["cleaner"]
    rules_only = tmp_path / "models.yaml"
    rules_only.write_text(yaml.safe_dump(models, allow_unicode=True), encoding="utf-8")
    settings = Settings(data_dir=data, profile="demo", llm_config=rules_only)
    kept: dict[str, list] = {}
    with DagsterInstance.ephemeral() as instance:
        partitions = sorted(p.stem for p in (run / "dialogues").glob("*.json"))
        instance.add_dynamic_partitions(personas_partitions.name, partitions)
        for key in partitions:
            result = materialize(
                [AssetSpec("dialogues", partitions_def=personas_partitions), cleaned_dialogues],
                selection=[cleaned_dialogues],
                partition_key=key,
                instance=instance,
                resources=resources(settings),
            )
            assert result.success
            kept[key] = result.output_for_node("cleaned_dialogues")
    return kept


# Rows a run must keep: the two-model run's survivors are what the demo trains on, so a cleaner
# that kept nothing would pass the checks below vacuously.
MIN_KEPT = {"two_models": 10}


@pytest.mark.parametrize("run", sorted(p for p in RUNS.iterdir() if p.is_dir()), ids=lambda p: p.name)
def test_recorded_demo_run_keeps_no_defective_row(run, tmp_path):
    cards = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in (run / "persona_cards").glob("*.json")}
    kept = _replay(run, tmp_path)
    assert set(kept) == set(cards)
    assert sum(len(rows) for rows in kept.values()) >= MIN_KEPT.get(run.name, 0)
    for persona, rows in kept.items():
        opening = _visible(cards[persona]["opening_line"])
        for row in rows:
            replies = [m.content for m in row.messages if m.role == "assistant"]
            users = [m.content for m in row.messages if m.role == "user"]
            for reply in replies:
                assert not _similar(_visible(reply), opening), (persona, reply)
                assert not LABEL_WORD.search(_visible(reply)), (persona, reply)
                assert not CUT_BEFORE_TAG.search(reply), (persona, reply)
            for user in users:
                assert not DEGENERATE.search(user), (persona, user)
                assert not USER_ASSISTANT.search(user), (persona, user)
                assert not LABEL_WORD.search(user) and "<" not in user, (persona, user)


def test_the_independent_checks_see_the_recorded_defects():
    """The checks above are not vacuous: on the raw recording they find every defect kind."""
    raw = RUNS / "old_generator"
    turns = [
        (json.loads((raw / "persona_cards" / p.name).read_text())["opening_line"], t)
        for p in (raw / "dialogues").glob("*.json")
        for d in json.loads(p.read_text())
        for t in d["turns"][1:]
    ]
    replies = [(opening, t["content"]) for opening, t in turns if t["role"] == "character"]
    users = [t["content"] for _, t in turns if t["role"] == "user"]
    assert any(_similar(_visible(r), _visible(o)) for o, r in replies)
    assert any(LABEL_WORD.search(_visible(r)) for _, r in replies)
    assert any(CUT_BEFORE_TAG.search(r) for _, r in replies)
    assert any(DEGENERATE.search(u) for u in users)
    assert any(USER_ASSISTANT.search(u) for u in users)
