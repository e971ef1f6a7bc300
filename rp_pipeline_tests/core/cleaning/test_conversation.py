"""Cleaning checks a turn against the whole conversation (issue 11, items 1 and 2): a reply
against the opening line, which a simulated dialogue keeps in the system prompt, and against
the character's earlier replies; a user turn with check_user_turn, which cuts the row before
a garbage user turn."""

from __future__ import annotations

from rp_pipeline.core.cleaning import ChatRow, dialogue_row
from rp_pipeline.core.models import Dialogue
from rp_pipeline_tests.core.cleaning.helpers import clean, codes_by_turn, dialogue, row

E = "<emotion>{}</emotion>".format
OPENING = "今天的咖啡特别香，你要不要来一杯？" + E("happy")
GOOD = [
    ("你今天去哪了？", "去了趟花市，买了一盆多肉" + E("happy")),
    ("好看吗？", "圆滚滚的，像个小包子" + E("happy")),
]


def _dialogue(turns: list[tuple[str, str]], opening: str = OPENING, language: str = "zh") -> Dialogue:
    return dialogue(turns, opening, language)


def test_the_row_keeps_the_opening_line_aside_and_the_training_format_unchanged():
    chat = dialogue_row(_dialogue(GOOD))
    assert chat.opening_line == OPENING
    assert [m.role for m in chat.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert OPENING not in [m.content for m in chat.messages[1:]]


def test_a_reply_repeating_the_opening_line_is_cut_as_an_echo():
    copy = "今天的咖啡特别香，你要来一杯吗" + E("happy")
    result = clean([dialogue_row(_dialogue([*GOOD, ("嗯？", copy), ("好呀", "那我给你做杯拿铁" + E("happy"))]))])
    reports = {r.turn: r for r in result.reports}
    assert reports[6].codes == ["echo"] and reports[6].action == "cut"
    assert "echo: repeats the opening line" in reports[6].details
    assert len(result.kept[0].messages) == 5  # the two good exchanges stay
    # without the opening line on the row the same reply passes: the checker must be told it
    bare = dialogue_row(_dialogue([*GOOD, ("嗯？", copy)])).model_copy(update={"opening_line": None})
    assert 6 not in codes_by_turn(clean([bare]))


def test_an_english_reply_repeating_the_opening_line_is_an_echo():
    opening = "The coffee smells great today, want a cup?" + E("happy")
    turns = [
        ("Hi!", "Hey, you came back" + E("happy")),
        ("How are you?", "Tired but happy, you?" + E("neutral")),
        ("Same", "The coffee smells great today! Want a cup?" + E("happy")),
    ]
    result = clean([dialogue_row(_dialogue(turns, opening=opening, language="en"))])
    assert codes_by_turn(result)[6] == {"echo"}


def test_a_reply_repeating_an_earlier_reply_is_an_echo():
    repeat = "去了趟花市，买了一盆多肉呢" + E("happy")
    result = clean([row("zh", [*GOOD, ("然后呢？", repeat)], opening=False)])
    assert "echo" in codes_by_turn(result)[6]
    detail = next(d for r in result.reports for d in r.details if d.startswith("echo"))
    assert detail == "echo: repeats earlier reply 1"


def test_a_garbage_user_turn_cuts_the_row_before_it():
    """The seed case: forty う, answered おやすみなさい. The character's answer to garbage teaches
    nothing, so the row ends on the reply before the user turn."""
    messages = [
        {"role": "system", "content": "あなたはリンです。"},
        {"role": "user", "content": "こんにちは、今日は何をしていたの？"},
        {"role": "assistant", "content": "お店で新しいケーキを焼いてたよ" + E("happy")},
        {"role": "user", "content": "どんなケーキ？"},
        {"role": "assistant", "content": "苺のショートケーキだよ、食べに来る？" + E("happy")},
        {"role": "user", "content": "う" * 40},
        {"role": "assistant", "content": "おやすみなさい" + E("neutral")},
    ]
    result = clean([ChatRow.model_validate({"id": "ja", "language": "ja", "messages": messages})])
    reports = {r.turn: r for r in result.reports}
    assert reports[5].role == "user" and reports[5].codes == ["user_degenerate"] and reports[5].action == "cut"
    assert reports[6].codes == ["goodbye"] and reports[6].action == "flag"
    assert [m["content"] for m in messages[:5]] == [m.content for m in result.kept[0].messages]


def test_user_turns_that_are_assistant_speak_markup_or_another_language_cut_the_row():
    cases = {
        "en": [
            ("I'm sorry, but I can't help with that.", "user_assistant_speak"),
            ("sounds fun<emotion>happy</emotion>", "user_markup"),
            ("Quiero ir a la playa este fin de semana con mis amigos", "user_wrong_language"),
            ("```\nprint(1)\n```", "user_assistant_speak"),
        ],
        "zh": [
            ("作为一个AI，我没有喜好", "user_assistant_speak"),
            ("好啊 Neutral", "user_markup"),
            ("今天真的好累，let me know what you think about it", "user_wrong_language"),
            ("asdfghjkl", "user_degenerate"),
        ],
    }
    for lang, turns in cases.items():
        for text, code in turns:
            result = clean(
                [row(lang, [(text, ("嗯嗯，然后呢？" if lang == "zh" else "Oh really? Tell me more") + E("neutral"))])]
            )
            assert code in codes_by_turn(result)[5], (lang, text)
            assert len(result.kept[0].messages) == 5, (lang, text)  # cut before the user turn


def test_a_user_turn_echoing_the_character_cuts_the_row():
    reply = GOOD[1][1]
    result = clean([row("zh", [*GOOD, ("圆滚滚的，像个小包子", "对吧，超可爱" + E("happy"))], opening=False)])
    assert codes_by_turn(result)[5] == {"user_echo"} and reply in [m.content for m in result.kept[0].messages]


def test_markdown_is_caught_before_debris_removal_erases_it():
    """`**bold**` would be stripped as debris and the reply kept; it is an assistant's answer."""
    result = clean([row("en", [("Best drink?", "**Latte** is the best, trust me" + E("happy"))])])
    report = next(r for r in result.reports if r.turn == 6)
    assert report.action == "cut" and "assistant_speak" in report.codes
    assert "assistant_speak: structure: bold" in report.details


def test_a_deliberate_language_switch_keeps_the_row_and_its_character_replies_are_still_judged():
    hold = "说啥呢，听不懂" + E("surprised") + "你今天怎么怪怪的？" + E("neutral")
    ask = ("Can we chat in English from now on? I want to practise", hold)
    follow = ("Just one sentence in English, please!", "Sure, I can speak English with you!" + E("happy"))
    switched = dialogue_row(_dialogue([*GOOD, ask, follow])).model_copy(update={"switch_language": "en"})
    result = clean([switched])
    assert 5 not in codes_by_turn(result) and 7 not in codes_by_turn(result)  # the user turns are the test
    assert "wrong_language" in codes_by_turn(result)[8]  # the character that followed is cut
    assert [m.content for m in result.kept[0].messages][-1] == ask[1]
    drifted = dialogue_row(_dialogue([*GOOD, ask]))
    assert "user_wrong_language" in codes_by_turn(clean([drifted]))[5]  # without the switch it is drift


def test_the_dialogue_row_carries_the_switch_language():
    switched = _dialogue(GOOD).model_copy(update={"switch_language": "en"})
    assert dialogue_row(switched).switch_language == "en"
