from __future__ import annotations

from rp_pipeline.core.cleaning.corpus_filters import shingles


def test_cjk_text_is_shingled_by_characters_not_whitespace():
    assert shingles("我今天很开心") == {"我今天", "今天很", "天很开", "很开心"}
    assert shingles("ひらがなテキスト") >= {"ひらが", "らがな"}  # kana counts as CJK


def test_alphabetic_text_uses_longer_character_shingles():
    assert shingles("hellothere") == {"hello", "ellot", "lloth", "lothe", "other", "there"}
    assert shingles("") == set()
