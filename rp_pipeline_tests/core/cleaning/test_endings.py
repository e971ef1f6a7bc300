"""A language model reads whether a Chinese/Japanese reply stops mid-clause, which no word list
can (我听说你们下周, 一点桂): the replies it is asked about, how its next-token probabilities
decide, and what cleaning does with its reading."""

from __future__ import annotations

import asyncio

import pytest

from rp_pipeline.core.chat import Completion, Messages, Role
from rp_pipeline.core.cleaning import CleaningConfig, clean_rows
from rp_pipeline.core.cleaning.endings import end_probability, ending_queries, find_unfinished
from rp_pipeline_tests.core.cleaning.helpers import RULES, clean, codes_by_turn, row
from rp_pipeline_tests.fake_llm import CLAUSE_ENDS, CLAUSE_GOES_ON

E = "<emotion>{}</emotion>".format
CUT_AFTER_WORDS = "好嘞" + E("happy") + "你最近考试准备得怎么样了？我听说你们下周" + E("neutral")
CUT_IN_A_WORD = "要热的还是冰的？我给你多加一点桂" + E("neutral")
FINISHED = "要热的还是冰的" + E("neutral")


class EndingReader:
    """An in-process `ChatModel` for the `cleaner` role: a reply prefill that ends with one of
    `unfinished` goes on (no clause end among its next tokens), any other ends."""

    def __init__(self, unfinished: tuple[str, ...], probabilities: bool = True) -> None:
        self.unfinished, self.probabilities = unfinished, probabilities
        self.asked: list[Messages] = []

    async def complete(
        self, role: Role, messages: Messages, *, seed: int, response_schema: dict | None = None, top_logprobs: int = 0
    ) -> Completion:
        assert role == "cleaner" and top_logprobs > 0
        self.asked.append(messages)
        goes_on = messages[-1]["content"].endswith(self.unfinished)
        tokens = (CLAUSE_GOES_ON if goes_on else CLAUSE_ENDS).tokens
        return Completion(tokens[0][0], "length", tokens if self.probabilities else ())

    async def structured(self, *args, **kwargs):
        raise NotImplementedError


def _read(rows, reader: EndingReader, threshold: float = 0.005):
    return asyncio.run(find_unfinished(reader, rows, threshold)).unfinished


def test_only_last_clauses_of_spaceless_replies_ending_on_a_letter_are_asked_about():
    zh = row("zh", [("我要一杯桂花拿铁", CUT_IN_A_WORD), ("谢谢", "不客气！" + E("happy"))], row_id="zh")
    en = row("en", [("A latte please", "Sure, one latte coming up and I'll add some cinnam" + E("happy"))], row_id="en")
    queries = ending_queries([zh, en])
    # the opening exchanges end on 了 and 生 (letters, asked), the punctuated "不客气！" is not;
    # English has its word list
    assert [(q.row_id, q.turn) for q in queries] == [("zh", 2), ("zh", 4), ("zh", 6)]
    last = queries[-1]
    assert last.prefix == "要热的还是冰的？我给你多加一点桂"
    assert last.messages[-1] == {"role": "assistant", "content": last.prefix}  # a prefill the model continues
    assert last.messages[-2] == {"role": "user", "content": "我要一杯桂花拿铁"}
    cut = zh.model_copy(update={"cut_turns": [6]})  # the generator already said it stopped on its limit
    assert [q.turn for q in ending_queries([cut])] == [2, 4]


def test_end_probability_counts_punctuation_tags_line_breaks_and_the_end_of_the_message():
    assert end_probability([("。", 0.2), ("<", 0.1), ("\n", 0.05), ("", 0.05), ("！", 0.1)]) == pytest.approx(0.5)
    assert end_probability([("花", 0.7), ("圆", 0.2), ("了", 0.05)]) == 0
    assert end_probability([(" …", 0.3), ("?", 0.1)]) == pytest.approx(0.4)


def test_replies_read_as_unfinished_are_truncated_and_cut_with_the_models_reason():
    rows = [
        row("zh", [("最近咋样", CUT_AFTER_WORDS)], row_id="exam"),
        row("zh", [("桂花拿铁一杯", CUT_IN_A_WORD)], row_id="latte"),
        row("zh", [("来一杯拿铁", FINISHED)], row_id="fine"),
    ]
    reader = EndingReader(unfinished=("下周", "一点桂"))
    unfinished = _read(rows, reader)
    assert {row_id: set(turns) for row_id, turns in unfinished.items()} == {"exam": {6}, "latte": {6}}
    assert "p(end) 0.001" in unfinished["latte"][6] and "'花' 0.70" in unfinished["latte"][6]

    rules_only = clean(rows)
    assert all("truncated" not in codes for codes in codes_by_turn(rules_only).values())
    result = clean_rows(rows, RULES, CleaningConfig(), unfinished)
    reports = {(r.id, r.turn): r for r in result.reports}
    assert reports["exam", 6].codes == ["truncated"] and reports["exam", 6].action == "cut"
    assert "unfinished" in reports["latte", 6].details[0]
    kept = {r.id: r for r in result.kept}
    assert len(kept["exam"].messages) == 5 and len(kept["fine"].messages) == 7  # cut before the cut reply


def test_the_threshold_decides_and_a_model_without_probabilities_is_an_error():
    rows = [row("zh", [("来一杯拿铁", FINISHED)])]
    assert _read(rows, EndingReader(unfinished=())) == {}
    everything = _read(rows, EndingReader(unfinished=()), threshold=0.99)  # 0.95 on a clause end is not enough
    assert set(everything["r1"]) == {2, 4, 6}
    with pytest.raises(ValueError, match="without token probabilities"):
        _read(rows, EndingReader(unfinished=(), probabilities=False))


def test_an_answer_without_probabilities_is_left_to_the_rules_and_counted():
    class SometimesSilent(EndingReader):
        async def complete(self, role, messages, **kwargs):
            answer = await super().complete(role, messages, **kwargs)
            return Completion(answer.text) if len(self.asked) == 1 else answer

    rows = [row("zh", [("桂花拿铁一杯", CUT_IN_A_WORD)])]
    reading = asyncio.run(find_unfinished(SometimesSilent(unfinished=("一点桂",)), rows, 0.005))
    assert (reading.asked, reading.unread, set(reading.unfinished["r1"])) == (3, 1, {6})
