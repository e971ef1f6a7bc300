"""Degenerate tails: per-turn simulation falls into loops (goodbye ping-pong, insult
ping-pong) where replies repeat each other with small variations. The loop starts at the
first reply that later ones repeat, so that is where the row is cut."""

from __future__ import annotations

from rp_pipeline.core.rules import spoken_text

MIN_NEAR_CHARS = 4  # shorter replies repeat only when identical


def normalized(raw: str) -> str:
    """The spoken letters and digits, casefolded: what two replies are compared on."""
    return "".join(ch for ch in spoken_text(raw).casefold() if ch.isalnum())


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
    return len(a.bigrams & b.bigrams) / len(a.bigrams | b.bigrams) >= threshold


def find_loop(replies: list[tuple[int, str]], window: int, threshold: float) -> tuple[int, list[int]] | None:
    """For (turn index, raw reply) pairs in order: the turn where the first loop starts and the
    later turns that repeat, or are repeated by, another reply of the loop within `window`
    replies; None without a loop."""
    keys = [_Reply(raw) for _, raw in replies]
    for j in range(1, len(keys)):
        earlier = [i for i in range(max(0, j - window), j) if similar(keys[i], keys[j], threshold)]
        if earlier:
            start = earlier[0]
            repeats = [replies[k][0] for k in range(start + 1, len(keys))
                       if any(similar(keys[i], keys[k], threshold)
                              for i in range(max(start, k - window), min(len(keys), k + window + 1)) if i != k)]
            return replies[start][0], repeats
    return None
