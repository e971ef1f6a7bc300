"""The word lists that tell a word cut short from a finished one (core/lexicon): wordfreq's
data ships in its wheel, so this runs offline."""

from __future__ import annotations

import pytest

from rp_pipeline.core.lexicon import lexicon


@pytest.mark.parametrize(
    "lang, cut, whole",
    [
        ("en", ["d", "da", "mel", "compani", "marinat"], ["days", "melting", "tacos", "go", "a", "zoo", "hi", "ok"]),
        ("es", ["mojad", "buenísi"], ["mojado", "tablao", "bailaora", "cariño", "y"]),
        ("de", ["bremsbel", "schmie"], ["bremse", "fahrrad", "ich"]),
        ("fr", ["croissa", "céré"], ["croissant", "un", "à"]),
        ("ru", ["велосипе", "девятьсо"], ["велосипед", "хорошо", "и"]),
    ],
)
def test_a_cut_word_reads_cut_and_a_word_does_not(lang, cut, whole):
    words = lexicon(lang)
    assert words is not None
    assert [w for w in cut if not words.looks_cut(w)] == []
    assert [w for w in whole if words.looks_cut(w)] == []


def test_after_a_hyphen_only_an_unknown_word_counts():
    """The list's tokenizer splits "по-английски", so its tail is a rare "word"."""
    words = lexicon("ru")
    assert not words.looks_cut("английски", after_hyphen=True)
    assert lexicon("en").looks_cut("compani", after_hyphen=True)


@pytest.mark.parametrize("lang", ["zh", "ja", "ko", "th"])
def test_languages_without_spaces_or_latin_and_cyrillic_have_no_list(lang):
    assert lexicon(lang) is None
