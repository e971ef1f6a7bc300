"""The whole graph, seed_variables to leaderboard, against the fake server and a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rp_pipeline.cli import main as rp
from rp_pipeline.demo import run_demo
from rp_pipeline.lineage.store import LineageStore


@pytest.fixture
def e2e_settings(pipeline_settings, tiny_model_dir):
    profile_path = pipeline_settings.assets_dir / "profiles" / "test.yaml"
    profile = yaml.safe_load(profile_path.read_text())
    profile["training"]["base_model"] = str(tiny_model_dir)
    profile_path.write_text(yaml.safe_dump(profile, allow_unicode=True))
    return pipeline_settings


def test_demo_materializes_the_whole_graph_with_lineage(e2e_settings, fake_llm, capsys):
    assert run_demo(e2e_settings) == 0  # what `rp demo` runs, here on the fake server and the tiny model
    printed = capsys.readouterr().out
    data = e2e_settings.data_dir
    assert "7 persona partitions" in printed and str(data / "leaderboard.parquet") in printed
    assert str(data / "lineage" / "lineage.duckdb") in printed and "dagster dev" in printed

    board = pd.read_parquet(data / "leaderboard.parquet")
    assert sorted(board["kind"]) == ["base", "tuned"]
    for dim in ("human_likeness", "purposefulness", "consistency", "attractiveness"):
        assert board[f"judge_{dim}"].between(1, 10).all()
    assert "format_valid_rate" in board and board["judge_agreement"].between(0, 1).all()
    tuned = board[board["kind"] == "tuned"].iloc[0]
    assert tuned["pairwise_win"] + tuned["pairwise_tie"] + tuned["pairwise_loss"] == pytest.approx(1.0)

    corpus = json.loads((data / "assets" / "training_corpus.json").read_text())
    from datasets import load_from_disk

    dataset = load_from_disk(corpus["hf_dataset"])
    assert len(dataset) == corpus["rows"] and set(dataset["source"]) == {"roleplay", "general"}
    info = json.loads((data / "corpus" / corpus["version"] / "dataset_info.json").read_text())
    assert info["rp_corpus"]["formatting"] == "sharegpt"

    # DPO's rejected side comes from the SFT model itself: sampled from its checkpoint (the tiny
    # model here, in generate.py), one reply per request
    pairs = json.loads((data / "assets" / "preference_pairs.json").read_text())
    sft = json.loads((data / "assets" / "sft_checkpoint.json").read_text())
    samples_dir = data / "preferences" / "samples" / sft["version"]
    requests = (samples_dir / "sample_requests.jsonl").read_text().splitlines()
    assert requests and len((samples_dir / "samples.jsonl").read_text().splitlines()) == len(requests)
    generated = json.loads((samples_dir / "generate_config.json").read_text())
    assert (generated["model_dir"], generated["adapters"]) == (
        sft["model_dir"] or sft["base_model_dir"],
        sft["adapters"],
    )
    samples = {json.loads(line)["replies"][0] for line in (samples_dir / "samples.jsonl").read_text().splitlines()}
    rejected = [json.loads(line)["rejected"][0]["content"] for line in Path(pairs["file"]).read_text().splitlines()]
    assert any(text in samples for text in rejected)  # the SFT model's own rule-breaking replies are rejected
    assert json.loads(Path(pairs["dataset_info"]).read_text())["rp_pairs"]["ranking"] is True

    store = LineageStore(data / "lineage")
    rows = [json.loads(line) for line in (data / "corpus" / corpus["version"] / "rows.jsonl").read_text().splitlines()]
    roleplay = next(r for r in rows if r["source"] == "roleplay")
    chain = [step["asset"] for step in store.trace(roleplay["id"])]
    assert chain[0] == "training_corpus" and "seed_samples" in chain and "persona_cards" in chain
    assert chain.index("cleaned_dialogues") < chain.index("dialogues") < chain.index("seed_samples")
    checkpoints = {c["asset"] for c in store.checkpoints_for_persona("lin-xiaoman")}
    assert checkpoints == {"sft_checkpoint", "dpo_checkpoint", "quantized_model"}
    assert {c["asset"] for c in store.checkpoints_for_persona("林小满")} == checkpoints

    assert rp(["lineage", "trace", roleplay["id"], "--root", str(data / "lineage")]) == 0
    assert "seed_samples" in capsys.readouterr().out
    assert rp(["lineage", "checkpoints", "--persona", "lin-xiaoman", "--root", str(data / "lineage")]) == 0
    assert "quantized_model" in capsys.readouterr().out
