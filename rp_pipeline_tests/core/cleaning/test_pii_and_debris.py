from __future__ import annotations

import re
import sys

import pytest
import regex

from rp_pipeline.core.cleaning import debris, pii
from rp_pipeline.core.cleaning.debris import strip_debris
from rp_pipeline.core.cleaning.pii import MASK, looks_like_cn_id, scrub_pii, valid_cn_id


@pytest.mark.parametrize(
    "text, kind",
    [
        ("身份证号11010519491231002X你记一下", "cn_id"),
        ("身份证号110105194912310021你记一下", "cn_id"),  # check digit mistyped (X): still the person's ID
        ("卡号 4111 1111 1111 1111 别告诉别人", "bank_card"),
        ("我家电话010-12345678", "cn_landline"),
        ("我住在上海市浦东新区世纪大道100号3栋", "address_zh"),
        ("我的密码是abc12345", "password"),
        ("I live at 221 Baker Street, come by", "address_en"),
        ("call me at (415) 555-0132 tonight", "phone"),
        ("my London number is +44 20 7946 0958", "intl_phone"),
    ],
)
def test_pii_kinds_are_masked(text, kind):
    scrubbed, kinds = scrub_pii(text)
    assert kind in kinds and MASK in scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "订单号 1234567812345678 和 2024年",  # 16 digits failing Luhn
        "订单号123456789012345678不对",  # 18 digits, but no real birth date inside (7890-12-34)
        "快递单号 990105194912310021",  # no province 99
        "我去过上海市，那里的路很宽",
        "I walked 5 miles down the road",
    ],
)
def test_numbers_and_places_that_are_not_pii_stay(text):
    assert scrub_pii(text) == (text, [])


def test_only_the_address_is_masked_when_chinese_touches_an_email_and_a_password_keeps_its_punctuation():
    assert scrub_pii("简历发到zhang_san+job@qq.com就行")[0] == f"简历发到{MASK}就行"
    assert scrub_pii("new password: P@ss.w0rd!x, ok")[0] == f"new password: {MASK}, ok"
    assert scrub_pii("my password is hunter22!")[0] == f"my password is {MASK}!"


def test_cn_id_checksum_and_structure():
    assert valid_cn_id("11010519491231002X") and not valid_cn_id("110105194912310021")
    assert looks_like_cn_id("110105194912310021") and not looks_like_cn_id("110105194902300021")  # 30 February


@pytest.mark.parametrize(
    "raw",
    [
        "(╯°□°）╯︵ ┻━┻ 气死了<emotion>angry</emotion>",
        "¯\\_(ツ)_/¯ whatever<emotion>neutral</emotion>",
        "真的吗？！……太好了!!!<emotion>surprised</emotion>",
        "好开心😀<emotion>happy</emotion>",
    ],
)
def test_kaomoji_emphasis_and_single_emoji_are_not_debris(raw):
    assert strip_debris(raw) == (raw, [])


@pytest.mark.parametrize(
    "raw, cleaned, kind",
    [
        ("好开心😀😀😀😀😀<emotion>happy</emotion>", "好开心😀<emotion>happy</emotion>", "emoji_spam"),
        ("好的】】你说吧<emotion>neutral</emotion>", "好的你说吧<emotion>neutral</emotion>", "unbalanced_bracket"),
        ("what\ufffd\u200b is this<emotion>neutral</emotion>", "what is this<emotion>neutral</emotion>", "garbage"),
        ("你好&nbsp;呀<emotion>happy</emotion>", "你好呀<emotion>happy</emotion>", "html_entity"),
    ],
)
def test_debris_is_removed_and_tags_kept(raw, cleaned, kind):
    assert strip_debris(raw) == (cleaned, [kind])


EVERY_CHARACTER = "".join(map(chr, range(sys.maxunicode + 1)))


@pytest.mark.parametrize(
    "raw, kind",
    [
        ("a\x07b", "garbage"),  # a control character
        ("a\ue000b", "garbage"),  # private use
        ("a\u2060b", "garbage"),
        ("a<br>b", "html_tag"),
        ("a~~b~~c", "strikethrough"),
        ("a`b`c", "markdown"),
        ("a±×÷b", "symbols"),
        ("a🀄🀄🀄🀄b", "emoji_spam"),
        ("a「b", "unbalanced_bracket"),
    ],
)
def test_debris_of_every_kind_passes_the_screen(raw, kind):
    assert kind in strip_debris(raw)[1]


def test_a_piece_without_any_screened_character_holds_no_debris(monkeypatch):
    """Every code point the debris screen lets pass, four times over (emoji spam needs four),
    run through the removals themselves: nothing is removed."""
    unscreened = "".join(ch * 4 for ch in EVERY_CHARACTER if not debris._DEBRIS_CHAR.search(ch))
    monkeypatch.setattr(debris, "_DEBRIS_CHAR", regex.compile(""))  # the slow path for every piece
    for start in range(0, len(unscreened), 40_000):
        chunk = unscreened[start : start + 40_000]
        assert strip_debris(chunk) == (chunk, [])


def test_a_text_without_a_digit_an_at_or_a_password_word_holds_no_pii(monkeypatch):
    """Every code point the PII screen lets pass, in runs, run through the patterns: none found."""
    unscreened = "".join(ch for ch in EVERY_CHARACTER if not pii._HINT.search(ch))
    monkeypatch.setattr(pii, "_HINT", re.compile(""))
    for start in range(0, len(unscreened), 40_000):
        chunk = unscreened[start : start + 40_000]
        assert scrub_pii(chunk) == (chunk, [])
        assert scrub_pii(" ".join(chunk[i : i + 12] for i in range(0, 1200, 12)))[1] == []
    assert pii._HINT.search("my PassWord is x") and pii._HINT.search("密码") and pii._HINT.search("٣")
