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


def check_language(code: str) -> str:
    """Pydantic validator: accept only codes the whole pipeline supports."""
    if code not in LANGUAGES:
        raise ValueError(f"unknown language {code!r}; expected one of {sorted(LANGUAGES)}")
    return code
