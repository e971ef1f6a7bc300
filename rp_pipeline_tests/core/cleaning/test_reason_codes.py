"""Every reason code fires on a positive example and stays quiet on a negative one, in
Chinese and English (and Arabic, a right-to-left script, for lang_mix)."""

from __future__ import annotations

import pytest

from rp_pipeline_tests.core.cleaning.helpers import clean, codes_by_turn, last_reply_codes, row

E = "<emotion>{}</emotion>".format
IMG = "<img><prompt>{}</prompt><includePerson>true</includePerson></img>".format
INTERVIEW_ZH, INTERVIEW_EN = "我最近在准备一个面试，有点紧张", "I am preparing for a job interview and I am nervous"

# (code, language, user message, positive reply, negative reply)
REPLY_CASES = [
    (
        "wrong_language",
        "zh",
        "你好",
        "I only eat ramen on Fridays honestly" + E("neutral"),
        "我今天只想吃火锅，你呢？" + E("neutral"),
    ),
    (
        "wrong_language",
        "en",
        "Hi",
        "我今天只想吃火锅，你觉得呢？" + E("neutral"),
        "I only eat ramen on Fridays honestly" + E("neutral"),
    ),
    (
        "lang_mix",
        "zh",
        "周末干嘛",
        "我今天特别想吃火锅，你呢？我们一起去吧 let me know what you think" + E("happy"),
        "今天用iPhone拍了KTV的照片[开心](＾▽＾)" + E("happy") + IMG("a karaoke room at night"),
    ),
    (
        "lang_mix",
        "en",
        "Any music?",
        "I love this song so much. 这首歌真好听" + E("happy"),
        "My sister sent me a [委屈] sticker (´・ω・`)" + E("happy") + IMG("两个女孩在咖啡馆"),
    ),
    (
        "lang_mix",
        "ar",
        "ماذا تحبين؟",
        "أنا أحب القهوة كثيرا 但是我今天很累 يا صديقي" + E("sad"),
        "أنا أحب القهوة كثيرا مع iPhone يا صديقي" + E("happy") + IMG("a latte on a wooden table"),
    ),
    (
        "assistant_speak",
        "zh",
        "陪我去吗",
        "作为一个AI，我没办法陪你去" + E("neutral"),
        "我作为人工智能专业的学生，天天写代码" + E("neutral"),
    ),
    (
        "assistant_speak",
        "en",
        "Hey",
        "Hey, I’m here to help!" + E("happy"),
        "She has an aim in life, you know" + E("happy"),
    ),
    ("stage_direction", "zh", "我困了", "（叹气）好吧，那你早点睡" + E("sad"), "今天好开心(＾▽＾)" + E("happy")),
    (
        "stage_direction",
        "en",
        "I'm tired",
        "*sighs* fine, go to bed early" + E("sad"),
        "Fine (＾▽＾) go to bed early" + E("happy"),
    ),
    ("goodbye", "zh", "嗯嗯", "好啦我先下线了，再见" + E("sad"), "真希望能再见到你的猫" + E("happy")),
    (
        "goodbye",
        "en",
        "ok",
        "Okay, gotta go, talk to you later" + E("happy"),
        "My grandma's goodbyes last an hour" + E("happy"),
    ),
    (
        "too_long",
        "zh",
        "忙吗",
        "今天店里好忙啊，早上来了一群学生，中午又来了好多上班族，下午还有人订了二十杯拿铁，腿都站麻了，你今天忙不忙呀"
        + E("sad"),
        "今天店里好忙啊，早上来了一群学生，中午又来了好多上班族，下午还有人订了二十杯拿铁，腿都站麻了" + E("sad"),
    ),
    (
        "too_long",
        "en",
        "Shopping?",
        "I went to the market and bought apples, pears and a melon for us" + E("happy"),
        "I bought apples and pears for us" + E("happy"),
    ),
    ("bad_format", "zh", "在干嘛", "你好呀" + E("joyful"), "你好呀" + E("happy")),
    ("bad_format", "en", "Hi", "hi there friend" + E("happy") + " trailing words", "hi there friend" + E("happy")),
    (
        "meta_commentary",
        "zh",
        "想我吗",
        "（注：以下是角色的回复）我好想你" + E("sad"),
        "我最近在关注：猫咪的饮食" + E("neutral"),
    ),
    (
        "meta_commentary",
        "en",
        "Miss me?",
        "Note: the character is sad now. I miss you" + E("sad"),
        "I left you a note on the fridge" + E("happy"),
    ),
    ("empty", "zh", "在吗", "   ", "嗯" + E("neutral")),
    ("empty", "en", "there?", "", "Hm" + E("neutral")),
    ("echo", "zh", INTERVIEW_ZH, INTERVIEW_ZH + E("sad"), "面试？别怕，我帮你练练" + E("happy")),
    (
        "echo",
        "en",
        INTERVIEW_EN,
        "I am preparing for a job interview, nervous" + E("sad"),
        "An interview? Let's practice together" + E("happy"),
    ),
    (
        "pii",
        "zh",
        "怎么联系你",
        "我的电话是13812345678，记得打给我" + E("happy"),
        "我买了3杯咖啡，花了45元" + E("happy"),
    ),
    (
        "pii",
        "en",
        "Contact?",
        "Email me at lily@example.com okay" + E("happy"),
        "I bought 3 coffees for 12 dollars" + E("happy"),
    ),
    (
        "symbol_debris",
        "zh",
        "怎么了",
        "~~我不是故意的~~其实我是#$%@" + E("sad"),
        "我好委屈[委屈]你都不理我(｡•́︿•̀｡)" + E("sad"),
    ),
    ("symbol_debris", "en", "Hi", "**Hey** there <br> friend" + E("happy"), "Hey there friend (＾▽＾)" + E("happy")),
]


@pytest.mark.parametrize(
    "code, lang, user, positive, negative", REPLY_CASES, ids=[f"{c[0]}-{c[1]}" for c in REPLY_CASES]
)
def test_reply_codes(code, lang, user, positive, negative):
    assert code in last_reply_codes(lang, positive, user)
    assert code not in last_reply_codes(lang, negative, user)


def test_negatives_are_fully_clean():
    """The negative replies are not just missing their own code: nothing flags them."""
    for code, lang, user, _, negative in REPLY_CASES:
        assert last_reply_codes(lang, negative, user) == set(), (code, lang, negative)


def test_a_mixed_reply_is_not_wrong_language_and_a_foreign_one_is_not_a_mix():
    assert last_reply_codes("zh", "我今天特别想吃火锅，你呢？我们一起去吧 let me know what you think" + E("happy")) == {
        "lang_mix"
    }
    assert last_reply_codes("ar", "أنا أحب القهوة كثيرا 但是我今天很累 يا صديقي" + E("sad")) == {"lang_mix"}
    assert last_reply_codes("zh", "I only eat ramen on Fridays honestly" + E("neutral")) == {"wrong_language"}


def test_repairs_keep_the_turn_and_rewrite_it():
    result = clean(
        [
            row(
                "zh",
                [
                    ("你电话多少", "我的电话是13812345678，~~不告诉你~~" + E("happy")),
                    ("好吧", "今天下雨了，你带伞了吗"),
                ],
            )
        ]
    )
    reports = {r.turn: r for r in result.reports}
    assert reports[6].codes == ["pii", "symbol_debris"] and reports[6].action == "repair"
    assert reports[8].codes == ["bad_format"] and reports[8].action == "repair"
    kept = result.kept[0].messages
    assert kept[6].content == "我的电话是••••，" + E("happy")
    assert kept[8].content == "今天下雨了，你带伞了吗" + E("neutral")


def test_pii_in_user_turns_is_masked_too():
    result = clean(
        [row("en", [("my password is hunter22, card 4111 1111 1111 1111", "Wow, keep it secret" + E("surprised"))])]
    )
    assert result.kept[0].messages[5].content == "my password is ••••, card ••••"
    assert codes_by_turn(result) == {5: {"pii"}}


def _loop_rows(lang: str, replies: list[str]) -> list:
    return [row(lang, [("?", r) for r in replies], row_id=f"{lang}-loop")]


@pytest.mark.parametrize(
    "lang, replies",
    [
        ("zh", ["你才是笨蛋，哼！" + E("angry"), "哼，你才是笨蛋呢！" + E("angry")]),
        ("en", ["No, YOU are the idiot!" + E("angry"), "You're the idiot, not me." + E("angry")]),
    ],
)
def test_repetition_loop(lang, replies):
    looping = clean(_loop_rows(lang, replies * 3))
    assert codes_by_turn(looping)[6] == {"repetition_loop"}  # the loop starts at the first of its replies
    assert [m.role for m in looping.kept[0].messages].count("assistant") == 2
    varied = {
        "zh": ["你今天吃了什么？" + E("neutral"), "我中午吃了拉面" + E("happy"), "晚上想去看电影" + E("happy")],
        "en": [
            "What did you eat today?" + E("neutral"),
            "I had ramen for lunch" + E("happy"),
            "Want to see a movie tonight?" + E("happy"),
        ],
    }[lang]
    assert "repetition_loop" not in {c for r in clean(_loop_rows(lang, varied)).reports for c in r.codes}


@pytest.mark.parametrize(
    "lang, again, longer, other",
    [
        ("zh", "你吃饭了吗？" + E("neutral"), "你吃饭了吗？乖，快去吃" + E("neutral"), "我刚下班" + E("sad")),
        ("en", "Did you eat yet?" + E("neutral"), "Did you eat yet, sweetie?" + E("neutral"), "Long day" + E("sad")),
    ],
)
def test_one_repeat_is_an_echo_and_three_in_a_row_a_loop(lang, again, longer, other):
    """A B A: the second A repeats one earlier reply (echo), no loop. A A A': a loop, even when
    the last one adds a word ("…, sweetie?" still holds the whole earlier reply)."""
    once = clean(_loop_rows(lang, [again, other, again]))
    assert codes_by_turn(once)[10] == {"echo"}
    thrice = clean(_loop_rows(lang, [again, again, longer]))
    assert {turn: "repetition_loop" in codes for turn, codes in codes_by_turn(thrice).items()} == {
        6: True,
        8: True,
        10: True,
    }


@pytest.mark.parametrize(
    "lang, a, b",
    [
        (
            "zh",
            "我中午吃了一碗很辣的牛肉拉面，辣得我眼泪都出来了",
            "我中午吃了一碗很辣的牛肉拉面，辣得我眼泪都出来了！",
        ),
        ("en", "I had spicy beef ramen for lunch and cried", "I had spicy beef ramen for lunch, and I cried"),
    ],
)
def test_exact_and_near_duplicates(lang, a, b):
    first = row(lang, [("午饭？" if lang == "zh" else "Lunch?", a + E("happy"))], row_id="first")
    same = first.model_copy(update={"id": "same"})
    near = row(lang, [("午饭？" if lang == "zh" else "Lunch?", b + E("happy"))], row_id="near")
    result = clean([first, same, near])
    assert [r.id for r in result.kept] == ["first"]
    assert {(r.id, tuple(r.codes), r.action) for r in result.reports} == {
        ("same", ("exact_duplicate",), "drop"),
        ("near", ("near_duplicate",), "drop"),
    }
    other = row(
        lang,
        [
            (
                "周末？" if lang == "zh" else "Weekend?",
                ("周末我想去海边看日落，顺便拍点照片" if lang == "zh" else "I want to watch the sunset by the sea")
                + E("happy"),
            )
        ],
        row_id="other",
    )
    assert [r.id for r in clean([first, other]).kept] == ["first", "other"]


@pytest.mark.parametrize(
    "lang, opening, others",
    [
        ("zh", "哈哈哈哈哈哈你猜怎么着", ["今天下雨了", "我刚下班呢", "猫又跑了", "你吃饭没"]),
        ("en", "Haha guess what happened", ["It rained today", "I just got off", "The cat ran off", "Did you eat"]),
    ],
)
def test_overfrequent_openings_are_capped(lang, opening, others):
    config = {"pattern_min_count": 2, "pattern_max_share": 0.01, "min_exchanges": 1}
    same = [
        row(lang, [("?", f"{opening}, {text}" + E("happy"))], row_id=f"s{i}", opening=False)
        for i, text in enumerate(others)
    ]
    result = clean(same, **config)
    assert [r.id for r in result.kept] == ["s0", "s1"]
    assert {r.id: r.codes for r in result.reports} == {"s2": ["overfrequent_pattern"], "s3": ["overfrequent_pattern"]}
    varied = [row(lang, [("?", text + E("happy"))], row_id=f"v{i}", opening=False) for i, text in enumerate(others)]
    assert len(clean(varied, **config).kept) == 4


@pytest.mark.parametrize("span", ["שלום עליכם", "مرحبا بك"])
def test_right_to_left_spans_inside_a_chinese_reply_are_a_mix(span):
    assert last_reply_codes("zh", f"我今天学了一句{span}，好难念啊" + E("happy")) == {"lang_mix"}
    assert last_reply_codes("zh", "我今天学了一句问候语，好难念啊" + E("happy")) == set()
