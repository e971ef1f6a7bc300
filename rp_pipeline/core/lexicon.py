"""Is the last word of a reply a word, or the head of one cut short ("I marinated it for two d",
"estaba mojad", "Bremsbel", "девятьсо")? Asked of wordfreq's word lists (Apache-2.0 code,
frequency data shipped in the wheel, read offline), for the languages written in Latin or
Cyrillic letters with spaces between words.

A fragment cut from a word is rare or unknown as a word itself, while the words it begins
are common: "mojad" is no Spanish word and "mojado/mojada" are frequent. A real rare word
("tablao", "bailaora", a name) begins no common words, and a common word ("go", "cat") is
never judged. Measured on the word lists themselves (words drawn by frequency as a clause's
last word; the same words cut at a random letter): about 0.3-0.9% of real words are taken
for cut ones (Russian, with its many short forms of longer words, the most), and about 60%
of cut words are caught; the rest of the cuts left a real word ("two d" aside: see
`ONE_LETTER_WORD`), which nothing can tell from an uncut one.
"""

from __future__ import annotations

import bisect
import itertools
from array import array
from functools import cache

from rp_pipeline.core.languages import scripts_of

COMMON_WORD = 1e-5  # a word at least this frequent is never judged cut
EXTENSION_RATIO = 15  # the words it begins are this many times more frequent than it …
EXTENSION_MIN = 2e-7  # … and at least this frequent together ("bremsbel" -> Bremsbelag, -beläge)
UNKNOWN_WORD = 1e-7  # below this a word is unknown: the test for the part after a hyphen
SHORT_COMMON_WORD = 1e-4  # a two-letter word below this frequency …
SHORT_EXTENSION_RATIO = 100  # … that begins words this many times as frequent is a cut head ("two da": 107x)
ONE_LETTER_WORD = 2.5e-3  # one-letter words of a language ("a", "y", "и") are at least this frequent
_FLOOR = 1e-8  # the frequency of a word not in the list (the large lists stop at 1e-8)


class Lexicon:
    """Word frequencies of one language as sorted words and a prefix sum of their frequencies
    (half the memory of a dict): a word's frequency and the summed frequency of the words
    that start with a string are two binary searches."""

    def __init__(self, frequencies: dict[str, float]) -> None:
        self.words = sorted(frequencies)
        self.cumulative = array("d", [0.0, *itertools.accumulate(frequencies[w] for w in self.words)])

    def frequency(self, word: str) -> float:
        at = bisect.bisect_left(self.words, word)
        found = at < len(self.words) and self.words[at] == word
        return self.cumulative[at + 1] - self.cumulative[at] if found else 0.0

    def extensions(self, word: str) -> float:
        """Summed frequency of the longer words that begin with `word`."""
        low = bisect.bisect_right(self.words, word)
        high = bisect.bisect_left(self.words, word + "\U0010ffff", lo=low)
        return self.cumulative[high] - self.cumulative[low]

    def looks_cut(self, word: str, *, after_hyphen: bool = False) -> bool:
        """`word` (casefolded) reads as the head of a longer word: rare or unknown itself,
        the start of far more frequent words. After a hyphen only an unknown word counts
        ("по-английски" is split by the list's tokenizer, "AI-compani" is cut)."""
        if len(word) == 1:
            return self.frequency(word) < ONE_LETTER_WORD
        frequency, extensions = self.frequency(word), self.extensions(word)
        if len(word) == 2 and not after_hyphen and frequency < SHORT_COMMON_WORD:
            return extensions >= SHORT_EXTENSION_RATIO * max(frequency, _FLOOR)
        if frequency >= (UNKNOWN_WORD if after_hyphen else COMMON_WORD):
            return False
        return extensions >= EXTENSION_MIN and extensions >= EXTENSION_RATIO * max(frequency, _FLOOR)


@cache
def lexicon(language: str) -> Lexicon | None:
    """The word list of `language`, or None when it has none or is not written in Latin or
    Cyrillic letters (CJK and Thai have no spaces; a word list cannot say where a word ends)."""
    if not scripts_of(language) & {"Latin", "Cyrillic"}:
        return None
    import wordfreq  # loaded on first use: 0.2-1.5 s and 25-60 MB per language

    for size in ("large", "small"):
        if language in wordfreq.available_languages(size):
            frequencies = wordfreq.get_frequency_dict(language, size)
            return Lexicon({w: f for w, f in frequencies.items() if not any(ch.isdigit() for ch in w)})
    return None
