"""Degenerate tails: per-turn simulation falls into loops (goodbye ping-pong, insult
ping-pong) where replies repeat each other with small variations. The loop starts at the
first reply that later ones repeat, so that is where the row is cut. A reply that repeats
one earlier reply once (A B A) is no loop: it is an `echo` of that reply (`core/rules`
compares every reply with the character's earlier ones), and one code says it."""

from __future__ import annotations

from rp_pipeline.core.rules import normalized
from rp_pipeline.core.signals import letter_weight

MIN_NEAR_CHARS = 4  # shorter replies repeat only when identical
MIN_CONTAINED_WEIGHT = 8  # "¿Has comido ya?" in "¿Has comido ya, cariño?" repeats it (a CJK character weighs 2)
MIN_LOOP_REPEATS = 2  # one repeat is an echo; two or more (the same reply three times) make a loop


def _bigrams(text: str) -> frozenset[str]:
    return frozenset(text[i : i + 2] for i in range(len(text) - 1)) or frozenset({text})


class _Reply:
    """A reply's comparison key and bigrams, computed once per reply."""

    def __init__(self, raw: str) -> None:
        self.key = normalized(raw)
        self.bigrams = _bigrams(self.key)


def similar(a: _Reply, b: _Reply, threshold: float) -> bool:
    if a.key == b.key:
        return bool(a.key)
    if min(len(a.key), len(b.key)) < MIN_NEAR_CHARS:
        return False
    shorter = min(a.key, b.key, key=len)
    if (a.key in b.key or b.key in a.key) and letter_weight(shorter) >= MIN_CONTAINED_WEIGHT:
        return True
    return len(a.bigrams & b.bigrams) / len(a.bigrams | b.bigrams) >= threshold


def find_loop(replies: list[tuple[int, str]], window: int, threshold: float) -> list[tuple[int, str]]:
    """For (turn index, raw reply) pairs in order: (turn, detail) for each reply of the first
    repetition, earliest first (the row is cut there); empty without one.

    A reply repeating an earlier one within `window` replies starts a loop there when the
    pattern keeps repeating (A A A, A B A B: every reply that repeats, or is repeated by,
    another reply of the loop is flagged, and the loop's first reply is where it starts).
    A single repeat (A B A) is no loop (it is an echo), and the search goes on after it."""
    keys = [_Reply(raw) for _, raw in replies]
    for j in range(1, len(keys)):
        earlier = [i for i in range(max(0, j - window), j) if similar(keys[i], keys[j], threshold)]
        if not earlier:
            continue
        start = earlier[0]
        repeats = [
            k
            for k in range(start + 1, len(keys))
            if any(
                similar(keys[i], keys[k], threshold)
                for i in range(max(start, k - window), min(len(keys), k + window + 1))
                if i != k
            )
        ]
        if len(repeats) < MIN_LOOP_REPEATS:
            continue
        return [(replies[start][0], "a loop starts here")] + [
            (replies[k][0], f"repeats a reply of the loop from turn {replies[start][0]}") for k in repeats
        ]
    return []
