"""The languages the pipeline can sample, generate, detect and export.

One table, because the seed sampler, the persona validator, the cleaner's language ID
and the corpus language-distribution report must agree on what a language code means.
"""

from __future__ import annotations

# ISO 639-1 code -> English name (the name is what lingua's enum and prompts use).
LANGUAGES: dict[str, str] = {
    "zh": "Chinese",
    "en": "English",
    "es": "Spanish",
    "ja": "Japanese",
    "ko": "Korean",
    "fr": "French",
    "de": "German",
    "pt": "Portuguese",
    "ru": "Russian",
    "ar": "Arabic",
    "it": "Italian",
    "id": "Indonesian",
    "vi": "Vietnamese",
    "th": "Thai",
    "tr": "Turkish",
    "hi": "Hindi",
}


# The writing systems a reply in each language may use (Unicode script names); every other
# language is written in Latin. Language-mix detection flags letters outside these.
SCRIPTS: dict[str, frozenset[str]] = {
    "zh": frozenset({"Han"}),
    "ja": frozenset({"Han", "Hiragana", "Katakana"}),
    "ko": frozenset({"Hangul", "Han"}),
    "ru": frozenset({"Cyrillic"}),
    "ar": frozenset({"Arabic"}),
    "th": frozenset({"Thai"}),
    "hi": frozenset({"Devanagari"}),
}
LATIN = frozenset({"Latin"})


def scripts_of(code: str) -> frozenset[str]:
    return SCRIPTS.get(code, LATIN)


# The letters of each script as code point ranges (the main blocks; digits, punctuation and
# emoji belong to none), for constraints that must name them: a decoder grammar's character class.
SCRIPT_LETTERS: dict[str, tuple[tuple[int, int], ...]] = {
    "Latin": ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F)),
    "Greek": ((0x370, 0x3FF),),
    "Cyrillic": ((0x400, 0x4FF),),
    "Arabic": ((0x600, 0x6FF),),
    "Devanagari": ((0x900, 0x97F),),
    "Thai": ((0xE00, 0xE7F),),
    "Hangul": ((0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7AF)),
    "Hiragana": ((0x3040, 0x309F),),
    "Katakana": ((0x30A0, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F)),
    "Han": ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF)),
}


def letters_outside(code: str) -> list[tuple[int, int]]:
    """The code point ranges of the letters of every script that `code` is not written in."""
    own = scripts_of(code)
    return [span for script, spans in SCRIPT_LETTERS.items() if script not in own for span in spans]


def check_language(code: str) -> str:
    """Pydantic validator: accept only codes the whole pipeline supports."""
    if code not in LANGUAGES:
        raise ValueError(f"unknown language {code!r}; expected one of {sorted(LANGUAGES)}")
    return code
