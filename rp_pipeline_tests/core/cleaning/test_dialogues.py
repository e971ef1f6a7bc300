"""Whole dialogues: degenerate loops are cut at their start, drift is flagged turn by turn,
and simulated Dialogue records go through the same code path as `rp clean` rows."""

from __future__ import annotations

from rp_pipeline.core.cleaning import dialogue_row, to_drops
from rp_pipeline_tests.core.cleaning.helpers import clean, codes_by_turn, row
from rp_pipeline_tests.core.cleaning.helpers import dialogue as make_dialogue

E = "<emotion>{}</emotion>".format
GOOD = [
    ("你今天去哪了？", "去了趟花市，买了一盆多肉<emotion>happy</emotion>"),
    ("好看吗？", "圆滚滚的，像个小包子<emotion>happy</emotion>"),
    ("叫什么名字？", "还没想好，你帮我起一个？<emotion>neutral</emotion>"),
]


def _loop(n_turns: int) -> list[tuple[str, str]]:
    users = ["你烦不烦啊", "滚吧你", "笨蛋"]
    replies = [
        "你才是笨蛋，拜拜！" + E("angry"),
        "哼，你才是笨蛋，再见！" + E("angry"),
        "你才是笨蛋，拜拜了！" + E("angry"),
    ]
    return [(users[i % 3], replies[i % 3]) for i in range(n_turns // 2)]


def test_a_100_turn_goodbye_insult_loop_is_cut_at_its_start():
    result = clean([row("zh", GOOD + _loop(100), opening=False)])
    kept = result.kept[0].messages
    assert len(kept) == 1 + 2 * len(GOOD)  # system + the good exchanges, nothing of the loop
    assert [m.content for m in kept[2::2]] == [reply for _, reply in GOOD]
    reports = {r.turn: r for r in result.reports}
    loop_start = 2 * len(GOOD) + 2
    assert reports[loop_start].action == "cut"
    assert reports[loop_start].codes == ["goodbye", "repetition_loop"]
    later = [reports[t] for t in range(loop_start + 2, 2 * len(GOOD) + 101, 2)]
    assert len(later) == 49 and all(r.action == "flag" and "repetition_loop" in r.codes for r in later)
    assert min(reports) == loop_start  # nothing before the loop was touched


def test_a_loop_without_goodbyes_is_cut_where_it_starts_not_where_it_is_noticed():
    replies = ["You're the idiot, not me!" + E("angry"), "Whatever, loser." + E("disgusted")]
    looping = [("?", replies[i % 2]) for i in range(20)]
    result = clean([row("en", looping)])  # two good opening exchanges, then the loop
    assert codes_by_turn(result)[6] == {"repetition_loop"}  # first reply of the loop, not the first repeat (turn 10)
    assert result.reports[0].action == "cut" and len(result.kept[0].messages) == 5


def test_a_reply_repeated_once_is_cut_at_the_repeat():
    replies = [
        "I fixed a bike today" + E("happy"),
        "The chain was rusty" + E("sad"),
        "I fixed a bike today!" + E("happy"),
    ]
    result = clean([row("en", [("?", r) for r in replies])])
    # one repeat is an echo of the earlier reply, not a loop (a loop needs the reply three times)
    assert [(r.turn, r.codes, r.action) for r in result.reports] == [(10, ["echo"], "cut")]
    assert len(result.kept[0].messages) == 9  # the two opening exchanges and the first two replies stay


def test_a_loop_with_too_few_good_turns_before_it_drops_the_dialogue():
    result = clean([row("zh", _loop(20), opening=False)])
    assert result.kept == []
    assert result.reports[0].turn == 2 and result.reports[0].action == "drop"
    drops = to_drops(result.reports)
    assert {d.reason for d in drops} == {"goodbye", "echo", "repetition_loop"}
    assert all(d.row_id == "r1" for d in drops) and drops[0].detail.startswith("drop")


def test_surreal_drift_is_flagged_turn_by_turn():
    drift = [
        ("你在干嘛", "我在月亮上的咖啡馆<emotion>happy</emotion><img><prompt>月亮上的咖啡馆</prompt></img>"),
        ("啊？", "（叹气）月亮上的猫在弹钢琴<emotion>sad</emotion>"),
        ("真的吗", "（注：角色此时陷入幻想）钢琴变成了鲸鱼<emotion>surprised</emotion>"),
        (
            "然后呢",
            "鲸鱼在天上游泳<emotion>happy</emotion><img><prompt>鲸鱼</prompt><includePerson>maybe</includePerson></img>",
        ),
        ("好吧", "*眨眨眼* 你也变成鲸鱼了<emotion>happy</emotion><img><prompt>whale</prompt>"),
    ]
    result = clean([row("zh", drift)])
    assert {r.turn: (r.codes, r.action) for r in result.reports} == {
        6: (["bad_format"], "cut"),
        8: (["stage_direction"], "flag"),
        10: (["meta_commentary"], "flag"),
        12: (["bad_format"], "flag"),
        14: (["bad_format", "stage_direction"], "flag"),
    }
    assert len(result.kept[0].messages) == 5  # the two good opening exchanges


def test_a_clean_dialogue_is_kept_unchanged():
    original = row("zh", GOOD, opening=False)
    result = clean([original])
    assert result.reports == [] and result.kept == [original]


def test_a_short_clean_row_is_dropped_as_too_few_turns():
    result = clean([row("zh", GOOD[:1], opening=False)], min_exchanges=2)
    assert result.kept == [] and [(r.turn, r.codes) for r in result.reports] == [(None, ["too_few_turns"])]


def test_dialogue_records_keep_turn_numbers():
    """Message i of the row is turn i of the dialogue (turn 0, the opening line, is in the
    system prompt), so reports, lineage and DPO pairs all point at the same turn."""
    dialogue = make_dialogue(GOOD, "你来啦<emotion>happy</emotion>", system_prompt="你是林小满")
    chat = dialogue_row(dialogue)
    assert chat.messages[0].role == "system" and chat.messages[0].content == "你是林小满"
    assert [m.content for m in chat.messages[1:]] == [t.content for t in dialogue.turns[1:]]
    assert [m.role for m in chat.messages[1:]] == ["user", "assistant"] * 3


def test_a_turn_the_generator_cut_on_its_token_limit_cuts_the_row_though_its_text_looks_whole():
    """我感觉到了一种 reads as finished to every text rule; the simulator knows it was cut."""
    opening = "早啊<emotion>happy</emotion>"
    exchanges = [
        ("今天好累啊", "辛苦啦<emotion>sad</emotion>"),
        ("我感觉到了一种", "什么感觉？<emotion>surprised</emotion>"),
        ("说不清楚", "那先喝杯咖啡吧<emotion>happy</emotion>"),
    ]
    record = make_dialogue(exchanges, opening)
    record.turns[3] = record.turns[3].model_copy(update={"cut": True})
    chat = dialogue_row(record)
    assert chat.cut_turns == [3]
    result = clean([chat], min_exchanges=1)
    assert codes_by_turn(result)[3] == {"user_truncated"}
    assert [m.content for m in result.kept[0].messages[1:]] == ["今天好累啊", "辛苦啦<emotion>sad</emotion>"]
    drops = to_drops(result.reports)
    assert [(d.turn, d.reason, d.action) for d in drops] == [(3, "user_truncated", "cut")]

    record.turns[3] = record.turns[3].model_copy(update={"cut": False})
    record.turns[2] = record.turns[2].model_copy(update={"cut": True})
    assert codes_by_turn(clean([dialogue_row(record)], min_exchanges=1))[2] == {"truncated"}


def test_a_user_turn_that_repeats_the_users_own_earlier_turn_cuts_the_row():
    """周屿's demo row: the simulated user said its first message again, with a question in front."""
    said = "但你的身体状况看起来还好。有时候确实需要晚班，不过我也期待你的休息和放松。"
    first = "你真是很细心啊！我明白了加班的辛苦，" + said
    again = "你是不是觉得我需要更多的休息和放松？我明白加班的辛苦，" + said
    exchanges = [
        (first, "我明白你的感受" + "<emotion>neutral</emotion>"),
        (again, "确实需要放松和休息" + "<emotion>neutral</emotion>"),
    ]
    result = clean(
        [dialogue_row(make_dialogue(exchanges, "又在电梯碰到你了<emotion>surprised</emotion>"))], min_exchanges=1
    )
    assert codes_by_turn(result)[3] == {"user_echo"}
    assert len(result.kept[0].messages) == 3  # system, the first exchange
    # saying something again in other words is no repeat
    other = [
        (first, "我明白你的感受<emotion>neutral</emotion>"),
        ("我今天也加班了，好累", "早点睡吧<emotion>sad</emotion>"),
    ]
    assert not clean([dialogue_row(make_dialogue(other, "又在电梯碰到你了<emotion>surprised</emotion>"))]).reports
    short = [("哈哈", "笑什么<emotion>surprised</emotion>"), ("哈哈", "你今天怪怪的<emotion>neutral</emotion>")]
    assert not clean([dialogue_row(make_dialogue(short, "又在电梯碰到你了<emotion>surprised</emotion>"))]).reports
