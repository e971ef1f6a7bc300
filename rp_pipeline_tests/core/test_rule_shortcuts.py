"""Shortcuts in `core/rules` that must not change an answer: the prefix-tree screen in front of
the phrase lists finds a phrase exactly when a plain substring test does, and the bounds that
spare echo checks their SequenceMatcher never turn a copy into a non-copy."""

from __future__ import annotations

import random
from difflib import SequenceMatcher

from rp_pipeline.core.rules import (
    ECHO_COPIED_WEIGHT,
    ECHO_COVERAGE,
    ECHO_MIN_BLOCK,
    ECHO_SIMILARITY,
    RuleSet,
    _literal_tree,
    is_echo,
    is_near_copy,
    normalized,
)
from rp_pipeline.core.signals import letter_weight
from rp_pipeline.settings import REPO_ROOT

RULES = RuleSet.load(REPO_ROOT / "assets" / "rules")


def _texts(rng: random.Random, pool: list[str], n: int) -> list[str]:
    """Pieces of `pool` glued together and cut at random: phrases, their heads and tails."""
    texts = []
    for _ in range(n):
        text = "".join(rng.choice(pool) for _ in range(rng.randrange(1, 4)))
        start = rng.randrange(len(text) + 1)
        texts.append(text[start : start + rng.randrange(1, 60)])
    return texts


def test_the_phrase_screen_finds_a_phrase_exactly_when_a_substring_test_does():
    rng = random.Random(0)
    for kind in ("assistant_speak", "goodbye", "meta_commentary"):
        phrases = {p.casefold() for ps in getattr(RULES, kind).values() for p in ps}
        screen = RULES.screens[kind]
        for text in _texts(rng, [*phrases, " ", "，", "x", "我", "a"], 3000):
            assert (screen.search(text) is not None) == any(p in text for p in phrases), (kind, text)
    nested = _literal_tree(["ab", "abc", "b.d", "x"])  # one phrase the head of another, a regex mark
    assert [bool(nested.search(t)) for t in ("zab", "abz", "bcd", "b.d", "y", "")] == [1, 1, 0, 1, 0, 0]
    assert _literal_tree([]).search("anything") is None
    assert _literal_tree([""]).search("anything") is not None  # as `"" in text`


def _near_copy(reply: str, earlier: str) -> bool:
    """`is_near_copy` by its definition, without the bounds."""
    mine, theirs = normalized(reply), normalized(earlier)
    if not mine or not theirs:
        return False
    if min(letter_weight(mine), letter_weight(theirs)) >= 8 and (mine in theirs or theirs in mine):
        return True
    return SequenceMatcher(None, mine, theirs, autojunk=False).ratio() >= ECHO_SIMILARITY


def _echo(reply: str, previous: str) -> bool:
    """`is_echo` by its definition, without the bounds."""
    mine, theirs = normalized(reply), normalized(previous)
    if not mine or not theirs:
        return False
    if min(len(mine), len(theirs)) >= 8 and (mine in theirs or theirs in mine):
        return True
    matcher = SequenceMatcher(None, mine, theirs, autojunk=False)
    match = matcher.find_longest_match(0, len(mine), 0, len(theirs))
    copied = letter_weight(mine[match.a : match.a + match.size])
    runs = [b for b in matcher.get_matching_blocks() if b.size >= 2]
    stitched = (
        letter_weight(mine) > len(mine)
        and sum(b.size for b in runs) >= ECHO_COVERAGE * len(mine)
        and sum(letter_weight(mine[b.a : b.a + b.size]) for b in runs) >= ECHO_COPIED_WEIGHT
    )
    return (
        matcher.ratio() >= ECHO_SIMILARITY
        or match.size >= max(ECHO_MIN_BLOCK, len(mine) // 2)
        or copied >= ECHO_COPIED_WEIGHT
        or stitched
    )


def test_echo_checks_answer_as_their_definitions_do():
    rng = random.Random(1)
    pool = [
        "My coworker just bought a tiny cactus",
        "what about you?",
        "我同事今天买了一盆多肉",
        "花は生活の中で大切です",
        "晚上加班也挺正常的，你累不累？",
        "你呢？",
        "¿Has comido ya, cariño?",
        "jajaja",
        "好的",
        "<emotion>happy</emotion>",
        "ok",
    ]
    texts = _texts(rng, pool, 400)
    pairs = [(a, b) for a in texts[:60] for b in texts[60:120]]
    pairs += [(t, t[: rng.randrange(len(t) + 1)] + "x" + t[rng.randrange(len(t) + 1) :]) for t in texts]  # near twins
    outcomes = set()
    for reply, other in pairs:
        assert is_near_copy(reply, other) == _near_copy(reply, other), (reply, other)
        assert is_echo(reply, other) == _echo(reply, other), (reply, other)
        outcomes.add((_near_copy(reply, other), _echo(reply, other)))
    assert {(True, True), (False, False), (False, True)} <= outcomes  # both answers, and echo the looser one
