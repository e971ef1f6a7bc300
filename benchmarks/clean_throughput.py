"""Cleaning throughput: turns per second per core for `clean_rows` (the code `rp clean` and
the cleaned_dialogues asset run) on a seeded synthetic multilingual corpus.

    nice -n 19 python benchmarks/clean_throughput.py [--turns 100000] [--seed 0]

The corpus mixes zh/en/es/ja/ar personas (35/30/12/12/11%), 20-turn dialogues whose replies
are assembled from per-language fragments with emotion tags, images, kaomoji and stickers,
and about 10% of rows carrying one fault (goodbye, assistant-speak, stage direction, PII,
debris, wrong language, a loop tail, or an exact duplicate of an earlier row). Cleaning runs in
one process, so CPU seconds are one core's: turns / CPU seconds is the per-core figure.
A warm-up run on another seed loads lingua's models and datasketch first (a one-off cost
per process, a few seconds), so the figure is the steady state.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rp_pipeline.core.cleaning import ChatRow, CleaningConfig, clean_rows
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.settings import REPO_ROOT

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = synthesize(args.turns, args.seed)
    turns = sum(len(r.messages) - 1 for r in rows)
    rules = RuleSet.load(REPO_ROOT / "assets" / "rules")
    # Steady state: lingua loads its n-gram models lazily and datasketch imports scipy on first use;
    # a warm-up run on a differently seeded sample pays those one-off costs before timing.
    clean_rows(synthesize(5_000, args.seed + 1), rules, CleaningConfig())
    wall, cpu = time.perf_counter(), time.process_time()
    result = clean_rows(rows, rules, CleaningConfig())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    actions = result.action_counts()
    print(
        f"rows {len(rows)}  turns {turns}  kept {len(result.kept)}  cut {actions['cut']}  "
        f"dropped {actions['drop']}  repaired turns {actions['repair']}"
    )
    print("flags by code: " + ", ".join(f"{c}={n}" for c, n in Counter(result.code_counts()).most_common()))
    print(f"wall {wall:.1f} s, cpu {cpu:.1f} s (one process)")
    print(f"cleaning throughput: {turns / cpu:,.0f} turns/s per core")


if __name__ == "__main__":
    main()
