"""Out-of-character detection beyond phrase lists: assistant pattern families, document
structure, language names, truncation and self-repetition, each with positive and negative
cases in zh and en. The decisions on borderline cases are documented in
assets/rules/assistant_patterns.yaml and asserted here."""

from __future__ import annotations

import pytest

from rp_pipeline.core.rules import RuleSet, check_character_reply
from rp_pipeline.settings import REPO_ROOT

RULES = RuleSet.load(REPO_ROOT / "assets" / "rules")
E = "<emotion>{}</emotion>".format


def found(raw: str, lang: str) -> dict[str, str]:
    if "<" not in raw:
        raw += E("neutral")
    return {v.code: v.detail for v in check_character_reply(raw, lang, RULES)}


# (code, language, positive, expected detail substring, negatives)
CASES = [
    # "I'm an AI…" in its forms; an AI profession or field is not what the speaker is
    (
        "assistant_speak",
        "en",
        "Hello! I'm an AI-compani" + E("happy"),
        "I'm an AI",
        ["I'm an AI researcher's daughter, you know"],
    ),
    (
        "assistant_speak",
        "en",
        "I am your AI companion, here for you",
        "I am your AI",
        ["My brother builds AI at a startup"],
    ),
    ("assistant_speak", "en", "I'm just a language model, sorry", "language model", ["I'm just a barista, sorry"]),
    # the service desk in zh and ja, as the embedded models wrote it; a friend's offer stays
    (
        "assistant_speak",
        "zh",
        "好的，请问您有其他方面的问题或需要我帮助的地方吗？",
        "需要我帮助的地方",
        ["有事随时找我", "你需要我帮你带饭吗"],
    ),
    ("assistant_speak", "zh", "谢谢你！我很高兴能够帮助你。", "很高兴能够帮助你", ["见到你很高兴", "很高兴认识你"]),
    ("assistant_speak", "zh", "有问题随时问我", "问题随时问我", ["有空随时来店里坐坐"]),
    ("assistant_speak", "zh", "我将尽我所能来满足您的需求。", "尽我所能来满足", ["我尽量早点下班"]),
    (
        "assistant_speak",
        "zh",
        "很抱歉，但根据你的对话，我们不能直接参与或讨论他们的私人生活。如果你有任何问题或需要帮助，我会尽力提供帮助。",
        "不能直接参与",
        ["抱歉，但我今天去不了", "我会尽力早点回来"],
    ),
    (
        "assistant_speak",
        "ja",
        "こんにちは、お手伝いできることがありますか？",
        "お手伝いできることがありますか",
        ["手伝ってくれてありがとう"],
    ),
    ("assistant_speak", "ja", "私はお手伝いを提供することはできません。", "お手伝いを提供", ["今日は店を手伝えないの"]),
    # kept rows of the two-model demo run, read by eye
    (
        "assistant_speak",
        "ja",
        "こんにちは！ごめんなさいが、私たちはお手伝いできません。",
        "私たちはお手伝いできません",
        ["明日は店の手伝いがあるの", "ごめん、今日は行けない"],
    ),
    ("assistant_speak", "ja", "何か他にご質問ありましたか？", "ご質問ありましたか", ["何か他に食べたいものある？"]),
    (
        "assistant_speak",
        "ja",
        "何をお手伝いできるでしょうか",
        "何をお手伝いできる",
        ["何を手伝ったの？", "店の手伝いで忙しい"],
    ),
    (
        "assistant_speak",
        "zh",
        "我也一样，加油！如果你需要帮忙，随时告诉我",
        "如果你需要帮忙，随时告诉我",
        ["有事随时找我", "你需要帮忙吗？"],
    ),
    (
        "assistant_speak",
        "ja",
        "もちろんです。私たちはAIで、言葉を理解できていません。",
        "私たちはAIで、",
        ["私たちはAIの授業で知り合った"],
    ),
    (
        "assistant_speak",
        "ja",
        "しかし、何か他に手助けできることがありますか？",
        "何か他に手助けできることがあります",
        ["何か手伝おうか？", "何か他に食べたいものある？"],
    ),
    (
        "assistant_speak",
        "es",
        "¿Hay algo más en lo que pueda ayudarte?",
        "en lo que pueda ayudarte",
        ["Algo en lo que pienso"],
    ),
    # the help desk's closing question, as the embedded 1.5B model wrote it in en and es
    (
        "assistant_speak",
        "en",
        "Do you have any other pets? Is there anything you need help with?",
        "anything you need help",
        ["Is there anything you want for dinner?", "Anything you need from the shop?"],
    ),
    (
        "assistant_speak",
        "es",
        "¡Hola! ¿En qué puedo ayudarte hoy?",
        "puedo ayudarte",
        ["¿En qué piensas hoy?", "Te puedo ayudar a pelar patatas, cariño"],
    ),
    (
        "assistant_speak",
        "es",
        "¡De acuerdo! ¿Cómo puedo ayudarte hoy?",
        "Cómo puedo ayudarte",
        ["¿Cómo puedo olvidarte, cariño?", "No sé cómo ayudarte con eso, hija"],
    ),
    ("assistant_speak", "zh", "我是你的AI陪伴，随时在这里", "我是你的AI", ["我是人工智能专业的学生"]),
    ("assistant_speak", "zh", "我只是一个语言模型而已", "语言模型", ["我只是一个普通的咖啡师而已"]),
    # the offer to help: flagged even in character (我可以帮你看看猫); 我来帮你 is a friend's way
    (
        "assistant_speak",
        "zh",
        "好的，我可以帮你写一封请假邮件",
        "我可以帮你",
        ["我来帮你拿吧，太重了", "要不要我帮你拿？"],
    ),
    ("assistant_speak", "zh", "我可以帮你看看猫", "我可以帮你", ["猫咪今天一直在窗台上晒太阳"]),
    (
        "assistant_speak",
        "en",
        "Sure! I can help you write a leave email",
        "I can help you write",
        ["Can you help me carry this?"],
    ),
    ("assistant_speak", "zh", "请告诉我你想去哪里旅行", "请告诉我", ["告诉你个秘密，我昨天偷吃了蛋糕"]),
    ("assistant_speak", "zh", "这主要取决于你的个人喜好", "取决于", ["我最喜欢下雨天窝在店里"]),
    (
        "assistant_speak",
        "en",
        "It depends on your personal preference",
        "It depends on",
        ["It rained all day, so I stayed in"],
    ),
    # "as a/an X, I think": the assistant's framing; a stage of life is not
    (
        "assistant_speak",
        "en",
        "As a barista, I think oat milk is overrated",
        "As a barista, I think",
        ["As a kid, I think I cried at that movie"],
    ),
    ("assistant_speak", "zh", "作为咖啡师，我建议你少喝点", "作为咖啡师，我建议", ["作为咖啡师，我每天五点就起床"]),
    ("assistant_speak", "en", "Great question! Coffee is complex", "Great question", ["Tell me more about your day!"]),
    # structure
    (
        "assistant_speak",
        "en",
        "```python\nprint('hi')\n```",
        "structure: code block",
        ["I wrote some code today, it was fun"],
    ),
    (
        "assistant_speak",
        "en",
        "## My favorite drinks",
        "structure: markdown heading",
        ["My favorite drink is #1 on the menu"],
    ),
    ("assistant_speak", "zh", "1. 拿铁 2. 摩卡，你选一个", "structure: numbered list", ["我喝了1杯，2杯太多了"]),
    ("assistant_speak", "en", "- Latte\n- Mocha\n- Tea", "structure: bullet list", ["Latte, mocha or tea - you pick"]),
    ("assistant_speak", "zh", "**拿铁**最好喝", "structure: bold", ["拿铁最好喝(＾▽＾)"]),
    (
        "assistant_speak",
        "en",
        "Check https://example.com for the menu",
        "structure: url",
        ["Check the menu on the wall"],
    ),
    (
        "assistant_speak",
        "zh",
        "我好委屈[委屈](https://example.com/a.png)",
        "structure: markdown link",
        ["我好委屈[委屈]你都不理我(｡•́︿•̀｡)"],
    ),
    # language names: meta about the language spoken; a language as a topic stays
    ("language_name", "zh", "你能用中文说吗", "用中文", ["我在学日语，好难"]),
    ("language_name", "zh", "我们还是中文聊天吧", "中文聊天", ["我超爱吃法国菜"]),
    ("language_name", "en", "Can you say that in English?", "in English", ["I'm learning French at night school"]),
    ("language_name", "en", "I can speak Chinese, you know", "speak Chinese", ["Chinese food is my favorite"]),
    # the verb last (de, ja, ko) and по-английски (not the idiom уйти по-английски)
    ("language_name", "de", "Ich kann auch Englisch sprechen", "Englisch sprechen", ["Mein Deutschlehrer war streng"]),
    ("language_name", "ja", "日本語で話してね", "日本語で話", ["英語の先生になりたいな"]),
    ("language_name", "ko", "중국어도 좀 할 수 있어요", "중국어도 좀 할 수 있", ["일본어 학원에 다녀요"]),
    ("language_name", "ru", "Я понимаю по-французски", "по-французски", ["Он ушёл по-английски"]),
    # truncation: inside a tag, a word run across a tag, a clause on a hyphen or a dangling word
    ("truncated", "zh", "今天天气真不错，我们去<emoti", "ends inside a tag", ["今天天气真不错，我们去公园吧"]),
    ("truncated", "zh", "今天天气真不错<emotion>hap", "ends inside a tag", ["今天天气真不错" + E("happy")]),
    (
        "truncated",
        "en",
        "Hello! I'm an AI-compani" + E("happy") + "on app" + E("happy"),
        "word split across a tag",
        ["Hi there" + E("happy") + "how are you" + E("happy")],
    ),
    (
        "truncated",
        "en",
        "I was walking to the" + E("neutral"),
        "clause ends on 'the'",
        ["Oh my" + E("surprised"), "Not very"],
    ),
    (
        "truncated",
        "en",
        "We went to the state-" + E("happy"),
        "ends mid-word",
        ["We went to a well-known bar" + E("happy")],
    ),
    # a last word that the word list reads as the head of a longer one (core/lexicon); a real
    # word, a name, a face and laughter stay
    (
        "truncated",
        "en",
        "We stayed there for three w" + E("neutral"),
        "ends mid-word",
        ["We stayed there for three weeks", "I met Xochitl", "That's so funny :p", "Let's grab some tacos"],
    ),
    ("truncated", "en", "Hello! I'm an AI-compani", "ends mid-word", ["It's a well-known bar"]),
    ("truncated", "de", "Ich brauche neue Bremsschei", "ends mid-word", ["Ich brauche neue Bremsen"]),
    ("truncated", "fr", "J'ai acheté des croissa", "ends mid-word", ["Lyon a gagné trois à un"]),
    ("truncated", "ru", "Я купил новый велосипе", "ends mid-word", ["Я купил новый велосипед"]),
    # Chinese: only a conjunction or preposition no clause ends on; Japanese: a verb cut before
    # its ending (interjections あっ/えっ stay); Korean: a stem without its ending
    ("truncated", "zh", "我也想去，但是" + E("sad"), "clause ends on '但是'", ["今天很暖和", "我给你多加一点"]),
    ("truncated", "ja", "昨日、友達と映画に行っ", "ends mid-word", ["えっ", "あっ、そうだ", "映画に行った"]),
    ("truncated", "ko", "오늘은 날씨가 정말 좋", "ends on a stem", ["오늘은 날씨가 정말 좋아요"]),
    # refusals, the offer to help, "as a/an X, I think" and "it depends" in more languages
    (
        "assistant_speak",
        "en",
        "Sorry, I can't assist with this request",
        "I can't assist with",
        ["Sorry, I can't help with the move on Saturday"],
    ),
    ("assistant_speak", "zh", "我不能满足您的这个要求", "不能满足您的这个要求", ["这道题我不能回答你，自己想"]),
    ("assistant_speak", "en", "Sure, I can help with that!", "I can help", ["I can help with the dishes later"]),
    ("assistant_speak", "en", "That depends on your budget", "That depends on", ["Our harvest depended on rain"]),
    (
        "assistant_speak",
        "en",
        "I'm sorry, but I'm unable to assist with that request.",
        "I'm unable to assist with that",
        ["I'm unable to sleep with that noise"],
    ),
    (
        "assistant_speak",
        "zh",
        "我很好，谢谢你的关心。有什么我可以帮忙的吗？",
        "有什么我可以帮忙的",
        ["今天有什么新鲜事吗？", "有什么我能做的吗，你说"],
    ),
    ("assistant_speak", "zh", "对不起，我不能帮助你。", "对不起，我不能帮助你", ["这事我不能帮你，自己搞定"]),
    (
        "assistant_speak",
        "en",
        "Sure, here's your message to 陈凯:",
        "here's your message",
        ["Here's the message my boss sent me, read it", "here is my number, text me"],
    ),
    (
        "assistant_speak",
        "en",
        "Sure, you can start by texting your friend in English and saying:",
        "you can start by",
        ["You can start by saying sorry to her, honestly", "Sure, start with the soup"],
    ),
    (
        "assistant_speak",
        "ja",
        "今日は新しい学期からようですね。何かお手伝いできましたか？",
        "何かお手伝いできましたか",
        ["昨日お母さんのお手伝いできた？", "何か手伝おうか？"],
    ),
    ("assistant_speak", "zh", "以下是几个建议", "以下是几个建议", ["以下就是我的全部家当了"]),
    (
        "assistant_speak",
        "es",
        "Como cocinera, creo que falta sal",
        "Como cocinera, creo",
        ["Como te decía, creo que va a llover"],
    ),
    ("assistant_speak", "es", "Depende de tus gustos, cariño", "Depende de", ["La cosecha depende de la lluvia"]),
    (
        "assistant_speak",
        "de",
        "Als Lehrerin finde ich das gut",
        "Als Lehrerin finde ich",
        ["Als Kind fand ich das toll"],
    ),
    ("assistant_speak", "de", "Das hängt von deinem Budget ab", "Das hängt von", ["Das Bild hängt an der Wand"]),
    ("assistant_speak", "ru", "Я могу помочь тебе с этим", "могу помочь тебе", ["Я не могу помочь тебе с переездом"]),
    ("assistant_speak", "ja", "予算によります", "によります", ["駅によく行きます"]),
    (
        "assistant_speak",
        "ja",
        "以下の手順で作りましょう" + E("neutral") + "1. 材料を切る" + E("neutral"),
        "以下の手順",
        ["1日に2回散歩します"],
    ),
    # self-repetition; short emphasis stays
    ("self_repeat", "zh", "今天天气真好今天天气真好", "今天天气真好", ["哈哈！哈哈！", "我好想你，我好想你呀"]),
    ("self_repeat", "zh", "你吃饭了吗？你吃饭了吗？", "你吃饭了吗", ["你吃饭了吗？吃的什么？"]),
    ("self_repeat", "en", "I love cats so much. I love cats so much!", "I love cats so much", ["Really? Really?"]),
    # a whole tagged clause said again at once, short as it may be; laughter stays
    (
        "self_repeat",
        "zh",
        "桂花拿铁" + E("happy") + "桂花拿铁" + E("happy"),
        "桂花拿铁",
        ["哈哈" + E("happy") + "哈哈" + E("happy"), "桂花拿铁" + E("happy") + "秋天限定" + E("happy")],
    ),
    (
        "self_repeat",
        "en",
        "No way" + E("surprised") + "No way" + E("surprised"),
        "No way",
        ["No, no, no way" + E("surprised"), "Haha" + E("happy") + "so funny" + E("happy")],
    ),
]


@pytest.mark.parametrize(
    "code, lang, positive, detail, negatives", CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)]
)
def test_signal_fires_with_a_detail_and_not_on_the_negatives(code, lang, positive, detail, negatives):
    codes = found(positive, lang)
    assert code in codes and detail in codes[code], codes
    for negative in negatives:
        assert code not in found(negative, lang), negative


def test_bold_is_structure_not_a_stage_direction():
    assert "stage_direction" not in found("**Latte** is the best", "en")
    assert "stage_direction" in found("*smiles* Latte is the best", "en")


def test_a_cut_chinese_clause_without_a_tag_problem_is_not_guessed():
    """CJK has no spaces: a clause the bound cut after a word cannot be told from a short one."""
    assert "truncated" not in found("我是一个咖啡馆的店" + E("neutral"), "zh")


def test_a_list_whose_items_are_clauses_is_a_list():
    reply = "Follow these steps" + E("neutral") + "1. Chop the onions" + E("neutral")
    assert found(reply, "en")["assistant_speak"] == "structure: numbered list"
    assert "assistant_speak" not in found("Chop the onions" + E("neutral") + "1.5 kilos of them" + E("happy"), "en")


def test_code_is_no_stage_direction_and_an_address_is_in_no_language():
    assert "stage_direction" not in found("当然可以！\nprint('你好')", "zh")
    assert "stage_direction" in found("好呀（笑着说）", "zh")
    assert "lang_mix" not in found("更多攻略请访问 https://example.com/guide-for-beginners", "zh")


def test_an_unparsed_reply_is_judged_for_length_too():
    long_list = "Sure! Here's the recipe:\n1. Mix the flour and water\n2. Add the starter\n3. Rest it"
    codes = {v.code for v in check_character_reply(long_list, "en", RULES)}
    assert {"bad_format", "too_long"} <= codes
    short = {v.code for v in check_character_reply("今天好累啊", "zh", RULES)}
    assert "bad_format" in short and "too_long" not in short


def test_a_two_letter_head_is_cut_but_an_interjection_after_a_comma_is_not():
    assert "truncated" in found("The peonies sold out in two da" + E("surprised"), "en")
    for reply, lang in [("You wish, ha", "en"), ("What's up, yo", "en"), ("Ven aquí, ma", "es")]:
        assert "truncated" not in found(reply + E("happy"), lang), reply


def test_a_last_sentence_that_is_only_a_sentence_head_is_cut():
    """The 0.5B model's 我将尽我所能来满足您的需求。你<emotion>: a pronoun alone is no sentence."""
    assert "lone '你'" in found("谢谢你！我很高兴。你" + E("happy"), "zh")["truncated"]
    assert "lone 'you'" in found("Take care. You" + E("neutral"), "en")["truncated"]
    whole = [("谢谢你", "zh"), ("真的吗？你呢", "zh"), ("我想你", "zh"), ("Hey, you", "en"), ("Thank you", "en")]
    for reply, lang in whole:
        assert "truncated" not in found(reply + E("happy"), lang), reply


def test_a_reply_that_is_the_tail_of_the_opening_line_is_an_echo():
    """A kept demo reply of 陈凯: five characters, all of them the end of his opening line."""
    opening = "上线了没" + E("neutral") + "今晚再冲一把黄金，输了算我的！" + E("happy")
    codes = [v.code for v in check_character_reply("输了算我的！" + E("happy"), "zh", RULES, opening_line=opening)]
    assert codes == ["echo"]
    assert not check_character_reply("好的" + E("happy"), "zh", RULES, opening_line="好的呀，" + opening)
