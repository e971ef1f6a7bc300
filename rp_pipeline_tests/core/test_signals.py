"""Shortcuts in `core/signals` that must not change an answer: `alnum_only` keeps exactly what
`str.isalnum` keeps, and the character screen in front of the structure patterns lets every
structure through (a text without any screened character holds none)."""

from __future__ import annotations

import sys

import pytest
import regex

from rp_pipeline.core import signals
from rp_pipeline.core.signals import alnum_only, find_structure

EVERY_CHARACTER = "".join(map(chr, range(sys.maxunicode + 1)))


def test_alnum_only_keeps_what_isalnum_keeps_for_every_code_point():
    assert alnum_only(EVERY_CHARACTER) == "".join(ch for ch in EVERY_CHARACTER if ch.isalnum())
    assert alnum_only("Ça va? 我很好，谢谢！ x_1²") == "Çava我很好谢谢x1²"


@pytest.mark.parametrize(
    "raw, name",
    [
        ("看这段```print(1)```<emotion>neutral</emotion>", "code block"),
        ("# 标题\n内容", "markdown heading"),
        ("- one\n- two", "bullet list"),
        ("步骤：1. 打开 2. 关闭", "numbered list"),
        ("以下の手順で<emotion>neutral</emotion>1. テーマを決める", "numbered list"),
        ("this is **big**", "bold"),
        ("see [docs](https://x.org)", "markdown link"),
        ("go to www.example.com now", "url"),
        ("| a | b |", "table"),
    ],
)
def test_every_structure_passes_the_screen(raw, name):
    assert find_structure(raw) == name


def test_a_text_without_any_screened_character_holds_no_structure(monkeypatch):
    """Every code point the screen lets pass, run through the patterns themselves, alone and
    between clause tags: none of them is (part of) a structure."""
    unscreened = "".join(ch for ch in EVERY_CHARACTER if not signals._STRUCTURE_MARK.search(ch))
    monkeypatch.setattr(signals, "_STRUCTURE_MARK", regex.compile(""))  # the slow path for every text
    for start in range(0, len(unscreened), 20_000):
        chunk = unscreened[start : start + 20_000]
        assert find_structure(chunk) is None
        assert find_structure("\n".join(chunk[i : i + 40] for i in range(0, len(chunk), 40))) is None
        assert find_structure("<emotion>happy</emotion>".join(chunk[i : i + 40] for i in range(0, 400, 40))) is None
