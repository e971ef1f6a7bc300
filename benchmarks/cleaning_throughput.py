"""Cleaning throughput: turns per second per core for `clean_rows` (the code `rp clean` and
the cleaned_dialogues asset run) on a seeded synthetic multilingual corpus, where the time
goes, and a plain baseline doing the same checks.

    nice -n 19 python benchmarks/cleaning_throughput.py [--quick] [--turns 100000] [--seed 0]

The corpus mixes zh/en/es/ja/ar personas (35/30/12/12/11%), 20-turn dialogues whose replies
are assembled from per-language fragments with emotion tags, images, kaomoji and stickers,
and about 10% of rows carrying one fault (goodbye, assistant-speak, stage direction, PII,
debris, wrong language, a loop tail, or an exact duplicate of an earlier row). Cleaning runs in
one process, so CPU seconds are one core's: turns / CPU seconds is the per-core figure.
A warm-up run on another seed loads lingua's models and datasketch first (a one-off cost
per process, a few seconds), so the figure is the steady state.

Beside the figure: a cProfile run over the same rows, its time attributed to the cleaner's
stages (language ID, phrase lists, echo, debris, PII, dedup, row bookkeeping...; see
`profiling.py`), lingua's own calls timed on the CPU clock where they happen, and the
baseline, measured in the same process: the same check functions called in a straight loop
over the turns, without the cleaner's contexts, verdicts, reports and row copies. Their ratio
says what the cleaner's own structure costs; the profile says which check to make cheaper
(a map: cProfile inflates Python against native code; the timed figure is the measurement).
Last line: the headline.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import patch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from profiling import Stages, profile_stages, table

from rp_pipeline.core import langid, signals
from rp_pipeline.core import rules as rules_module
from rp_pipeline.core.cleaning import ChatRow, CleaningConfig, CleaningResult, clean_rows
from rp_pipeline.core.cleaning.corpus_filters import corpus_filters
from rp_pipeline.core.cleaning.debris import strip_debris
from rp_pipeline.core.cleaning.filters import repair_untagged
from rp_pipeline.core.cleaning.loops import find_loop
from rp_pipeline.core.cleaning.pii import scrub_pii
from rp_pipeline.core.rules import RuleSet, check_character_reply, check_user_turn
from rp_pipeline.core.signals import find_structure
from rp_pipeline.settings import REPO_ROOT

GOAL = 20_000  # turns/s per core (issue 15)

EMOTIONS = ["happy", "neutral", "sad", "surprised", "angry"]
# Per language: subjects, verbs, objects (a reply says "<subject> <verb> <object>, <tail>"), tails, user lines.
FRAGMENTS = {
    "zh": (
        ["我", "我同事", "我妹妹", "老板", "隔壁的猫", "我妈"],
        ["今天买了", "刚看到", "昨天弄丢了", "特别喜欢", "又想要", "在研究"],
        ["一盆多肉", "一把新伞", "那家拉面", "一本旧书", "一只橘猫", "新出的游戏", "一杯拿铁", "一双跑鞋"],
        ["你呢？", "要不要一起？", "你猜猜看", "哈哈", "[委屈]", "(＾▽＾)", "真的假的", "好气哦"],
        ["你今天干嘛了", "我也是", "真的吗", "然后呢", "哈哈哈", "你喜欢什么"],
    ),
    "en": (
        ["I", "My coworker", "My sister", "The boss", "The cat next door", "My mom"],
        ["just bought", "saw", "lost", "really likes", "wants", "keeps talking about"],
        [
            "a tiny cactus",
            "a new umbrella",
            "that ramen place",
            "an old novel",
            "a ginger cat",
            "the new game",
            "a huge latte",
            "running shoes",
        ],
        ["what about you?", "want to come?", "guess!", "haha", "(´・ω・`)", "no way", "ugh"],
        ["what did you do today", "me too", "really?", "and then?", "lol", "what do you like"],
    ),
    "es": (
        ["Yo", "Mi compañera", "Mi hermana", "El jefe", "El gato del vecino", "Mi madre"],
        ["compró", "vio", "perdió", "adora", "quiere", "no deja de hablar de"],
        ["un cactus", "un paraguas nuevo", "ese ramen", "una novela vieja", "un gato naranja", "el juego nuevo"],
        ["¿y tú?", "¿vienes?", "adivina", "jaja", "¡qué va!"],
        ["qué hiciste hoy", "yo también", "¿en serio?", "¿y luego?", "jaja"],
    ),
    "ja": (
        ["私", "同僚", "妹", "店長", "隣の猫", "お母さん"],
        ["が今日買った", "が見つけた", "がなくした", "が大好きな", "が欲しがる"],
        ["サボテン", "新しい傘", "あのラーメン", "古い小説", "茶色の猫", "新作のゲーム", "大きなラテ"],
        ["あなたは？", "一緒に行く？", "当ててみて", "(＾▽＾)", "本当に？"],
        ["今日何してた", "私も", "本当に", "それで", "何が好き"],
    ),
    "ar": (
        ["أنا", "زميلتي", "أختي", "المدير", "قطة الجيران", "أمي"],
        ["اشتريت", "رأيت", "أضعت", "أحب", "أريد"],
        ["صبارا صغيرا", "مظلة جديدة", "مطعم الرامن", "رواية قديمة", "قطة برتقالية", "اللعبة الجديدة"],
        ["وأنت؟", "هل تأتي معي؟", "خمن", "هههه"],
        ["ماذا فعلت اليوم", "وأنا أيضا", "حقا؟", "ثم ماذا", "ماذا تحب"],
    ),
}
MIX = [("zh", 35), ("en", 30), ("es", 12), ("ja", 12), ("ar", 11)]
FAULTS = {
    "goodbye": {
        "zh": "好啦我先下线了，再见",
        "en": "Okay, gotta go, talk to you later",
        "es": "Me tengo que ir, adiós",
        "ja": "じゃあね、またね",
        "ar": "يجب أن أذهب، مع السلامة",
    },
    "assistant_speak": {
        "zh": "作为一个AI，我无法回答",
        "en": "As an AI, I'm here to help",
        "es": "Como una IA no puedo",
        "ja": "AIとして答えられません",
        "ar": "كذكاء اصطناعي لا أستطيع",
    },
    "stage_direction": {
        "zh": "（叹气）好吧",
        "en": "*sighs* fine",
        "es": "*suspira* bueno",
        "ja": "（ため息）いいよ",
        "ar": "(يتنهد) حسنا",
    },
    "pii": {
        "zh": "我电话13812345678",
        "en": "mail me at mia@example.com",
        "es": "mi correo es ana@example.com",
        "ja": "メールはhana@example.comだよ",
        "ar": "بريدي layla@example.com",
    },
    "debris": {
        "zh": "~~不是~~其实是#$%@",
        "en": "**so** tired <br> today",
        "es": "**muy** cansada &nbsp;",
        "ja": "~~違う~~本当は#$%@",
        "ar": "**متعبة** جدا <br>",
    },
    "wrong_language": {
        "zh": "I only speak English today honestly",
        "en": "我今天只想说中文，你觉得呢",
        "es": "我今天只想说中文，你觉得呢",
        "ja": "I only speak English today honestly",
        "ar": "I only speak English today honestly",
    },
}


def reply(rng: random.Random, lang: str, text: str | None = None) -> str:
    subjects, verbs, objects, tails, _ = FRAGMENTS[lang]
    cjk = lang in ("zh", "ja")
    space, comma = ("", "，") if cjk else (" ", ", ")
    said = space.join([rng.choice(subjects), rng.choice(verbs), rng.choice(objects)])
    body = text or f"{said}{comma}{rng.choice(tails)}"
    tagged = f"{body}<emotion>{rng.choice(EMOTIONS)}</emotion>"
    if rng.random() < 0.1:
        tagged += "<img><prompt>a cozy cafe at night</prompt><includePerson>true</includePerson></img>"
    return tagged


def synthesize(n_turns: int, seed: int) -> list[ChatRow]:
    rng = random.Random(seed)
    langs = [lang for lang, weight in MIX for _ in range(weight)]
    rows: list[ChatRow] = []
    while sum(len(r.messages) - 1 for r in rows) < n_turns:
        lang = rng.choice(langs)
        if rows and rng.random() < 0.02:  # an exact duplicate of an earlier row
            rows.append(rng.choice(rows).model_copy(update={"id": f"row-{len(rows)}"}))
            continue
        messages = [{"role": "system", "content": f"persona {rng.randrange(10**6)} ({lang})"}]
        fault = rng.choice([*list(FAULTS), "loop"]) if rng.random() < 0.08 else None
        fault_at = rng.randrange(2, 10)
        for turn in range(10):
            user = f"{rng.choice(FRAGMENTS[lang][4])} {rng.randrange(1000)}"
            text = None
            if fault == "loop" and turn >= fault_at:
                text = FRAGMENTS[lang][2][turn % 2]
            elif fault and turn == fault_at:
                text = FAULTS[fault][lang]
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply(rng, lang, text)}]
        rows.append(ChatRow.model_validate({"id": f"row-{len(rows)}", "language": lang, "messages": messages}))
    return rows


def plain_loop(rows: list[ChatRow], rules: RuleSet, config: CleaningConfig) -> int:
    """The baseline: the cleaner's checks, in its order and on the same context (each turn
    against the user message it answers, the opening line, earlier replies), called in a
    straight loop. No contexts, verdicts, reports, cuts or row copies: what checking alone costs.
    Returns the number of flags, so nothing is optimized away."""
    flags = 0
    for row in rows:
        last_user, last_character = None, row.opening_line
        replies: list[str] = []
        users: list[str] = []
        for message in row.messages[1:]:
            text = message.content
            flags += find_structure(text) is not None
            text, kinds = scrub_pii(text)
            text, debris = strip_debris(text)
            flags += len(kinds) + len(debris)
            if message.role == "assistant":
                text = repair_untagged(text) or text
                flags += len(
                    check_character_reply(
                        text,
                        row.language,
                        rules,
                        last_user,
                        opening_line=row.opening_line,
                        previous_replies=replies,
                        character_name=row.character_name,
                    )
                )
                replies.append(text)
                last_character = text
            else:
                found = check_user_turn(
                    text, row.language, rules, last_character=last_character, previous_user_turns=users
                )
                flags += len(found)
                users.append(text)
                last_user = text
        flags += len(find_loop(list(enumerate(replies)), config.loop_window, config.loop_similarity))
    return flags + len(corpus_filters(rows, config)[1])


# Profile stages: (label, the functions that enter it as (file suffix, function name)). A function
# that is none of these belongs to the stage of its callers; what only `clean_rows` and the row
# loop call is the cleaner's own bookkeeping.
STAGES: Stages = (
    (
        "language ID (lingua, script runs)",
        (("core/rules.py", "_language_violation"), ("core/rules.py", "_user_language")),
    ),
    ("phrase lists (assistant-speak, goodbye, meta)", (("core/rules.py", "find"),)),
    ("pattern families (assistant, language names)", (("core/rules.py", "search"),)),
    ("echo and near-copy", (("core/rules.py", "is_echo"), ("core/rules.py", "is_near_copy"))),
    (
        "reply format (parse, label words)",
        (
            ("core/reply_format.py", "parse_reply"),
            ("core/signals.py", "find_label_word"),
            ("cleaning/filters.py", "reply_format"),
        ),
    ),
    ("truncation", (("core/signals.py", "find_truncation"),)),
    ("self-repeat", (("core/signals.py", "find_self_repeat"),)),
    ("degenerate user turns", (("core/signals.py", "find_degenerate"),)),
    ("document structure", (("core/signals.py", "find_structure"),)),
    ("name prefix", (("core/signals.py", "find_name_prefix"),)),
    (
        "other rule code (stage directions, tags)",
        (("core/rules.py", "check_character_reply"), ("core/rules.py", "check_user_turn")),
    ),
    ("PII", (("cleaning/pii.py", "scrub_pii"),)),
    ("debris regexes", (("cleaning/debris.py", "strip_debris"),)),
    ("repetition loops", (("cleaning/loops.py", "find_loop"),)),
    ("dedup (exact hash, MinHash LSH)", (("cleaning/corpus_filters.py", "remove_duplicates"),)),
    ("overfrequent openings", (("cleaning/corpus_filters.py", "cap_openings"),)),
)
BOOKKEEPING = "row bookkeeping (contexts, verdicts, reports)"


class LinguaClock:
    """Stands in for lingua's detector during a run: answers through it and adds up the CPU
    time of its calls (two clock reads per call, about 1 µs against lingua's 50-200 µs). Timed
    where they happen, since lingua's n-gram tables are colder there than in a loop of its own
    calls (replayed alone, the same calls take about half the time)."""

    def __init__(self) -> None:
        self.detector = langid._detector()
        self.calls, self.seconds = 0, 0.0

    def _timed(self, method: Callable[[str], Any], text: str) -> Any:
        started = time.thread_time()
        try:
            return method(text)
        finally:
            self.seconds += time.thread_time() - started
            self.calls += 1

    def detect_language_of(self, text: str) -> Any:
        return self._timed(self.detector.detect_language_of, text)

    def compute_language_confidence_values(self, text: str) -> Any:
        return self._timed(self.detector.compute_language_confidence_values, text)


def cold_caches() -> None:
    """Empty the per-text caches (normalized keys, letter counts and weights), so that each measured
    run starts as the first did and none reuses what an earlier one computed for the same rows."""
    for cached in (rules_module.normalized, rules_module._letter_counts, signals.letter_weight):
        cached.cache_clear()


def cpu_seconds(work: Callable[[], object]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of `work()`; one process, so CPU seconds are one core's."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.process_time() - cpu, time.perf_counter() - wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="12,000 turns (under a minute on 2 cores)")
    parser.add_argument("--turns", type=int, default=None, help="turns to time (default 100,000; 12,000 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n_turns = args.turns or (12_000 if args.quick else 100_000)
    rows = synthesize(n_turns, args.seed)
    turns = sum(len(r.messages) - 1 for r in rows)
    rules, config = RuleSet.load(REPO_ROOT / "assets" / "rules"), CleaningConfig()
    # Steady state: lingua loads its n-gram models lazily, wordfreq its word lists, and datasketch
    # imports scipy on first use; a warm-up on a differently seeded sample pays those one-off costs.
    warm_up = synthesize(min(3_000 if args.quick else 5_000, n_turns), args.seed + 1)
    clean_rows(warm_up, rules, config)
    plain_loop(warm_up, rules, config)

    results: list[CleaningResult] = []
    lingua = LinguaClock()
    cold_caches()
    with patch.object(langid, "_detector", lambda: lingua):
        cpu, wall = cpu_seconds(lambda: results.append(clean_rows(rows, rules, config)))
    result = results[0]
    cold_caches()
    base_cpu, _ = cpu_seconds(lambda: plain_loop(rows, rules, config))
    cold_caches()
    stages = profile_stages(lambda: clean_rows(rows, rules, config), STAGES, BOOKKEEPING)

    actions = result.action_counts()
    print(
        f"rows {len(rows)}  turns {turns}  kept {len(result.kept)}  cut {actions['cut']}  "
        f"dropped {actions['drop']}  repaired turns {actions['repair']}"
    )
    print("flags by code: " + ", ".join(f"{c}={n}" for c, n in Counter(result.code_counts()).most_common()))
    total = sum(stages.values())
    print(f"\nwhere the time goes (cProfile over the same {turns} turns: {total:.1f} s profiled, {cpu:.1f} s not):")
    print("\n".join(table(stages)))
    if lingua.calls:
        print(
            f"  lingua itself, timed inside the unprofiled run: {lingua.calls} calls, cpu {lingua.seconds:.2f} s = "
            f"{100 * lingua.seconds / cpu:.0f}% of the cleaner's; everything else free: "
            f"{turns / lingua.seconds:,.0f} turns/s"
        )
    print(f"\ncleaner: wall {wall:.1f} s, cpu {cpu:.1f} s (one process) = {turns / cpu:,.0f} turns/s per core")
    print(
        f"baseline (the same checks in a plain loop): cpu {base_cpu:.1f} s = {turns / base_cpu:,.0f} turns/s per core; "
        f"cleaner / baseline = {base_cpu / cpu:.2f}"
    )
    print(f"cleaning: {turns / cpu:,.0f} turns/s per core (goal {GOAL:,}; baseline {turns / base_cpu:,.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
