"""The character reply rules of the field notes as checks that return reason codes.

Generation uses them to regenerate a bad reply; cleaning uses the same checks to drop or
repair what slipped through, so both stages agree on what "bad" means.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from difflib import SequenceMatcher
from functools import cached_property, lru_cache
from pathlib import Path

import regex
import yaml
from pydantic import BaseModel

from rp_pipeline.core.langid import (
    confidently_other,
    detect_language,
    find_mixed_span,
    in_own_script,
    script_share,
)
from rp_pipeline.core.languages import scripts_of
from rp_pipeline.core.models import Violation
from rp_pipeline.core.reply_format import MAX_CHARS, MAX_CHARS_WITH_IMAGE, ReplyFormatError, parse_reply
from rp_pipeline.core.signals import (
    alnum_only,
    find_degenerate,
    find_label_word,
    find_name_prefix,
    find_self_repeat,
    find_structure,
    find_truncation,
    letter_weight,
)

_STAGE_DIRECTION = re.compile(
    r"(?<!\*)\*[^*\n]{1,40}\*(?!\*)|(?<![A-Za-z0-9_])[（(]([^）)\n]{1,40})[）)]"
)  # **bold** is structure;
# print('你好') is a call in code, not a stage direction
_TAG = re.compile(r"<[^<>]*>")
_MARKUP = re.compile(r"</?[A-Za-z][A-Za-z0-9]*\s*/?>")  # <emotion>, </img>, <br/>: markup, not words
# A provider's JSON leaking into a line: a quoted key with its value, or a list of numbers.
_JSON_DEBRIS = re.compile(r'"\w+"\s*:\s*[\[{"\d]|\[\s*\d+(?:\s*,\s*\d+)+\s*\]')
_EMOTION_LABEL = re.compile(r"<emotion>[^<>]*</emotion>")
_IMAGE_BLOCK = re.compile(r"<img>.*?(?:</img>|$)", re.DOTALL)
_CODE = re.compile(r"```.*?(?:```|$)|`[^`\n]+`", re.DOTALL)  # code is no stage direction: print('你好')
_URL = re.compile(r"\bhttps?://\S+|\bwww\.\S+")  # an address is in no language
_NOTE = re.compile(r"^[*（(]\s*(?:注|备注|note|ooc)\b", re.IGNORECASE)  # a note is meta commentary
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})
ECHO_SIMILARITY = 0.8
ECHO_MIN_BLOCK = 12  # a copied run of this many letters is an echo, whatever surrounds it
ECHO_COPIED_WEIGHT = 16  # or of this weight, a CJK character counting two: 花は生活の中で大切です
ECHO_COVERAGE = 0.8  # or a CJK reply this much made of the user's runs, in order: 晚上加班挺正常的，累不累？


REGEX_LISTS = ("assistant_patterns", "language_names")  # lists of regular expressions, not phrases


class RuleSet(BaseModel):
    """Phrase lists per language from `assets/rules/*.yaml`; `exceptions` maps a list name to
    longer phrases that contain one of its phrases but do not mean it (再见到 is not 再见)."""

    assistant_speak: dict[str, list[str]]
    goodbye: dict[str, list[str]]
    meta_commentary: dict[str, list[str]]
    exceptions: dict[str, list[str]]
    assistant_patterns: dict[str, list[str]]  # regular expressions: families of assistant phrasings
    language_names: dict[str, list[str]]  # regular expressions: talking about the language spoken
    dangling_words: dict[str, list[str]]  # words a clause never ends on (a cut clause does)
    sentence_heads: dict[str, list[str]]  # words never a sentence alone (…需求。你 was cut)

    @classmethod
    def load(cls, rules_dir: Path) -> RuleSet:
        def read(name: str) -> dict[str, list[str]]:
            path = rules_dir / f"{name}.yaml"
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise ValueError(f"{path}: cannot read the rule list: {exc}") from exc
            if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
                raise ValueError(f"{path}: expected a mapping of language code -> list of phrases")
            if name in REGEX_LISTS:  # compiled on first use: a bad one must fail here, named
                for language, patterns in data.items():
                    for pattern in patterns:
                        try:
                            regex.compile(pattern)
                        except regex.error as exc:
                            raise ValueError(f"{path}: {language}: bad regular expression {pattern!r}: {exc}") from exc
            return data

        return cls(**{name: read(name) for name in cls.model_fields})

    @cached_property
    def not_names(self) -> frozenset[str]:
        """Discourse words that may stand before a colon at the start of a reply ("Note:", "说真的："):
        not a speaker's name."""
        return frozenset(word.casefold() for word in self.exceptions.get("name_prefix", ()))

    @cached_property
    def patterns(self) -> dict[str, tuple[re.Pattern[str], re.Pattern[str]]]:
        """Per list: (its phrases, its exceptions) as one compiled alternation each."""
        return {
            kind: (
                _phrase_pattern(tuple(p for ps in getattr(self, kind).values() for p in ps)),
                _phrase_pattern(tuple(self.exceptions.get(kind, ()))),
            )
            for kind in ("assistant_speak", "goodbye", "meta_commentary")
        }

    @cached_property
    def regexes(self) -> dict[str, tuple[regex.Pattern[str], ...]]:
        """Per regular-expression list: one alternation per language (16 short alternations
        run faster than one long one, whose lookbehinds defeat the engine's prefix scan)."""
        return {
            kind: tuple(
                regex.compile("|".join(f"(?:{p})" for p in patterns), regex.I)
                for patterns in getattr(self, kind).values()
                if patterns
            )
            for kind in REGEX_LISTS
        }

    def search(self, kind: str, text: str) -> str | None:
        """The text matched by the patterns of regular-expression list `kind` (any language)
        that starts first, or None."""
        text = _straight_apostrophes(text)
        matches = [m for m in (pattern.search(text) for pattern in self.regexes[kind]) if m]
        return min(matches, key=lambda m: m.start()).group(0) if matches else None

    def dangling(self, language: str) -> frozenset[str]:
        return self._casefolded_sets["dangling_words"].get(language, frozenset())

    def heads(self, language: str) -> frozenset[str]:
        return self._casefolded_sets["sentence_heads"].get(language, frozenset())

    @cached_property
    def _casefolded_sets(self) -> dict[str, dict[str, frozenset[str]]]:
        """The word lists truncation checks look words up in, built once (every reply asks)."""
        return {
            name: {language: frozenset(w.casefold() for w in words) for language, words in lists.items()}
            for name, lists in (("dangling_words", self.dangling_words), ("sentence_heads", self.sentence_heads))
        }

    @cached_property
    def screens(self) -> dict[str, re.Pattern[str]]:
        """Per phrase list: its phrases casefolded, as one prefix tree, for a substring pre-check."""
        lists = {kind: getattr(self, kind).values() for kind in ("assistant_speak", "goodbye", "meta_commentary")}
        return {
            kind: _literal_tree({p.translate(_APOSTROPHES).casefold() for ps in phrases for p in ps})
            for kind, phrases in lists.items()
        }

    def find(self, kind: str, text: str) -> str | None:
        """The first phrase of list `kind` (any language) that occurs in `text` outside its exceptions."""
        text = _straight_apostrophes(text)
        # A plain substring test first (most turns hold no phrase): the regex, with its word
        # boundaries and exceptions, runs only on a turn that contains one.
        if not self.screens[kind].search(text.casefold()):
            return None
        phrases, exceptions_pattern = self.patterns[kind]
        exceptions = [m.span() for m in exceptions_pattern.finditer(text)]
        for match in phrases.finditer(text):
            if not any(start <= match.start() and match.end() <= end for start, end in exceptions):
                return match.group(0)
        return None


def _straight_apostrophes(text: str) -> str:
    """`text` with curly apostrophes straight, as the lists write them (translating only when
    there is one: most texts have none, and `translate` copies the text either way)."""
    return text.translate(_APOSTROPHES) if "\u2019" in text or "\u2018" in text else text


def _literal_tree(phrases: Iterable[str]) -> re.Pattern[str]:
    """A pattern that finds any of `phrases` as a plain substring (no flags, no word boundaries),
    written as a prefix tree: the engine tests each position against one character class instead
    of trying hundreds of alternatives, about five times faster than `any(p in text ...)`."""
    tree: dict[str, dict] = {}
    for phrase in phrases:
        node = tree
        for char in phrase:
            node = node.setdefault(char, {})
        node[""] = {}  # a phrase ends here

    def pattern(node: dict[str, dict]) -> str:
        branches = [re.escape(char) + pattern(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    # a phrase that ends where a longer one goes on matches there: the optional tail keeps both
    return re.compile(pattern(tree) if tree else r"(?!)")


# A word character of a script with word boundaries (not Han, kana or Hangul).
_WORD_NOT_CJK = r"[^\W\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]"


@lru_cache(maxsize=32)
def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    """One alternation; phrases that start or end with a letter match whole words only, so
    "as an AI" does not fire on "has an aim". CJK has no word boundaries: a CJK neighbour is
    never part of the word, so "作为一个AI" still fires inside "作为一个AI助手"."""

    def bounded(phrase: str) -> str:
        body = re.escape(phrase)
        if phrase[:1].isascii() and phrase[:1].isalnum():
            body = rf"(?<!{_WORD_NOT_CJK})" + body
        if phrase[-1:].isascii() and phrase[-1:].isalnum():
            body += rf"(?!{_WORD_NOT_CJK})"
        return body

    ordered = sorted(set(phrases), key=len, reverse=True)
    return re.compile("|".join(bounded(p) for p in ordered) or r"(?!)", re.IGNORECASE)


def visible_text(raw: str, sep: str = "") -> str:
    """The reply without tags or emotion labels (a label is markup, not words). The rules pass
    `sep="\n"` so that clauses stay apart: "Vale<emotion>happy</emotion>Hasta mañana" holds the
    words "Vale" and "Hasta", not "ValeHasta", and 昨晚<tag>安静 no 晚安."""
    return _TAG.sub(sep, _EMOTION_LABEL.sub(sep, raw)).strip()


def spoken_text(raw: str, sep: str = "") -> str:
    """What the character says: the visible text without the image prompt (prompts are often
    written in English whatever the persona speaks, so they are never judged for language)."""
    return visible_text(_IMAGE_BLOCK.sub("", raw), sep)


def is_stage_direction(fragment: str) -> bool:
    """`*blinks*` or `（笑着说）` is narration; `(＾▽＾)` is a kaomoji and stays; `（注：…）` is a note
    from the generator (meta commentary), not the character acting."""
    return sum(ch.isalpha() for ch in fragment) >= 2 and not _NOTE.match(fragment)


@lru_cache(maxsize=8192)
def normalized(text: str) -> str:
    """The spoken letters and digits, casefolded: what echo, loop and duplicate checks compare."""
    return alnum_only(spoken_text(text).casefold())


@lru_cache(maxsize=8192)
def _letter_counts(key: str) -> Counter[str]:
    """Letter counts of a normalized text; a reply is compared with many earlier ones."""
    return Counter(key)


def _shared_letters(mine: str, theirs: str) -> int:
    """Letters two keys have in common, with multiplicity: no match between them is longer."""
    ours, others = _letter_counts(mine), _letter_counts(theirs)
    shared = 0
    for char in ours.keys() & others.keys():  # a plain loop: three times faster than Counter's `&`
        count, theirs_count = ours[char], others[char]
        shared += count if count < theirs_count else theirs_count
    return shared


def is_echo(reply: str, previous: str) -> bool:
    """The reply repeats the other side's last message (a failure of small simulators)."""
    mine, theirs = normalized(reply), normalized(previous)
    if not mine or not theirs:
        return False
    shorter, total = min(len(mine), len(theirs)), len(mine) + len(theirs)
    if shorter >= 8 and (mine in theirs or theirs in mine):
        return True
    # Exact pruning before SequenceMatcher (the costly part): matches never exceed shared
    # characters, and those never exceed the shorter key (a bound that costs nothing). A
    # copied CJK clause is shorter in characters than ECHO_MIN_BLOCK, so it prunes less.
    block = max(ECHO_MIN_BLOCK, len(mine) // 2)
    cjk = letter_weight(mine) > len(mine)
    least = min(block, ECHO_COPIED_WEIGHT // 2) if cjk else block
    if 2 * shorter / total < ECHO_SIMILARITY and shorter < least:
        return False
    shared = _shared_letters(mine, theirs)
    if 2 * shared / total < ECHO_SIMILARITY and shared < least:
        return False
    matcher = SequenceMatcher(None, mine, theirs, autojunk=False)
    match = matcher.find_longest_match(0, len(mine), 0, len(theirs))
    copied = letter_weight(mine[match.a : match.a + match.size])
    if matcher.ratio() >= ECHO_SIMILARITY or match.size >= block or copied >= ECHO_COPIED_WEIGHT:
        return True
    return cjk and _stitched_from(mine, matcher)


def _stitched_from(mine: str, matcher: SequenceMatcher) -> bool:
    """Most of a CJK reply is runs of two or more characters of the other message, in order,
    and they weigh a clause (a one-character run is any shared word, not a copy)."""
    runs = [b for b in matcher.get_matching_blocks() if b.size >= 2]
    covered = sum(b.size for b in runs)
    weight = sum(letter_weight(mine[b.a : b.a + b.size]) for b in runs)
    return covered >= ECHO_COVERAGE * len(mine) and weight >= ECHO_COPIED_WEIGHT


def is_near_copy(reply: str, earlier: str) -> bool:
    """The reply is (nearly) the whole of an earlier message of the same conversation: one
    contains the other, or they are at least ECHO_SIMILARITY alike. Stricter than `is_echo`:
    a character reusing a phrase of its own ("My coworker keeps talking about…") is speech,
    not a repeat."""
    mine, theirs = normalized(reply), normalized(earlier)
    if not mine or not theirs:
        return False
    # a CJK character weighs two letters: 输了算我的 (the tail of the opening line) is a copy, 好的 is not
    if (mine in theirs or theirs in mine) and min(letter_weight(mine), letter_weight(theirs)) >= 8:
        return True
    # the ratio never exceeds 2 * shared letters / total, and they never exceed the shorter key
    total = len(mine) + len(theirs)
    if 2 * min(len(mine), len(theirs)) / total < ECHO_SIMILARITY:
        return False
    if 2 * _shared_letters(mine, theirs) / total < ECHO_SIMILARITY:
        return False
    return SequenceMatcher(None, mine, theirs, autojunk=False).ratio() >= ECHO_SIMILARITY


def assistant_speak(raw: str, text: str, rules: RuleSet) -> str | None:
    """What makes a turn sound like an assistant: a listed phrase, a phrase of a pattern
    family ("I'm an AI…", "我可以帮你…", "It depends on…") or a document structure (code
    block, heading, list, bold, link, URL) in `raw`; `text` is its visible text."""
    if phrase := rules.find("assistant_speak", text) or rules.search("assistant_patterns", text):
        return phrase
    if structure := find_structure(raw):
        return f"structure: {structure}"
    return None


def _without_urls(text: str) -> str:
    return _URL.sub(" ", text) if "://" in text or "www." in text else text


SAME_SCRIPT_CONFIDENCE = 0.5  # lingua's confidence in another language of our script, ours under 0.1


def _language_violation(spoken: str, language: str) -> Violation | None:
    """`wrong_language` when the text is mostly in another language, `lang_mix` when a
    substantial span of another one sits inside it; None when it is fine or too short."""
    spoken = _without_urls(spoken)
    if in_own_script(spoken, language):
        return None
    detected = detect_language(spoken)
    if detected is not None and detected != language:
        # lingua can name the language of a short foreign span inside a text mostly written in
        # the persona's script; when the two languages share no script, the script majority decides.
        if not scripts_of(detected) & scripts_of(language):
            if script_share(spoken, language) <= 0.5:
                return Violation(code="wrong_language", detail=f"detected {detected}, expected {language}")
        # Short replies of related languages confuse lingua ("Vale, súbete" reads as Portuguese,
        # "Croissants, hands down" as French, each with ours near 0.3): a language of our script
        # counts only when lingua is sure of it and all but rules ours out.
        elif other := confidently_other(spoken, language, SAME_SCRIPT_CONFIDENCE):
            return Violation(code="wrong_language", detail=f"detected {other}, expected {language}")
    if span := find_mixed_span(spoken, language):
        return Violation(code="lang_mix", detail=span[:40])
    return None


def _echo_detail(raw: str, last_user: str | None, opening_line: str | None, previous_replies: Iterable[str]) -> str:
    if last_user is not None and is_echo(raw, last_user):
        return "repeats the user's message"
    if opening_line is not None and is_near_copy(raw, opening_line):
        return "repeats the opening line"
    for number, earlier in enumerate(previous_replies, start=1):
        if is_near_copy(raw, earlier):
            return f"repeats earlier reply {number}"
    return ""


def check_character_reply(
    raw: str,
    language: str,
    rules: RuleSet,
    last_user: str | None = None,
    *,
    opening_line: str | None = None,
    previous_replies: Iterable[str] = (),
    character_name: str | None = None,
) -> list[Violation]:
    """Every rule a character reply breaks, as reason codes with a short detail.

    `last_user` is the message it answers, `opening_line` the persona's first message and
    `previous_replies` the character's earlier replies in the dialogue: a reply that
    (nearly) copies any of them is an `echo`. `character_name` lets a `Name：` prefix with
    a lowercase or unusual name be recognised as well."""
    if not raw.strip():
        return [Violation(code="empty")]
    found: list[Violation] = []
    text = visible_text(raw, "\n")
    if detail := _echo_detail(raw, last_user, opening_line, previous_replies):
        found.append(Violation(code="echo", detail=detail))
    if prefix := find_name_prefix(text, character_name, rules.not_names):
        found.append(Violation(code="name_prefix", detail=prefix))
    clauses: list[str] = []
    try:
        reply = parse_reply(raw)
        clauses = [c.text for c in reply.clauses]
        if len(reply.text) > reply.char_limit:
            found.append(Violation(code="too_long", detail=f"{len(reply.text)} > {reply.char_limit} chars"))
    except ReplyFormatError as exc:
        found.append(Violation(code="bad_format", detail=str(exc)))
        # a reply that cannot be parsed is still read by the user: its length counts too
        if (length := len(visible_text(raw))) > (MAX_CHARS_WITH_IMAGE if "<img>" in raw else MAX_CHARS):
            found.append(Violation(code="too_long", detail=f"{length} chars, unparsed"))
    else:
        if word := next(filter(None, (find_label_word(c, language) for c in clauses)), None):
            found.append(Violation(code="bad_format", detail=f"label word {word!r} outside a tag"))
    without_image = _IMAGE_BLOCK.sub("", raw)
    if detail := find_truncation(without_image, clauses, rules.dangling(language), language, rules.heads(language)):
        found.append(Violation(code="truncated", detail=detail))
    if repeated := find_self_repeat(without_image):
        found.append(Violation(code="self_repeat", detail=repeated))
    if phrase := rules.find("meta_commentary", text):
        found.append(Violation(code="meta_commentary", detail=phrase))
    for match in _STAGE_DIRECTION.finditer(_CODE.sub(" ", text) if "`" in text else text):
        if is_stage_direction(match.group(0)):
            found.append(Violation(code="stage_direction", detail=match.group(0)))
            break
    if detail := assistant_speak(raw, text, rules):
        found.append(Violation(code="assistant_speak", detail=detail))
    if phrase := rules.search("language_names", text):
        found.append(Violation(code="language_name", detail=phrase))
    if phrase := rules.find("goodbye", text):
        found.append(Violation(code="goodbye", detail=phrase))
    spoken = spoken_text(raw, "\n")
    if degenerate := find_degenerate(spoken):
        found.append(Violation(code="degenerate", detail=degenerate))
    # a repeated letter or keyboard mash is in no language: lingua would name one at random
    elif violation := _language_violation(spoken, language):
        found.append(violation)
    return found


def check_user_turn(
    text: str,
    language: str,
    rules: RuleSet,
    *,
    last_character: str | None = None,
    previous_user_turns: Iterable[str] = (),
    switch_language: str | None = None,
) -> list[Violation]:
    """Every way a simulated user turn is garbage that the character should not be trained
    to answer: assistant-speak or a refusal, a degenerate repeat or keyboard mash, a copy of
    the character's last reply (a near-copy of the whole: picking one of the options the
    character offered, "Une tradition alors", is an answer), format tags or emotion label
    words or leaked JSON, another language. Short neutral turns ("ok", "哈哈", an emoji) are too short to
    judge for language. `switch_language`: the one other language this user was told to
    switch to (a dialogue that tests the character keeps its own); a turn in it is the test,
    not drift, while any third language still is."""
    if not text.strip():
        return [Violation(code="empty", detail="user turn")]
    found: list[Violation] = []
    plain = visible_text(text, "\n")
    off_language = _user_language(plain, language)
    # a deliberate switch is judged as the language it is in ("I'm so happy" is English, not a
    # label word leaking into a Chinese turn)
    if switch_language and off_language and not _user_language(plain, switch_language):
        language, off_language = switch_language, None
    if match := _MARKUP.search(text) or _JSON_DEBRIS.search(text):
        found.append(Violation(code="user_markup", detail=match.group(0)))
    elif word := find_label_word(text, language):
        found.append(Violation(code="user_markup", detail=f"label word {word!r}"))
    if degenerate := find_degenerate(text):
        found.append(Violation(code="user_degenerate", detail=degenerate))
    if last_character is not None and is_near_copy(text, last_character):
        found.append(Violation(code="user_echo", detail="repeats the character's reply"))
    elif letter_weight(normalized(text)) >= ECHO_MIN_BLOCK and (
        number := next((n for n, earlier in enumerate(previous_user_turns, 1) if is_echo(text, earlier)), None)
    ):  # a user may say 好的 or "haha" twice; a sentence again is a loop
        found.append(Violation(code="user_echo", detail=f"repeats the user's turn {number}"))
    if detail := assistant_speak(text, plain, rules):
        found.append(Violation(code="user_assistant_speak", detail=detail))
    # a repeated letter or keyboard mash is in no language: lingua would name one at random
    if not degenerate and off_language:
        found.append(Violation(code="user_wrong_language", detail=off_language))
    return found


USER_LANGUAGE_MIN_WORDS = 2  # "Okay", "Merci", "Pizza": one word of our script is too short to judge


def _user_language(plain: str, language: str) -> str | None:
    """Why a user turn is not in the dialogue's language, or None. Users write short, loose
    lines ("my password is ••••" reads as Italian to lingua), so a language sharing our
    script must be named with confidence in two words or more ("Okay" reads as Turkish);
    another script must hold most of the letters."""
    plain = _without_urls(plain)
    if in_own_script(plain, language):
        return None
    detected = detect_language(plain)
    if detected is not None and detected != language:
        if not scripts_of(detected) & scripts_of(language):
            if script_share(plain, language) <= 0.5:
                return f"detected {detected}, expected {language}"
        elif len(plain.split()) >= USER_LANGUAGE_MIN_WORDS and (
            other := confidently_other(plain, language, SAME_SCRIPT_CONFIDENCE)
        ):
            return f"detected {other}, expected {language}"
    if span := find_mixed_span(plain, language):
        return f"mixed: {span[:40]}"
    return None
