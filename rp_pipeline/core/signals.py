"""Out-of-character signals that are shapes, not phrases: a speaker prefix, an emotion label
word standing in the text, a character or syllable repeated, keyboard mash. `core/rules`
turns them into reason codes for both speakers.
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

import regex

from rp_pipeline.core.languages import scripts_of
from rp_pipeline.core.lexicon import UNKNOWN_WORD
from rp_pipeline.core.lexicon import lexicon as lexicon_of
from rp_pipeline.core.models import EMOTIONS

# Python's `re` counts as \w exactly what str.isalnum() accepts, and "_" (tests check every code
# point): one substitution instead of a generator over the characters. `regex` differs (marks).
_NOT_ALNUM = re.compile(r"[\W_]+")


def alnum_only(text: str) -> str:
    """The letters and digits of `text`, in order: what `ch.isalnum()` keeps."""
    return _NOT_ALNUM.sub("", text)


# --- speaker prefix (seed rule 1: no `角色名：` before a reply) ---------------------------

# A name: 2-4 Han characters that are not pronouns or particles ("我觉得：" is a thought, not a
# name), 2-10 kana or hangul, or 1-3 capitalized words.
_NAME_SHAPED = regex.compile(
    r"(?:(?![我你他她它们的了是在吗呢吧啊])\p{Han}){2,4}|[\p{Katakana}\p{Hiragana}\p{Hangul}ー·・]{2,10}"
    r"|\p{Lu}[\p{L}'’.-]*(?:[ ]\p{Lu}[\p{L}'’.-]*){0,2}"
)
_HAN_NAME = regex.compile(r"\p{Han}{3,4}")
_PREFIX = regex.compile(r"^\s*(?P<name>[^\s:：<>]{1,20}(?:[ ][^\s:：<>]{1,20}){0,2})\s*[:：]\s*(?=\S)")
# Who a transcript names before a line: never a character's own words, whatever follows.
ROLE_WORDS = frozenset(
    {
        *("assistant", "character", "ai", "bot", "user", "narrator", "system"),
        *("角色", "助手", "ai助手", "用户", "旁白", "系统", "キャラクター", "アシスタント", "캐릭터"),
    }
)


def _name_forms(name: str) -> set[str]:
    """A name and the parts a reply may use alone: "Mia Chen" -> Mia, Chen; 林小满 -> 小满."""
    name = name.strip().casefold()
    forms = {name, *name.split()}
    if _HAN_NAME.fullmatch(name):
        forms.add(name[1:])  # the given name without a one-character surname
    return {f for f in forms if f}


def find_name_prefix(text: str, character_name: str | None, not_names: frozenset[str]) -> str | None:
    """The `Name：` at the start of `text` (visible text, tags removed), or None.

    A role word ("Assistant:", "角色：") or a form of the character's name counts in any case;
    any other name-shaped prefix (see `_NAME_SHAPED`) counts unless
    it is a discourse word from `not_names` ("Note", "说真的", "PS"). "Guess what:" is not
    name-shaped (a lowercase word), so it stays.
    """
    match = _PREFIX.match(text)
    if not match:
        return None
    prefix = match.group("name")
    key = prefix.casefold()
    named = key in ROLE_WORDS or (character_name is not None and key in _name_forms(character_name))
    if named or (_NAME_SHAPED.fullmatch(prefix) and key not in not_names):
        return match.group(0).strip()
    return None


# --- emotion label words outside a tag ----------------------------------------------------

_LABEL_WORD = regex.compile(rf"(?<![\p{{Latin}}\p{{M}}'’-])({'|'.join(EMOTIONS)})(?![\p{{Latin}}\p{{M}}'’-])", regex.I)
_SENTENCE_END = ".!?;…。！？；"
# Label words that are ordinary words of another Latin-script language.
NATIVE_LABEL_WORDS = {"de": {"neutral"}, "es": {"neutral"}, "pt": {"neutral"}, "id": {"sad"}}


def find_label_word(text: str, language: str) -> str | None:
    """An emotion label word standing in `text` (one clause, tags removed), or None.

    In a language not written in Latin, or a Latin-script language other than English, a
    standalone English label word is a leak (" Neutral" after a Chinese sentence). In English
    the words are ordinary ("I'm so happy", "Sad? Me? Never"), so only a label that ends the
    clause without punctuation after a finished sentence or capitalized counts: "That's
    great. Neutral", "that sounds great Happy".
    """
    for match in _LABEL_WORD.finditer(text):
        word = match.group(1)
        if language != "en":
            if "Latin" in scripts_of(language) and word.casefold() in NATIVE_LABEL_WORDS.get(language, ()):
                continue
            return word
        before, after = text[: match.start()].rstrip(), text[match.end() :].strip()
        if not after and before and (before[-1] in _SENTENCE_END or word[0].isupper()):
            return word
    return None


# --- degenerate user turns ---------------------------------------------------------------

DEGENERATE_RUN_CHARS = 16  # a unit repeated over this many letters: "うううう…", "asdasdasd…"
DEGENERATE_MIN_REPEATS = 6
_REPEATED_UNIT = regex.compile(rf"(.{{1,3}}?)\1{{{DEGENERATE_MIN_REPEATS - 1},}}")
# One punctuation mark said over and over ("¡¡¡¡¡¡", "！！！！！！"): a tuned model's loop that
# has no letters for the runs above to see. Marks of trailing off and pauses repeat freely
# ("……", "......", "~~~", "——").
_PUNCTUATION_RUN = regex.compile(rf"(?![.。…・~～\-—_])(\p{{P}})\1{{{DEGENERATE_MIN_REPEATS - 1},}}")
# A longer unit ("asdf", "lolz") repeated inside one word: "asdfasdfasdfasdf" is mash, while
# "very very very very" is words, so spaces break these runs.
_REPEATED_LONG_UNIT = regex.compile(r"(\w{4,6}?)\1{3,}")
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
KEYBOARD_RUN = 5  # five neighbouring keys in a row: "asdfg", "hjkl;" is one short of it
# Every run of KEYBOARD_RUN neighbouring keys: a word is mash when one of its slices is one.
_KEYBOARD_RUNS = frozenset(r[i : i + KEYBOARD_RUN] for r in _KEYBOARD_ROWS for i in range(len(r) - KEYBOARD_RUN + 1))
_ASCII_WORD = regex.compile(r"[a-z0-9]+")
_VOWEL = regex.compile("[aeiouy]")
NO_VOWEL_WORD = 7  # "sdfghjk": seven Latin letters without a vowel is no word


def find_degenerate(text: str) -> str | None:
    """A character or syllable repeated far past emphasis, or keyboard mash, or None.

    Laughter and emphasis ("哈哈哈哈", "nooooo") stay under the run length; a longer unit
    repeated inside one word ("asdfasdfasdfasdf") counts too."""
    if match := _PUNCTUATION_RUN.search(text):
        return f"{match.group(1)!r} repeated {len(match.group(0))} times"
    folded = text.casefold()
    letters = alnum_only(folded)
    for match in _REPEATED_UNIT.finditer(letters):
        if len(match.group(0)) >= DEGENERATE_RUN_CHARS:
            return f"{match.group(1)!r} repeated {len(match.group(0)) // len(match.group(1))} times"
    for word in folded.split():
        match = _REPEATED_LONG_UNIT.search(word)
        if match and len(match.group(0)) >= DEGENERATE_RUN_CHARS:
            return f"{match.group(1)!r} repeated {len(match.group(0)) // len(match.group(1))} times"
    for word in _ASCII_WORD.findall(folded):
        if any(word[i : i + KEYBOARD_RUN] in _KEYBOARD_RUNS for i in range(len(word) - KEYBOARD_RUN + 1)):
            return f"keyboard mash {word!r}"
        if len(word) >= NO_VOWEL_WORD and word.isalpha() and not _VOWEL.search(word):
            return f"keyboard mash {word!r}"
    return None


# --- structure of an assistant's answer ---------------------------------------------------

_CLAUSE_TAG = regex.compile(r"<emotion>[^<>]*</emotion>")

_STRUCTURE = (
    ("code block", regex.compile(r"```|~~~")),
    ("markdown heading", regex.compile(r"(?m)^\s{0,3}#{1,6}\s+\S")),
    ("bullet list", regex.compile(r"(?m)(?:^\s*[-*•·]\s+\S.*\n){1,}^\s*[-*•·]\s+\S")),
    ("numbered list", regex.compile(r"(?s)(?:^|\s|[：:。])1\s*[.、)）]\s*\S.*?(?:^|\s|[。；;，,])2\s*[.、)）]\s*\S")),
    # a clause or line that opens with "1." after an introduction is a list, even cut after item 1
    ("numbered list", regex.compile(r"(?m)(?<=\S[^\n]*\n)^[ \t]*1[.、)）](?!\d)[ \t]*\S")),
    ("bold", regex.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")),
    ("markdown link", regex.compile(r"\[[^\[\]\n]+\]\((?:https?://|www\.|/)[^)\s]*\)")),
    ("url", regex.compile(r"\bhttps?://\S+|\bwww\.[\w-]+\.\w+")),
    ("table", regex.compile(r"(?m)^\s*\|.*\|.*\|\s*$")),
)
# What every structure above needs (a mark, a "1", "://" or "www."): most turns hold none.
_STRUCTURE_MARK = regex.compile(r"[`~#\-*•·1_\[|]|://|www\.")


def find_structure(raw: str) -> str | None:
    """The name of the first document structure in a turn (code block, heading, list, bold,
    link, URL, table): an assistant's answer, never how a person chats. Kaomoji, `[委屈]`
    stickers and "1 cup" are not lists. A clause tag counts as a line break, so a list whose
    items are clauses (「以下の手順で…<emotion>…</emotion>1. テーマを決める」) is still a list."""
    if not _STRUCTURE_MARK.search(raw):
        return None
    text = _CLAUSE_TAG.sub("\n", raw) if "<" in raw else raw
    for name, pattern in _STRUCTURE:
        if pattern.search(text):
            return name
    return None


# --- a reply cut short --------------------------------------------------------------------

_OPEN_TAG_AT_END = regex.compile(r"<[^<>]*$|<(emotion|prompt|includePerson|img)>(?:(?!</\1>).)*$", regex.S)
_EMOTION_TAG = regex.compile(r"<emotion>[^<>]*</emotion>")
_HYPHEN_CUT = regex.compile(r"\p{L}[-‐]$")
_LAST_WORD = regex.compile(r"([\p{L}'’]+)$")
# The last word standing after a space or a hyphen (":p" is a face, not a word).
_FINAL_WORD = regex.compile(r"(?:^|(?<=[\s-]))([\p{L}'’]+)$")
# Laughter and sounds, no words: a syllable said again (jajaj, hehe, lolol) or a letter held (brrr, mmmh)
_LAUGHTER = regex.compile(r"^(\p{L}{1,2}?)\1+\p{L}?$|(\p{L})\2\2")
_JA_CUT = regex.compile(r"\p{Han}\p{Hiragana}?[っッ]$")  # 終わっ, 言っ: a verb before its ending; あっ/えっ stay
# Hangul final consonants no word ends on: ㄶ ㅀ ㅆ ㅎ (많, 싫, 있, 좋 are stems waiting for an ending)
_KO_STEM_FINALS = frozenset({6, 15, 20, 27})
SPLIT_MIN_CLAUSE = 15  # a word split across a tag only counts after a long clause (a bound cut it)
SPACELESS = frozenset({"zh", "ja", "th"})  # no spaces between words: dangling words are matched as endings


def _korean_stem(clause: str) -> bool:
    last = clause[-1:]
    return "\uac00" <= last <= "\ud7a3" and (ord(last) - 0xAC00) % 28 in _KO_STEM_FINALS


_SENTENCE_BREAK = regex.compile(r"[.!?。！？]+")
_SET_OFF = regex.compile(r"[,!?;:…]\s*$")  # a comma or mark, then the last word
_LETTERS = regex.compile(r"\p{L}+")
_THREE_LETTERS_AT_END = regex.compile(r"\p{L}{3}$")
_LOWERCASE = regex.compile(r"\p{Ll}")


def _cut_last_word(clause: str, language: str) -> str | None:
    """How the last clause ends mid-word, or None: a Japanese verb cut before its ending
    (終わっ), a Korean stem without its ending (많), or a last word that the language's word
    list reads as the head of a longer one (mojad, Bremsbel, two d, two da; `core/lexicon`).
    Names (capitalized, except in German), acronyms, laughter (jajaj, mmmh) and a short word
    set off by a comma (", ha", ", ma") are not judged."""
    if not clause or not clause[-1].isalpha():
        return None  # punctuation, an emoji or a kaomoji closed the clause
    if language == "ja" and _JA_CUT.search(clause):
        return f"clause ends mid-word: {clause[-15:]!r}"
    if language == "ko" and _korean_stem(clause):
        return f"clause ends on a stem: {clause[-15:]!r}"
    if (lexicon := lexicon_of(language)) is None or len(clause.split()) < 2:
        return None
    match = _FINAL_WORD.search(clause)
    if not match:
        return None
    word = match.group(1)
    capitalized = word[:1].isupper() and (language != "de" or len(word) == 1)
    if capitalized or (word.isupper() and len(word) > 1) or _LAUGHTER.search(word.casefold()):
        return None
    before = clause[: match.start()]
    if len(word) <= 2 and _SET_OFF.search(before):
        return None  # set off by a comma, a short word is an interjection or a name: "You wish, ha", "Ven, ma"
    after_hyphen = before.endswith("-")
    if lexicon.looks_cut(word.casefold().replace("’", "'"), after_hyphen=after_hyphen):
        return f"clause ends mid-word: {clause[-20:]!r}"
    return None


def _split_word(before: str, after: str, language: str | None) -> bool:
    """`…AI-compani` + `on app` is one word split by a tag: the two halves make a word, or the
    first half reads as cut. `…blueberry scone left` + `and two croissants` is two clauses.
    Without a word list (or a language) the shape alone decides."""
    lexicon = lexicon_of(language) if language is not None else None
    if lexicon is None:
        return True
    head = _FINAL_WORD.search(before.rstrip())
    tail = _LETTERS.match(after)
    if not head or not tail:
        return True
    left = head.group(1).casefold()
    after_hyphen = before.rstrip()[: head.start()].endswith("-")
    return lexicon.frequency(left + tail.group(0).casefold()) >= UNKNOWN_WORD or lexicon.looks_cut(
        left, after_hyphen=after_hyphen
    )


def find_truncation(
    raw: str,
    clauses: list[str],
    dangling: frozenset[str],
    language: str | None = None,
    heads: frozenset[str] = frozenset(),
) -> str | None:
    """How a reply was cut short, or None: it ends inside a tag (`…<emoti`, `<emotion>hap`),
    a word runs on across a clause tag (`I'm an AI-compani<emotion>happy</emotion>on app`),
    a clause stops on a hyphen or on a word no clause ends on ("the", "and", 因为: `dangling`),
    its last sentence is a word that only begins one (…需求。你: `heads`),
    or the last clause ends mid-word (see `_cut_last_word`; given `language`). `clauses` are
    the clause texts, tags removed. A Chinese clause cut after a whole word (我听说你们下周)
    or inside one whose head is a word too (一点桂) cannot be told from a finished one."""
    text = raw.rstrip()
    if match := _OPEN_TAG_AT_END.search(text):
        return f"ends inside a tag: {match.group(0)[-20:]!r}"
    parts = _EMOTION_TAG.split(text)
    for before, after in itertools.pairwise(parts):
        cut = _THREE_LETTERS_AT_END.search(before) and _LOWERCASE.match(after)
        if cut and len(before.strip()) >= SPLIT_MIN_CLAUSE and _split_word(before, after, language):
            return f"word split across a tag: {before.split()[-1]}|{after.split()[0]}"
    for clause in clauses:
        clause = clause.rstrip()
        if _HYPHEN_CUT.search(clause):
            return f"clause ends mid-word: {clause[-15:]!r}"
        sentences = _SENTENCE_BREAK.split(clause)
        if len(sentences) > 1 and (lone := sentences[-1].strip().casefold()) in heads:
            return f"clause ends on a lone {lone!r}: {clause[-20:]!r}"
        if language in SPACELESS:
            if ending := next((w for w in dangling if clause.endswith(w) and len(clause) > len(w)), None):
                return f"clause ends on {ending!r}: {clause[-20:]!r}"
            continue
        word = _LAST_WORD.search(clause)
        hyphenated = word and clause[: word.start()].endswith("-")  # "Fais-le" ends on a pronoun
        if word and not hyphenated and word.group(1).casefold() in dangling and len(clause.split()) > 1:
            return f"clause ends on {word.group(1)!r}: {clause[-20:]!r}"
    if clauses and language is not None:
        return _cut_last_word(clauses[-1].rstrip(), language)
    return None


# --- a reply repeating itself -------------------------------------------------------------

_CLAUSE_BREAK = regex.compile(r"<emotion>[^<>]*</emotion>|<[^<>]*>|[.!?;。！？；…\n]+")
SELF_REPEAT_WEIGHT = 10  # a repeated clause must weigh this much: 5 CJK characters or 10 letters
SELF_REPEAT_SIMILARITY = 0.8


_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
_REPEATED_RUN = regex.compile(r"(.{5,}?)\1")


@lru_cache(maxsize=8192)
def letter_weight(key: str) -> int:
    """Letters, a CJK character counting as two (it carries about a word). Cached: echo and
    loop checks weigh the same reply against every other one."""
    return len(key) + len(_CJK.findall(key))


def _bigram_similarity(a: str, b: str) -> float:
    grams_a = {a[i : i + 2] for i in range(len(a) - 1)} or {a}
    grams_b = {b[i : i + 2] for i in range(len(b) - 1)} or {b}
    return len(grams_a & grams_b) / len(grams_a | grams_b)


SELF_REPEAT_CLAUSE_WEIGHT = 5  # a whole tagged clause said again at once: 桂花拿铁, ¡Qué va!


def find_self_repeat(visible: str) -> str | None:
    """The clause or sentence a reply says twice (same letters, or nearly), a whole tagged
    clause said again right after itself (桂花拿铁<emotion>…</emotion>桂花拿铁, a stutter of
    generation, shorter), or a run of letters repeated back to back ("今天天气真好今天天气真好");
    short interjections inside a clause ("哈哈！哈哈！", "No, no") and laughter are emphasis and
    stay. `visible` is the reply with its tags."""
    clauses = [(c.strip(), alnum_only(c.casefold())) for c in _EMOTION_TAG.split(visible)]
    for (_, before), (text, after) in itertools.pairwise(clauses):
        if before == after and letter_weight(before) >= SELF_REPEAT_CLAUSE_WEIGHT and len(set(before)) > 2:
            return text[:40]
    keys = []
    for piece in _CLAUSE_BREAK.split(visible):
        key = alnum_only(piece.casefold())
        if letter_weight(key) >= SELF_REPEAT_WEIGHT:
            keys.append((key, piece.strip()))
    for j, (key, piece) in enumerate(keys):
        for earlier, _ in keys[:j]:
            if key == earlier or _bigram_similarity(key, earlier) >= SELF_REPEAT_SIMILARITY:
                return piece[:40]
    letters = alnum_only(_CLAUSE_BREAK.sub("", visible).casefold())
    for match in _REPEATED_RUN.finditer(letters):
        if letter_weight(match.group(1)) >= SELF_REPEAT_WEIGHT and len(set(match.group(1))) > 2:
            return match.group(1)[:40]
    return None
