"""Offline language ID for short replies (lingua: n-gram models shipped in the wheel), and
detection of another language mixed into an otherwise in-language reply.

The two are different failures: a reply whose dominant language is wrong is `wrong_language`;
a reply in the right language with a substantial span of another one is `lang_mix`. Sticker
text such as [委屈], kaomoji, short Latin acronyms and single loanwords or brand names
("iPhone", "KTV") carry emotion or are normal usage, so they never count as a mix.
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

import regex

from rp_pipeline.core.languages import LANGUAGES, scripts_of

# Sticker text such as [委屈] and kaomoji carry emotion, not language.
STICKER = re.compile(r"\[[^\[\]\s]{1,8}\]")
_NON_LANGUAGE = re.compile(STICKER.pattern + r"|[^\w\s]+")
MIN_LETTERS = 4  # below this lingua guesses; short "ok"/"哈哈" replies are not judged

_SCRIPT_NAMES = (
    "Han",
    "Hiragana",
    "Katakana",
    "Hangul",
    "Latin",
    "Cyrillic",
    "Arabic",
    "Hebrew",
    "Thai",
    "Devanagari",
    "Greek",
)
# One alternation with a named group per script: finditer + lastgroup classifies runs in one pass.
_SCRIPT_RUN = regex.compile("|".join(rf"(?P<{name}>[\p{{{name}}}\p{{M}}]+)" for name in _SCRIPT_NAMES))
_SENTENCE = re.compile(r"[.!?;。！？；\n]+")
# What makes a foreign span "substantial", per kind of script.
MIX_LATIN_WORDS, MIX_LATIN_LETTERS = 3, 15  # one loanword or "Hello Kitty" is not a mix
MIX_HAN_CHARS = 2
MIX_OTHER_LETTERS = 3  # a lone "ω" or "ツ" inside a kaomoji is not a mix
ACRONYM_MAX = 5  # "AI", "KTV", "NASA" are normal in any language
MIX_SEGMENT_WORDS = 4  # same-script mix: a clause this long in another language
MIX_CONFIDENCE = 0.7
_LATIN_WORD = regex.compile(r"[\p{Latin}\p{M}]+")


@lru_cache(maxsize=1)
def _detector():
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in LANGUAGES]
    return LanguageDetectorBuilder.from_languages(*langs).build()


def detect_language(text: str) -> str | None:
    """ISO code of the text's language, or None when the text is too short to judge."""
    letters = _NON_LANGUAGE.sub(" ", text)
    if next(itertools.islice((ch for ch in letters if ch.isalpha()), MIN_LETTERS - 1, None), None) is None:
        return None  # fewer than MIN_LETTERS letters (counting stops at the last one needed)
    lang = _detector().detect_language_of(letters)
    return lang.iso_code_639_1.name.lower() if lang else None


def _foreign_runs(text: str, allowed: frozenset[str]) -> list[tuple[str, str]]:
    """Maximal (script, text) spans of letters outside `allowed`; spaces and punctuation
    between two runs of the same foreign script join them, any allowed letter splits them."""
    runs: list[tuple[str, str]] = []
    previous_end = -1
    for match in _SCRIPT_RUN.finditer(text):
        script = str(match.lastgroup)  # every alternative is a named group
        if script in allowed:
            previous_end = -1
            continue
        if runs and runs[-1][0] == script and previous_end >= 0:
            runs[-1] = (script, runs[-1][1] + text[previous_end : match.end()])
        else:
            runs.append((script, match.group()))
        previous_end = match.end()
    return runs


def script_share(text: str, language: str) -> float:
    """Share of the letters written in the scripts of `language` (1.0 when there are none)."""
    counts: dict[str, int] = dict.fromkeys(_SCRIPT_NAMES, 0)
    for match in _SCRIPT_RUN.finditer(STICKER.sub(" ", text)):
        counts[str(match.lastgroup)] += len(match.group())
    total = sum(counts.values())
    return sum(counts[name] for name in scripts_of(language)) / total if total else 1.0


# Scripts that only one supported language is written in, and the script that tells Japanese
# (kana) or Korean (hangul) from Chinese when Han characters are mixed in.
_OWN_SCRIPTS = {
    "zh": ("Han", "Han"),
    "ja": ("Han Hiragana Katakana", "Hiragana Katakana"),
    "ko": ("Hangul Han", "Hangul"),
    "ru": ("Cyrillic", "Cyrillic"),
    "ar": ("Arabic", "Arabic"),
    "th": ("Thai", "Thai"),
    "hi": ("Devanagari", "Devanagari"),
}


def in_own_script(text: str, language: str) -> bool:
    """Every letter of `text` (stickers aside) is in the scripts of `language`, which no other
    supported language shares, with its telltale script present (kana for Japanese, hangul
    for Korean): then the text is in `language` and holds no other, without asking lingua.
    Han-only text counts as Chinese. Always False for languages written in Latin."""
    if language not in _OWN_SCRIPTS:
        return False
    allowed, telltale = (frozenset(names.split()) for names in _OWN_SCRIPTS[language])
    text = STICKER.sub(" ", text)
    runs = list(_SCRIPT_RUN.finditer(text))
    seen = {match.lastgroup for match in runs}
    covered = sum(len(match.group()) for match in runs)  # letters of a script not listed fall through
    return seen <= allowed and bool(seen & telltale) and covered >= sum(ch.isalpha() for ch in text)


def _substantial(script: str, span: str) -> bool:
    if script == "Latin":
        words = [w for w in _LATIN_WORD.findall(span) if not (w.isupper() and len(w) <= ACRONYM_MAX)]
        return len(words) >= MIX_LATIN_WORDS or (len(words) >= 2 and sum(map(len, words)) >= MIX_LATIN_LETTERS)
    if script == "Han":
        return sum(ch.isalpha() for ch in span) >= MIX_HAN_CHARS
    return sum(ch.isalpha() for ch in span) >= MIX_OTHER_LETTERS


def find_mixed_span(text: str, language: str) -> str | None:
    """A substantial span of another language inside `text` (already without format tags or
    image prompts), or None. Other scripts are found by Unicode script; for languages written
    in Latin, a clause of several words that lingua assigns to another language counts too."""
    text = STICKER.sub(" ", text)
    allowed = scripts_of(language)
    for script, span in _foreign_runs(text, allowed):
        if _substantial(script, span):
            return span.strip()
    if "Latin" in allowed:
        clauses = [c for c in _SENTENCE.split(text) if len(c.split()) >= MIX_SEGMENT_WORDS]
        if len(clauses) >= 2:
            for clause in clauses:
                if _confidently_other(clause, language):
                    return clause.strip()
    return None


def _confidently_other(clause: str, language: str) -> bool:
    """Short clauses of related languages (es/pt/it) confuse lingua, so a clause counts as
    foreign only when lingua is sure of another Latin-script language and not of ours."""
    code = confidently_other(clause, language, MIX_CONFIDENCE)
    return code is not None and "Latin" in scripts_of(code)


def confidently_other(text: str, language: str, confidence: float) -> str | None:
    """The language lingua names for `text` when it is not `language`, lingua gives it at least
    `confidence` and ours under 0.1; None otherwise (the text may well be ours)."""
    values = _detector().compute_language_confidence_values(_NON_LANGUAGE.sub(" ", text))
    if not values:
        return None
    top = values[0]
    code = top.language.iso_code_639_1.name.lower()
    ours = next((v.value for v in values if v.language.iso_code_639_1.name.lower() == language), 0.0)
    return code if code != language and top.value >= confidence and ours < 0.1 else None
