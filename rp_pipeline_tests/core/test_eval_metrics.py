"""Every automatic eval metric is computed by the cleaning rule engine over all replies, and
each moves on a case built for it."""

from __future__ import annotations

import pytest

from rp_pipeline.core.evaluation import REPLY_METRICS, ScenarioPlay, automatic_metrics
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.settings import REPO_ROOT

RULES = RuleSet.load(REPO_ROOT / "assets" / "rules")
OPENING = "哟，来啦<emotion>happy</emotion>今儿还是老样子？<emotion>neutral</emotion>"
USERS = ["老陈早！", "最近生意咋样？", "你女儿回来了吗？"]
GOOD = [
    "早啊<emotion>happy</emotion>今天加俩蛋不？<emotion>neutral</emotion>",
    "下雨天没人买<emotion>sad</emotion>你带伞没？<emotion>neutral</emotion>",
    "下个月回来<emotion>happy</emotion>到时候请你吃煎饼！<emotion>happy</emotion>",
]


def metrics_for(replies: list[str], users: list[str] = USERS) -> dict[str, float]:
    play = ScenarioPlay(language="zh", opening_line=OPENING, character_name="陈建国", user_turns=users, replies=replies)
    return automatic_metrics([play], RULES)[0]


def with_bad(reply: str, at: int = 1) -> list[str]:
    return [reply if i == at else good for i, good in enumerate(GOOD)]


def test_clean_replies_pass_every_metric():
    m = metrics_for(GOOD)
    for name in REPLY_METRICS:
        assert m[name] == (
            1.0 if name in {"format_valid_rate", "in_language_rate", "within_length_rate", "rule_clean_rate"} else 0.0
        ), name
        assert m[f"{name}_low"] <= m[name] <= m[f"{name}_high"]
    assert m["replies"] == 3 and 0 < m["distinct_2"] <= 1 and m["mean_reply_chars"] > 0


CODE_BLOCK = "好的，这是代码：\n```python\nprint('hello')\n```"
LEAVE_LETTER = "好的，我可以帮你写一封请假邮件。请告诉我你的名字。"


@pytest.mark.parametrize(
    ("reply", "moved"),
    [
        ("今天天气不错", {"format_valid_rate": 0.0}),  # untagged: does not parse
        ("今天的煎饼<emotion>happy</emotion>也很好吃的那种感觉你懂的不<", {"format_valid_rate": 0.0}),
        ("Today is a nice day for pancakes.<emotion>happy</emotion>", {"in_language_rate": 0.0}),
        ("今天" * 30 + "<emotion>happy</emotion>", {"within_length_rate": 0.0}),
        (CODE_BLOCK, {"assistant_speak_rate": 1.0, "format_valid_rate": 0.0}),
        (LEAVE_LETTER, {"assistant_speak_rate": 1.0}),
        (
            "我可以帮你写一封请假邮件<emotion>happy</emotion>请告诉我名字<emotion>neutral</emotion>",
            {"assistant_speak_rate": 1.0},
        ),
        ("好啦我先下线了，再见<emotion>sad</emotion>", {"goodbye_rate": 1.0}),
        ("*笑着摆摆手*没事<emotion>happy</emotion>", {"stage_direction_rate": 1.0}),
        (OPENING, {"opening_echo_rate": 1.0}),
        ("最近生意咋样？<emotion>neutral</emotion>", {"user_echo_rate": 1.0}),
        ("陈建国：早啊<emotion>happy</emotion>", {"name_prefix_rate": 1.0}),
    ],
)
def test_each_metric_moves_on_its_case(reply, moved):
    m = metrics_for(with_bad(reply))
    for name, value in moved.items():
        assert m[name] == pytest.approx(value / 3 if value else 2 / 3, abs=1e-3), (name, m[name])
    assert m["rule_clean_rate"] == pytest.approx(2 / 3, abs=1e-3)


def test_self_repetition_across_turns_counts():
    m = metrics_for([GOOD[0], GOOD[1], GOOD[1]])
    assert m["self_repetition_rate"] == pytest.approx(1 / 3, abs=1e-3)


def test_distinct_n_falls_with_repetitive_replies():
    varied, same = (
        metrics_for(GOOD),
        metrics_for(["好<emotion>happy</emotion>", "好好<emotion>happy</emotion>", "好好好<emotion>happy</emotion>"]),
    )
    assert same["distinct_1"] < varied["distinct_1"] and same["distinct_2"] < varied["distinct_2"]


def test_unparsed_replies_are_counted_not_skipped():
    m = metrics_for(["完全没有标签的回复", "也没有", "还是没有"])
    assert m["replies"] == 3 and m["format_valid_rate"] == 0.0 and m["within_length_rate"] == 0.0
