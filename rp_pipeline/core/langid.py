"""Offline language ID for short replies (lingua: n-gram models shipped in the wheel)."""

from __future__ import annotations

import re
from functools import lru_cache

from rp_pipeline.core.languages import LANGUAGES

# Sticker text such as [委屈] and kaomoji carry emotion, not language.
_NON_LANGUAGE = re.compile(r"\[[^\[\]]{1,8}\]|[^\w\s]+")
MIN_LETTERS = 4  # below this lingua guesses; short "ok"/"哈哈" replies are not judged


@lru_cache(maxsize=1)
def _detector():
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in LANGUAGES]
    return LanguageDetectorBuilder.from_languages(*langs).build()


def detect_language(text: str) -> str | None:
    """ISO code of the text's language, or None when the text is too short to judge."""
    letters = _NON_LANGUAGE.sub(" ", text)
    if sum(ch.isalpha() for ch in letters) < MIN_LETTERS:
        return None
    lang = _detector().detect_language_of(letters)
    return lang.iso_code_639_1.name.lower() if lang else None
