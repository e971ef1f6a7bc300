"""Corpus rows split at cutoff_len, and the exports trainers consume: the HF dataset loads
with `datasets.load_from_disk` and trains a step with TRL's SFTTrainer; the LLaMA-Factory
dataset_info.json has its documented sharegpt fields and points at rows that use them."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rp_pipeline.core.corpus import (
    DATASET_NAME,
    CorpusConfig,
    build_corpus,
    corpus_version,
    estimate_tokens,
    export_corpus,
    language_distance,
    language_distribution,
    split_at_turns,
)
from rp_pipeline.core.models import CleanedDialogue, Message

E = "<emotion>{}</emotion>".format


def _dialogue(n_exchanges: int, lang: str = "zh", dialogue_id: str = "clean-1") -> CleanedDialogue:
    messages = [Message(role="system", content="你是林小满，一家咖啡店的店员。" if lang == "zh" else "You are Mia.")]
    for i in range(n_exchanges):
        user, reply = (
            (f"第{i}个问题：今天店里忙吗？", f"还行吧，第{i}杯拿铁刚做好{E('happy')}")
            if lang == "zh"
            else (f"Question {i}: busy day?", f"Not bad, latte number {i} is ready{E('happy')}")
        )
        messages += [Message(role="user", content=user), Message(role="assistant", content=reply)]
    return CleanedDialogue(
        id=dialogue_id, dialogue_id=f"dlg-{dialogue_id}", persona_id="lin", language=lang, messages=messages
    )


def _cost(messages: list[Message]) -> int:
    return sum(estimate_tokens(m.content) for m in messages)


def test_estimate_counts_cjk_per_character_and_ascii_per_three():
    assert estimate_tokens("你好你好") == 4 + 4
    assert estimate_tokens("abcdef") == 2 + 4


def test_long_rows_split_at_turn_boundaries_under_the_system_prompt():
    dialogue = _dialogue(40)
    split = split_at_turns(dialogue.messages, cutoff_len=300)
    assert len(split.parts) > 3 and split.too_long_exchanges == 0
    for part in split.parts:
        assert part[0] == dialogue.messages[0]
        assert [m.role for m in part[1:]] == ["user", "assistant"] * ((len(part) - 1) // 2)
        assert _cost(part) <= 300
    assert [m for part in split.parts for m in part[1:]] == dialogue.messages[1:]  # nothing lost, nothing cut
    assert split_at_turns(dialogue.messages, cutoff_len=8192).parts == [dialogue.messages]


def test_an_exchange_longer_than_cutoff_is_left_out_whole():
    messages = _dialogue(3).messages
    huge = [Message(role="user", content="长" * 500), Message(role="assistant", content="嗯" + E("neutral"))]
    split = split_at_turns(messages[:3] + huge + messages[3:], cutoff_len=200)
    assert split.too_long_exchanges == 1
    assert [m for part in split.parts for m in part[1:]] == messages[1:]
    assert all("长" * 500 not in m.content for part in split.parts for m in part)


def test_build_corpus_splits_rows_and_keeps_the_parent():
    corpus = build_corpus([_dialogue(40)], [], CorpusConfig(general_share=0, cutoff_len=300))
    assert corpus.split_rows == 1 and len(corpus.rows) > 3
    assert all(r.parent_ids == ["clean-1"] and r.source == "roleplay" for r in corpus.rows)
    assert len({r.id for r in corpus.rows}) == len(corpus.rows)


def test_exports_load_in_datasets_trl_and_llama_factory(tmp_path, tiny_model_dir):
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = build_corpus(
        [_dialogue(6, "zh", "clean-zh"), _dialogue(6, "en", "clean-en")],
        [],
        CorpusConfig(general_share=0, cutoff_len=150),
    ).rows
    corpus = export_corpus(rows, tmp_path / "corpus", corpus_version(rows))
    assert corpus.load_rows() == rows  # the typed hand-off reads back what was written

    info = json.loads(Path(corpus.dataset_info).read_text(encoding="utf-8"))
    assert info == {
        DATASET_NAME: {
            "file_name": "sharegpt.json",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system"},
            "tags": {
                "role_tag": "from",
                "content_tag": "value",
                "user_tag": "human",
                "assistant_tag": "gpt",
                "system_tag": "system",
            },
        }
    }
    entry = info[DATASET_NAME]
    sharegpt = json.loads((Path(corpus.dataset_info).parent / entry["file_name"]).read_text(encoding="utf-8"))
    assert len(sharegpt) == len(rows)
    tags = entry["tags"]
    for record in sharegpt:
        assert record[entry["columns"]["system"]]
        turns = record[entry["columns"]["messages"]]
        assert all(set(t) == {tags["role_tag"], tags["content_tag"]} for t in turns)
        # LLaMA-Factory reads user at even and assistant at odd positions
        assert [t[tags["role_tag"]] for t in turns] == [tags["user_tag"], tags["assistant_tag"]] * (len(turns) // 2)

    dataset = load_from_disk(corpus.hf_dataset)
    assert len(dataset) == len(rows) > 2 and set(dataset["language"]) == {"zh", "en"}
    assert dataset[0]["messages"][0]["role"] == "system"

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=1,
        per_device_train_batch_size=2,
        max_length=256,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset.select_columns(["messages"]), processing_class=tokenizer
    )
    trainer.train()
    assert trainer.state.global_step == 1
    assert math.isfinite(trainer.state.log_history[0]["loss"])


def _rows(counts: dict[str, int]):
    dialogues = [
        _dialogue(1, lang, f"{lang}-{i}").model_copy(update={"language": lang})
        for lang, n in counts.items()
        for i in range(n)
    ]
    # distinct messages per row (a row id hashes its messages)
    return [
        d.model_copy(update={"messages": [*d.messages[:-1], Message(role="assistant", content=f"{d.id}{E('happy')}")]})
        for d in dialogues
    ]


def test_over_represented_languages_are_held_back_until_the_mix_meets_its_target():
    """The demo: the 1.5B model's Chinese survives cleaning far more often than its English."""
    config = CorpusConfig(general_share=0, languages={"zh": 3, "en": 2, "es": 1, "ja": 1}, language_tolerance=0.15)
    corpus = build_corpus(_rows({"zh": 9, "ja": 3, "es": 1, "en": 1}), [], config)
    kept = language_distribution(corpus.rows)
    assert language_distance(kept, config.languages) <= 0.15
    assert kept == {"zh": 4, "ja": 1, "en": 1, "es": 1}
    assert language_distribution(corpus.held_back) == {"zh": 5, "ja": 2}
    again = build_corpus(_rows({"zh": 9, "ja": 3, "es": 1, "en": 1}), [], config)
    assert [r.id for r in again.held_back] == [r.id for r in corpus.held_back]  # a stable draw


def test_a_mix_that_cannot_reach_its_target_is_left_whole():
    """A language without rows: holding Chinese back would lose data and fix nothing."""
    config = CorpusConfig(general_share=0, languages={"zh": 1, "en": 1}, language_tolerance=0.15)
    corpus = build_corpus(_rows({"zh": 9}), [], config)
    assert len(corpus.rows) == 9 and not corpus.held_back
    # with no language target at all nothing is mixed either
    assert not build_corpus(_rows({"zh": 5, "en": 1}), [], CorpusConfig(general_share=0)).held_back
    assert build_corpus([], [], config).rows == []
