"""Markup debris and stray symbols: strikethrough, leftover HTML/Markdown, HTML entities,
invisible or broken characters, emoji spam, runs of unrelated symbols and unmatched
brackets. They are removed (the field notes: "remove strikethrough, markup debris and stray
special symbols"); kaomoji such as (｡•́︿•̀｡) and stickers such as [委屈] carry emotion and stay.
"""

from __future__ import annotations

import re

import regex

from rp_pipeline.core.langid import STICKER

_FORMAT_TAG = regex.compile(r"(</?(?:emotion|img|prompt|includePerson)>)")
# A kaomoji: a short bracketed face without words, with optional arms outside the brackets.
_ARM = r"[^\s\p{L}\p{N}\[\]【】\x00]"
_FACE = r"[(（](?:[^()（）\n\p{L}\p{N}]|\p{L}(?!\p{L})){1,15}[)）]"  # no two letters in a row: not words
_KAOMOJI = regex.compile(rf"{_ARM}{{0,4}}{_FACE}{_ARM}{{0,4}}")
_REMOVALS = [
    ("strikethrough", regex.compile(r"~~[^~\n]*~~")),
    ("html_tag", regex.compile(r"</?(?!(?:emotion|img|prompt|includePerson)\b)[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")),
    ("html_entity", regex.compile(r"&(?:[A-Za-z]{2,8}|#\d{1,6}|#x[0-9A-Fa-f]{1,6});")),
    ("markdown", regex.compile(r"\*\*|__|```|`|^#{1,6}\s", regex.M)),
    ("garbage", regex.compile(r"[\uFFFD\u200B-\u200D\u2060\uFEFF\p{Co}\p{Cs}]|[\p{Cc}--[\n\t\x00]]", regex.V1)),
]
_EMOJI_RUN = regex.compile(r"(?:\p{Extended_Pictographic}[\uFE0F\u200D\p{Emoji_Modifier}]*){4,}")
_SYMBOL = r"(?:(?!\p{Extended_Pictographic})[\p{S}#@%&*^_|\\/=])"
_SYMBOL_RUN = regex.compile(rf"{_SYMBOL}(?:\s?{_SYMBOL})+")
_PAIRS = {
    ")": "(",
    "）": "(",
    "(": "(",
    "（": "(",
    "]": "[",
    "[": "[",
    "】": "【",
    "【": "【",
    "}": "{",
    "{": "{",
    "」": "「",
    "「": "「",
    "』": "『",
    "『": "『",
}
_OPENERS = set("(（[【{「『")
# Every character one of the removals above starts from: a piece without any has no debris (most
# replies), so it skips protecting kaomoji and running the removals. \x00 is in it because the
# slow path uses it for placeholders.
_DEBRIS_CHAR = regex.compile(
    r"[~<&*_`#@%^|\\/=\p{S}\p{Extended_Pictographic}\p{Co}\p{Cs}\uFFFD\u200B-\u200D\u2060\uFEFF"
    r"\x00-\x08\x0B-\x1F\x7F-\x9F()（）\[\]【】{}「」『』]"
)
_PLACEHOLDER = regex.compile(r"\x00(\d+)\x00")
_SPACES = regex.compile(r"[ \t]{2,}")
MIN_SYMBOL_KINDS = 3  # "!!!" or "★☆★" is emphasis; "#$%@" is debris


def _unmatched_brackets(text: str) -> list[int]:
    stack: list[int] = []
    unmatched: list[int] = []
    for index, char in enumerate(text):
        if char not in _PAIRS:
            continue
        if char in _OPENERS:
            stack.append(index)
        elif stack and _PAIRS[text[stack[-1]]] == _PAIRS[char]:
            stack.pop()
        else:
            unmatched.append(index)
    return sorted(unmatched + stack)


def _clean_piece(text: str, kinds: list[str]) -> str:
    if not _DEBRIS_CHAR.search(text):
        return text
    protected: list[str] = []

    def protect(match: re.Match[str] | regex.Match[str]) -> str:
        protected.append(match.group(0))
        return f"\x00{len(protected) - 1}\x00"

    text = _KAOMOJI.sub(protect, STICKER.sub(protect, text))
    for kind, pattern in _REMOVALS:
        text, n = pattern.subn("", text)
        kinds += [kind] * bool(n)
    text, n = _EMOJI_RUN.subn(lambda m: m.group(0)[0], text)
    kinds += ["emoji_spam"] * bool(n)

    def drop_symbols(match: regex.Match) -> str:
        if len(set(match.group(0).replace(" ", ""))) < MIN_SYMBOL_KINDS:
            return match.group(0)
        kinds.append("symbols")
        return ""

    text = _SYMBOL_RUN.sub(drop_symbols, text)
    if unmatched := _unmatched_brackets(text):
        kinds.append("unbalanced_bracket")
        text = "".join(ch for i, ch in enumerate(text) if i not in set(unmatched))  # placeholders hold no brackets
    return _PLACEHOLDER.sub(lambda m: protected[int(m.group(1))], text)


def strip_debris(raw: str) -> tuple[str, list[str]]:
    """`raw` without debris (format tags untouched), and the kinds removed."""
    kinds: list[str] = []
    pieces = _FORMAT_TAG.split(raw)
    cleaned = "".join(piece if i % 2 else _clean_piece(piece, kinds) for i, piece in enumerate(pieces))
    if not kinds:
        return raw, []
    return _SPACES.sub(" ", cleaned).strip(), sorted(set(kinds))
