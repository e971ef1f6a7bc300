from pathlib import Path

import pytest

from rp_pipeline.core.reply_format import ReplyFormatError, parse_reply
from rp_pipeline.core.rules import RuleSet, check_character_reply, is_echo
from rp_pipeline.settings import REPO_ROOT

RULES = RuleSet.load(REPO_ROOT / "assets" / "rules")


def codes(raw: str, lang: str, **kw) -> set[str]:
    return {v.code for v in check_character_reply(raw, lang, RULES, **kw)}


def test_parses_clauses_and_image():
    reply = parse_reply(
        "给你看今天的拉花<emotion>happy</emotion>"
        "<img><prompt>一杯拿铁</prompt><includePerson>false</includePerson></img>"
    )
    assert reply.text == "给你看今天的拉花"
    assert reply.clauses[0].emotion == "happy"
    assert reply.image and reply.image.include_person is False
    assert reply.char_limit == 80


@pytest.mark.parametrize(
    "raw, message",
    [
        ("", "empty"),
        ("no tags at all", "without an <emotion>"),
        ("hi<emotion>joyful</emotion>", "unknown emotion"),
        ("hi<emotion>happy</emotion><img><prompt>x</prompt></img>", "malformed <img>"),
        ("hi<emotion>happy</emotion> trailing", "without an <emotion>"),
    ],
)
def test_rejects_malformed_replies(raw, message):
    with pytest.raises(ReplyFormatError, match=message):
        parse_reply(raw)


def test_clean_replies_pass_in_chinese_and_english():
    assert (
        codes("今天店里来了只橘猫<emotion>happy</emotion>你猜它点了什么？<emotion>surprised</emotion>", "zh") == set()
    )
    assert codes("Guess what the cat did today<emotion>happy</emotion>", "en") == set()


def test_each_rule_fires():
    assert "assistant_speak" in codes("作为一个AI，我很高兴为您服务<emotion>neutral</emotion>", "zh")
    assert "assistant_speak" in codes(
        "作为一个AI助手，我很乐意帮助你<emotion>neutral</emotion>", "zh"
    )  # Latin then Han
    assert "assistant_speak" in codes("As an AI language model I cannot<emotion>neutral</emotion>", "en")
    assert "goodbye" in codes("好啦我先下线了，再见<emotion>sad</emotion>", "zh")
    assert "stage_direction" in codes("*smiles softly* hi there friend<emotion>happy</emotion>", "en")
    assert "stage_direction" in codes("（笑着说）你来啦朋友<emotion>happy</emotion>", "zh")
    assert "too_long" in codes("这" * 51 + "<emotion>neutral</emotion>", "zh")
    assert "wrong_language" in codes("I only eat ramen on Fridays honestly<emotion>neutral</emotion>", "zh")
    assert "bad_format" in codes("你好呀，今天怎么样", "zh")
    assert codes("   ", "zh") == {"empty"}
    assert "echo" in codes(
        "我最近在准备一个面试，有点紧张<emotion>sad</emotion>", "zh", last_user="我最近在准备一个面试，有点紧张。"
    )


def test_kaomoji_and_word_boundaries_do_not_fire():
    assert "stage_direction" not in codes("今天好开心(＾▽＾)<emotion>happy</emotion>", "zh")
    assert "assistant_speak" not in codes("She has an aim in life, you know<emotion>happy</emotion>", "en")
    assert not is_echo("好<emotion>happy</emotion>", "好的我知道了，明天见面聊聊吧")


def test_rules_file_errors_name_the_file(tmp_path: Path):
    for name in ("assistant_speak", "goodbye"):
        (tmp_path / f"{name}.yaml").write_text("zh: [再见]\n")
    (tmp_path / "meta_commentary.yaml").write_text("- not a mapping\n")
    with pytest.raises(ValueError, match=r"meta_commentary\.yaml"):
        RuleSet.load(tmp_path)
