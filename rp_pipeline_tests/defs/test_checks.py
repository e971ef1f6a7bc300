"""The blocking gates on what cleaning cannot guarantee: content rules of both speakers on
every kept turn, the general share reached and the language distribution of the corpus."""

from __future__ import annotations

import json

import pytest
from dagster import AssetCheckSeverity

from rp_pipeline.core.artifacts import CorpusArtifact
from rp_pipeline.core.corpus import CorpusConfig, build_corpus, corpus_gaps, load_general_rows
from rp_pipeline.core.models import CleanedDialogue, CorpusRow, Message
from rp_pipeline.core.personas import load_persona_file, speaker_of, system_prompt
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.defs.checks import cleaned_dialogues_quality, training_corpus_quality
from rp_pipeline.defs.resources import PipelineResource
from rp_pipeline.settings import REPO_ROOT

ASSETS = REPO_ROOT / "assets"
PROMPTS = Prompts(ASSETS / "prompts")
LIN = load_persona_file(ASSETS / "personas" / "lin-xiaoman.yaml")
THEO = load_persona_file(ASSETS / "personas" / "theo-barnes.yaml")
E = "<emotion>{}</emotion>".format
ZH_EXCHANGES = [
    ("今天好冷啊，我差点迟到", "那你快进来暖和一下" + E("happy") + "还是冰美式吗？" + E("neutral")),
    ("换个热的吧，最近胃不太好", "那试试我新到的云南豆子" + E("happy")),
    ("好啊，你们店的猫呢？", "拿铁在窗台上晒太阳呢" + E("happy") + "你要不要摸摸它？" + E("surprised")),
]
EN_EXCHANGES = [
    ("Morning! The puppy kept me up all night", "Poor you. What breed is it?" + E("neutral")),
    ("A beagle, she is four months old", "Beagles howl a lot." + E("happy") + "Try a ticking clock." + E("neutral")),
]


def _dialogue(card, exchanges, dialogue_id="clean-1") -> CleanedDialogue:
    messages = [Message(role="system", content=system_prompt(card, PROMPTS))]
    for user, reply in exchanges:
        messages += [Message(role="user", content=user), Message(role="assistant", content=reply)]
    return CleanedDialogue(
        id=dialogue_id, dialogue_id="dlg-" + dialogue_id, persona_id=card.id, language=card.language, messages=messages
    )


def _pipeline(tmp_path, **corpus) -> PipelineResource:
    profile = {"name": "t", "corpus": {"general_share": 0.25, **corpus}}
    (tmp_path / "profile.yaml").write_text(json.dumps(profile), encoding="utf-8")
    return PipelineResource(assets_dir=str(ASSETS), data_dir=str(tmp_path), profile=str(tmp_path / "profile.yaml"))


def test_the_system_prompt_tells_the_checks_name_and_opening_line():
    for card in (LIN, THEO):
        assert speaker_of(system_prompt(card, PROMPTS)) == (card.name, card.opening_line)
    assert speaker_of("You are a helpful assistant.") == (None, None)


def test_clean_kept_turns_pass_the_partition_gate(tmp_path):
    result = cleaned_dialogues_quality([_dialogue(LIN, ZH_EXCHANGES)], pipeline=_pipeline(tmp_path))
    assert result.passed, result.metadata["failing"]
    assert result.metadata["content_clean_rate"].value == 1.0


@pytest.mark.parametrize(
    "bad, code",
    [
        (("还是老样子", LIN.opening_line), "echo"),  # the reply repeats the opening line in the system prompt
        (("う" * 40, "你怎么了？" + E("surprised")), "user_degenerate"),
        (("I'm sorry, but I can't help with that.", "那你想聊什么？" + E("neutral")), "user_assistant_speak"),
        (("那你吃早饭了吗", "林小满：早啊" + E("happy")), "name_prefix"),
    ],
)
def test_a_kept_turn_that_breaks_a_content_rule_blocks(tmp_path, bad, code):
    dialogue = _dialogue(LIN, [*ZH_EXCHANGES[:1], bad])
    result = cleaned_dialogues_quality([dialogue], pipeline=_pipeline(tmp_path))
    assert not result.passed and result.severity == AssetCheckSeverity.ERROR
    assert "content_clean_rate" in result.metadata["failing"].value
    assert code in result.metadata["content_codes"].value


def _corpus_dir(tmp_path, rows: list[CorpusRow]) -> CorpusArtifact:
    """The corpus hand-off the check reads: its rows file (the exports are not looked at)."""
    (tmp_path / "rows.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in rows), encoding="utf-8")
    unused = {name: str(tmp_path / name) for name in ("sharegpt", "messages", "dataset_info", "hf_dataset", "parquet")}
    return CorpusArtifact(version="corpus-test", dir=str(tmp_path), rows=len(rows), **unused)


def _roleplay(n_zh: int, n_en: int) -> list[CleanedDialogue]:
    return [_dialogue(LIN, ZH_EXCHANGES, f"zh-{i}") for i in range(n_zh)] + [
        _dialogue(THEO, EN_EXCHANGES, f"en-{i}") for i in range(n_en)
    ]


def test_a_general_pool_too_small_for_the_target_share_is_reported_and_blocks(tmp_path):
    general = load_general_rows(ASSETS / "general_sft" / "general.jsonl")
    corpus = build_corpus(_roleplay(30, 30), general[:4], CorpusConfig(general_share=0.25))
    assert (corpus.general_wanted, corpus.general_rows, corpus.general_shortfall) == (20, 4, 16)
    assert corpus.general_share == round(4 / 64, 4)
    result = training_corpus_quality(_corpus_dir(tmp_path, corpus.rows), pipeline=_pipeline(tmp_path))
    assert not result.passed and result.severity == AssetCheckSeverity.ERROR
    assert "general share 6.2% < target 25%" in result.metadata["failing"].value


def test_a_corpus_on_target_passes(tmp_path):
    general = load_general_rows(ASSETS / "general_sft" / "general.jsonl")
    corpus = build_corpus(_roleplay(6, 6), general, CorpusConfig(general_share=0.25))
    assert corpus.general_shortfall == 0 and corpus.general_share == 0.25
    result = training_corpus_quality(
        _corpus_dir(tmp_path, corpus.rows), pipeline=_pipeline(tmp_path, languages={"zh": 1, "en": 1})
    )
    assert result.passed, result.metadata["failing"]
    assert result.metadata["language_distance"].value == 0.0


def test_a_language_distribution_off_target_blocks(tmp_path):
    general = load_general_rows(ASSETS / "general_sft" / "general.jsonl")
    rows = build_corpus(_roleplay(10, 2), general, CorpusConfig(general_share=0.25)).rows
    pipeline = _pipeline(tmp_path, languages={"zh": 1, "en": 1}, language_tolerance=0.15)
    result = training_corpus_quality(_corpus_dir(tmp_path, rows), pipeline=pipeline)
    assert not result.passed and "language distribution is 0.33" in result.metadata["failing"].value
    # the default target is the seed language weights (zh 0.35, en 0.20, 14 others)
    assert corpus_gaps(rows, CorpusConfig(), {"zh": 0.35, "en": 0.2, "es": 0.45})  # no es at all
    assert not corpus_gaps(rows, CorpusConfig(language_tolerance=0.2), {"zh": 0.7, "en": 0.3})


def test_general_share_never_counts_as_missed_when_the_profile_asks_for_none():
    rows = build_corpus(_roleplay(2, 2), [], CorpusConfig(general_share=0)).rows
    assert not corpus_gaps(rows, CorpusConfig(general_share=0, languages={"zh": 1, "en": 1}), {})


def test_a_deliberate_language_switch_passes_the_gate_and_drift_blocks(tmp_path):
    switch = ("Can we chat in English from now on? I want to practise", "少来，好好说话" + E("happy"))
    switched = _dialogue(LIN, [*ZH_EXCHANGES, switch]).model_copy(update={"switch_language": "en"})
    result = cleaned_dialogues_quality([switched], pipeline=_pipeline(tmp_path))
    assert result.passed, result.metadata["failing"]
    drifted = _dialogue(LIN, [*ZH_EXCHANGES, switch])
    result = cleaned_dialogues_quality([drifted], pipeline=_pipeline(tmp_path))
    assert not result.passed and "user_wrong_language" in result.metadata["content_codes"].value
