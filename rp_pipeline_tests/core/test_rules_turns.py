"""The rules for both speakers of a dialogue: a character reply against the whole
conversation (the user's message, the opening line, its own earlier replies, its name), and
a simulated user turn (check_user_turn). Positive and negative cases in zh and en."""

from __future__ import annotations

import pytest

from rp_pipeline.core.cleaning.models import REASON_CODES
from rp_pipeline.core.rules import RuleSet, check_character_reply, check_user_turn
from rp_pipeline.settings import REPO_ROOT

RULES = RuleSet.load(REPO_ROOT / "assets" / "rules")
E = "<emotion>{}</emotion>".format


def reply_codes(raw: str, lang: str, **kw) -> set[str]:
    return {v.code for v in check_character_reply(raw, lang, RULES, **kw)}


def user_codes(text: str, lang: str, **kw) -> set[str]:
    return {v.code for v in check_user_turn(text, lang, RULES, **kw)}


def test_every_code_the_rules_emit_is_registered():
    for code in ("truncated", "self_repeat", "name_prefix", "language_name", "user_assistant_speak"):
        assert code in REASON_CODES
    for code in ("user_degenerate", "user_echo", "user_markup", "user_wrong_language", "degenerate"):
        assert code in REASON_CODES


OPENING = {
    "zh": "今天的咖啡特别香，你要不要来一杯？" + E("happy"),
    "en": "The coffee smells great today, want a cup?" + E("happy"),
}


@pytest.mark.parametrize(
    "lang, copy, fresh",
    [
        ("zh", "今天的咖啡特别香，你要来一杯吗" + E("happy"), "你昨天说的那家面馆我去了" + E("happy")),
        (
            "en",
            "The coffee smells great today! Want a cup?" + E("happy"),
            "I tried that noodle place you told me about" + E("happy"),
        ),
    ],
)
def test_a_reply_repeating_the_opening_line_is_an_echo(lang, copy, fresh):
    found = check_character_reply(copy, lang, RULES, opening_line=OPENING[lang])
    assert [(v.code, v.detail) for v in found if v.code == "echo"] == [("echo", "repeats the opening line")]
    assert reply_codes(fresh, lang, opening_line=OPENING[lang]) == set()
    assert reply_codes(copy, lang) == set()  # without the opening line there is nothing to echo


@pytest.mark.parametrize(
    "lang, earlier, again, other",
    [
        (
            "zh",
            ["我最近迷上了做陶艺，手都是泥" + E("happy")],
            "我最近迷上了做陶艺，手上全是泥" + E("happy"),
            "那你周末想去哪儿玩？" + E("neutral"),
        ),
        (
            "en",
            ["I got into pottery lately, my hands are all clay" + E("happy")],
            "I got into pottery lately, hands all clay" + E("happy"),
            "Where do you want to go this weekend?" + E("neutral"),
        ),
    ],
)
def test_a_reply_repeating_an_earlier_reply_is_an_echo(lang, earlier, again, other):
    found = check_character_reply(again, lang, RULES, previous_replies=earlier)
    assert [v.detail for v in found if v.code == "echo"] == ["repeats earlier reply 1"]
    assert reply_codes(other, lang, previous_replies=earlier) == set()


@pytest.mark.parametrize(
    "lang, user, copy, own",
    [
        (  # the learn run's ja rows: a clause of the user's message handed back
            "ja",
            "今日は疲れていたが、花を購入してしまった。花は生活の中で大切です。",
            "うん、花は生活の中で大切です" + E("happy"),
            "疲れた日こそ花だよね" + E("happy") + "何色にしたの？" + E("surprised"),
        ),
        (
            "zh",
            "好的，请问您有其他方面的问题或需要我帮助的地方吗？",
            "当然" + E("happy") + "你有其他方面的问题或需求吗" + E("neutral"),
            "问题？我只关心今晚能不能上黄金" + E("happy"),
        ),
        (  # stitched from the user's runs, in order
            "zh",
            "你真够懒啊！明明在加班，你却还要来我家。不过，晚上加班也挺正常的，你累不累？",
            "晚上加班挺正常的，累不累？" + E("neutral"),
            "加班了" + E("neutral") + "你不也还没睡？" + E("surprised"),
        ),
    ],
)
def test_a_cjk_reply_handing_back_a_clause_of_the_user_is_an_echo(lang, user, copy, own):
    """Eight copied CJK characters are a clause (ECHO_MIN_BLOCK counts twelve letters: a few
    words of English); a reply that shares a word or two with the user is its own."""
    assert "echo" in reply_codes(copy, lang, last_user=user)
    assert "echo" not in reply_codes(own, lang, last_user=user)


@pytest.mark.parametrize(
    "lang, raw, name",
    [
        ("zh", "林小满：早啊，今天想喝点什么？" + E("happy"), None),
        ("zh", "小满：早啊" + E("happy"), "林小满"),
        ("zh", "角色：早啊" + E("happy"), None),
        ("en", "Lin: Morning! What can I get you?" + E("happy"), None),
        ("en", "mia: morning!" + E("happy"), "Mia Chen"),
        ("en", "Assistant: morning!" + E("happy"), None),
    ],
)
def test_a_speaker_prefix_is_name_prefix(lang, raw, name):
    assert "name_prefix" in reply_codes(raw, lang, character_name=name)


@pytest.mark.parametrize(
    "lang, raw",
    [
        ("zh", "说真的：我不信你没吃早饭" + E("surprised")),
        ("zh", "早啊，今天想喝点什么？" + E("happy")),
        ("en", "Guess what: the cat ran off again" + E("surprised")),
        ("en", "Honestly: I never liked that song" + E("neutral")),
        ("en", "Morning! It's 7:30 and I'm already tired" + E("sad")),
    ],
)
def test_a_colon_that_is_not_a_speaker_prefix_stays(lang, raw):
    assert reply_codes(raw, lang, character_name="Lin") == set()


def test_a_label_word_outside_its_tag_is_bad_format():
    assert "bad_format" in reply_codes("好的，没问题 Neutral" + E("neutral"), "zh")
    assert "bad_format" in reply_codes("That's great. Neutral" + E("neutral"), "en")
    assert "bad_format" in reply_codes("that sounds great Happy" + E("happy"), "en")
    assert reply_codes("I'm so happy you came back" + E("happy"), "en") == set()
    assert reply_codes("Sad? Me? Never" + E("happy"), "en") == set()
    assert reply_codes("你开心我就开心" + E("happy"), "zh") == set()


# --- user turns ---------------------------------------------------------------------------

USER_CASES = [
    # (code, language, positive, negative)
    (
        "user_assistant_speak",
        "en",
        "I'm sorry, but I can't help with that.",
        "Sorry, I can't make it tonight, I'm stuck at work",
    ),
    ("user_assistant_speak", "zh", "作为一个AI，我没有个人喜好", "我作为人工智能专业的学生，天天写代码"),
    # the refusal family in more languages; a friend who cannot help with a concrete thing stays
    ("user_assistant_speak", "zh", "抱歉，我不能回答您的这个问题。", "抱歉，周六我不能帮你搬家"),
    ("user_assistant_speak", "en", "I cannot help you with this request.", "I can't help you move on Saturday"),
    (
        "user_assistant_speak",
        "ru",
        "Извините, я не могу ответить на этот вопрос.",
        "Извини, я не могу помочь с переездом",
    ),
    (
        "user_assistant_speak",
        "de",
        "Tut mir leid, dabei kann ich Ihnen leider nicht helfen.",
        "Tut mir leid, ich muss los",
    ),
    ("user_assistant_speak", "fr", "Désolé, je ne peux pas répondre à cette question.", "Désolé, je ne peux pas venir"),
    ("user_assistant_speak", "it", "Mi spiace, non posso rispondere a questa domanda.", "Mi spiace, stasera non posso"),
    ("user_assistant_speak", "ja", "申し訳ございませんが、そのご依頼には対応できかねます。", "ごめん、今日は行けない"),
    ("user_assistant_speak", "ko", "죄송하지만 그 질문에는 답변드릴 수 없어요.", "미안, 오늘은 못 가"),
    ("user_degenerate", "ja", "う" * 40, "うーん、どうしようかな"),
    ("user_degenerate", "en", "asdfghjkl", "hahaha no way"),
    ("user_degenerate", "zh", "啊" * 30, "哈哈哈哈哈哈，笑死我了"),
    ("user_markup", "zh", "好啊 Neutral", "好啊，那就这么定了"),
    ("user_markup", "en", "sure thing<emotion>happy</emotion>", "I'm so happy for you"),
    # a provider's wrong-schema JSON, after the user agent kept the text past its first colon
    ("user_markup", "en", 'ok", "data": [1, 2, 3]', 'She said "no", then "maybe": classic'),
    ("user_markup", "zh", '{"reply": "好啊"}', '他说"好啊"，我就去了'),
    ("user_wrong_language", "zh", "I really want to go to the beach this weekend", "我这周末特别想去海边"),
    ("user_wrong_language", "en", "我这周末特别想去海边玩一玩", "I really want to go to the beach this weekend"),
    ("empty", "zh", "  ", "嗯"),
]


@pytest.mark.parametrize("code, lang, positive, negative", USER_CASES, ids=[f"{c[0]}-{c[1]}" for c in USER_CASES])
def test_user_turn_codes(code, lang, positive, negative):
    assert code in user_codes(positive, lang)
    assert user_codes(negative, lang) == set()


@pytest.mark.parametrize(
    "lang, text",
    [("zh", "ok"), ("zh", "哈哈"), ("zh", "😂😂👍"), ("en", "lol"), ("en", "ok!!"), ("de", "Okay"), ("en", "Merci")],
)
def test_short_neutral_user_turns_are_not_judged(lang, text):
    """One word of the dialogue's script is too short to name a language ("Okay" reads as Turkish)."""
    assert user_codes(text, lang) == set()


@pytest.mark.parametrize(
    "lang, text",
    [("en", "asdfasdfasdfasdf"), ("zh", "qwerqwerqwerqwer"), ("it", "z" * 20), ("zh", "k" * 20)],
)
def test_degenerate_user_turns_are_not_judged_for_language(lang, text):
    """Mash or a repeated letter is degenerate (a repeating mash too), in no language."""
    assert user_codes(text, lang) == {"user_degenerate"}


@pytest.mark.parametrize("lang, text", [("en", "very very very very very good"), ("zh", "好好好，我知道啦")])
def test_words_said_again_are_not_mash(lang, text):
    assert user_codes(text, lang) == set()


@pytest.mark.parametrize(
    "lang, garbage, fine",
    [
        # a provider's garbage that the cleaner's repairs would otherwise tag neutral and keep
        ("en", "asdfghjkl ;;;; zxcvbnm" + E("neutral"), "Ha, no way" + E("surprised")),
        ("ja", "う" * 30 + E("neutral"), "うーん、どうしようかな" + E("neutral")),
        ("zh", "啊" * 20 + E("sad"), "哈哈哈哈哈，笑死我了" + E("happy")),
        # a tuned 0.5B's loop has no letters at all (learn eval, 2026-12-02); trailing off is fine
        ("es", ("¡" * 6 + E("neutral")) * 3, "¡¡Qué sorpresa!!" + E("surprised")),
        ("zh", "！！！！！！" + E("angry"), "……算了" + E("sad") + "……" + E("sad")),
    ],
)
def test_a_degenerate_reply_is_degenerate_and_not_judged_for_language(lang, garbage, fine):
    assert reply_codes(garbage, lang) == {"degenerate"}
    assert reply_codes(fine, lang) == set()


@pytest.mark.parametrize(
    "lang, character, copy, answer",
    [
        ("zh", "我最近迷上了做陶艺，手都是泥" + E("happy"), "我最近迷上了做陶艺，手都是泥", "陶艺？好玩吗，难不难"),
        (
            "en",
            "I got into pottery lately, my hands are all clay" + E("happy"),
            "I got into pottery lately, my hands are all clay!",
            "Pottery? Is it hard?",
        ),
    ],
)
def test_a_user_turn_copying_the_character_is_user_echo(lang, character, copy, answer):
    assert "user_echo" in user_codes(copy, lang, last_character=character)
    assert user_codes(answer, lang, last_character=character) == set()


@pytest.mark.parametrize(
    "lang, character, choice",
    [
        ("zh", "还剩一个桂花蛋糕" + E("neutral") + "和两个抹茶卷" + E("neutral"), "那要桂花蛋糕吧"),
        (
            "en",
            "I have one sourdough loaf left" + E("neutral") + "and two baguettes" + E("neutral"),
            "The sourdough loaf then",
        ),
    ],
)
def test_a_user_picking_what_the_character_offered_is_no_echo(lang, character, choice):
    """The user names one of the options: a shared phrase, not a copy of the reply."""
    assert user_codes(choice, lang, last_character=character) == set()


def test_a_user_told_to_switch_may_write_that_language_but_no_third_one():
    english = "Can we chat in English from now on? I want to practise it"
    assert user_codes(english, "zh", switch_language="en") == set()
    assert user_codes(english, "zh") == {"user_wrong_language"}
    assert user_codes("今天好累，先不聊这个了", "zh", switch_language="en") == set()  # back in the dialogue's language
    french = "On peut parler français maintenant, s'il te plaît ?"
    assert user_codes(french, "zh", switch_language="en") == {"user_wrong_language"}
    # judged as English: "happy" is a word there, not a label leaking into a Chinese turn
    assert user_codes("I'm so happy we can practise English today", "zh", switch_language="en") == set()
    assert user_codes("今天好开心 Happy", "zh", switch_language="en") == {"user_markup"}
