"""cleaned_dialogues on simulated dialogues that go wrong: the same cleaning code as `rp clean`
cuts or drops them, and every code reaches lineage and the asset's metadata."""

from __future__ import annotations

import json

from rp_pipeline.lineage.store import LineageStore
from rp_pipeline_tests.pipeline_runs import run_generation

GOODBYE_LOOP = "好啦我先下线了，再见<emotion>sad</emotion>"


def test_a_character_stuck_saying_goodbye_is_dropped_with_its_codes_in_lineage(pipeline_settings, fake_llm):
    fake_llm.queue("character", *[GOODBYE_LOOP] * 400)  # every attempt of every character turn
    results = run_generation(pipeline_settings)
    assert all(r.success for r in results.values())
    data = pipeline_settings.data_dir
    assert json.loads((data / "assets" / "cleaned_dialogues" / "lin-xiaoman.json").read_text()) == []

    with LineageStore(data / "lineage").connect() as con:
        events = con.execute(
            "SELECT partition, reason, detail FROM events WHERE asset = 'cleaned_dialogues' AND kind = 'drop'"
        ).fetchall()
    zh = {(reason, detail.split(";")[0]) for partition, reason, detail in events if partition == "lin-xiaoman"}
    assert ("goodbye", "turn 2: drop") in zh  # dropped at the first goodbye: no good exchange before it
    assert ("repetition_loop", "turn 2: drop") in zh and ("repetition_loop", "turn 4: flag") in zh
    en = {reason for partition, reason, _ in events if partition == "theo-barnes"}
    assert {"goodbye", "wrong_language"} <= en

    [materialization] = results["lin-xiaoman"].asset_materializations_for_node("cleaned_dialogues")
    metadata = materialization.metadata
    assert metadata["dialogues_kept"].value == 0 and metadata["dialogues_dropped"].value == 1
    flags = metadata["flags_by_code"].value
    assert "| goodbye |" in flags and "| repetition_loop |" in flags


def test_chinese_replies_the_cleaner_model_reads_as_cut_are_dropped_as_truncated(pipeline_settings, fake_llm):
    """A reply cut after whole words passes every rule; the map's `cleaner` reads it as
    unfinished, and lineage and the metadata say so."""
    fake_llm.unfinished_endings = {"下周"}
    fake_llm.queue("character", *["你最近考试准备得怎么样了？我听说你们下周<emotion>neutral</emotion>"] * 400)
    results = run_generation(pipeline_settings)
    assert all(r.success for r in results.values())
    with LineageStore(pipeline_settings.data_dir / "lineage").connect() as con:
        details = con.execute(
            "SELECT detail FROM events WHERE asset = 'cleaned_dialogues' AND kind = 'drop' "
            "AND reason = 'truncated' AND partition = 'lin-xiaoman'"
        ).fetchall()
    assert details and all("我听说你们下周' as unfinished" in d for (d,) in details)
    [materialization] = results["lin-xiaoman"].asset_materializations_for_node("cleaned_dialogues")
    metadata = materialization.metadata
    assert metadata["endings_read_by"].value == "openai/fake-cleaner"
    assert metadata["endings_read_as_cut"].value == metadata["endings_asked"].value > 0
    assert metadata["llm_calls"].value == metadata["endings_asked"].value
