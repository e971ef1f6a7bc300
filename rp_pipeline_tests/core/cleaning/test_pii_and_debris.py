from __future__ import annotations

import pytest

from rp_pipeline.core.cleaning.debris import strip_debris
from rp_pipeline.core.cleaning.pii import MASK, scrub_pii, valid_cn_id


@pytest.mark.parametrize(
    "text, kind",
    [
        ("身份证号11010519491231002X你记一下", "cn_id"),
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
        "身份证号110105194912310021不对",  # checksum should be X
        "我去过上海市，那里的路很宽",
        "I walked 5 miles down the road",
    ],
)
def test_numbers_and_places_that_are_not_pii_stay(text):
    assert scrub_pii(text) == (text, [])


def test_cn_id_checksum():
    assert valid_cn_id("11010519491231002X") and not valid_cn_id("110105194912310021")


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
