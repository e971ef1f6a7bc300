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
    # self-repetition; short emphasis stays
    ("self_repeat", "zh", "今天天气真好今天天气真好", "今天天气真好", ["哈哈！哈哈！", "我好想你，我好想你呀"]),
    ("self_repeat", "zh", "你吃饭了吗？你吃饭了吗？", "你吃饭了吗", ["你吃饭了吗？吃的什么？"]),
    ("self_repeat", "en", "I love cats so much. I love cats so much!", "I love cats so much", ["Really? Really?"]),
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
    """CJK has no spaces: a clause the bound cut cannot be told from a short one."""
    assert "truncated" not in found("我是一个咖啡馆的店" + E("neutral"), "zh")
