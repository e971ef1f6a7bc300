"""Is a reply's last clause finished? Asked of a language model, for the languages a word list
cannot answer for.

Chinese and Japanese have no spaces, so `signals.find_truncation` can only match endings no
clause has (因为, 但是) and verb stems (終わっ). A clause cut after whole words (我听说你们下周)
or inside a word whose head is a word too (一点桂, of 桂花) reads as finished to any list. A
language model does not: asked to continue the reply from exactly there, it puts almost no
probability on a clause end (punctuation, the emotion tag, the end of the message) after an
unfinished clause, and a good share after a finished one.

Measured on the labeled set (benchmarks/cleaning_quality.py; bundled Qwen2.5-Coder-1.5B, top 20
next tokens, 85 zh/ja replies asked about): the three cut Chinese clauses get p(end) 0.000 and
are read as cut, with one finished one (the slang 发售那天第一个下); every other finished clause
gets 0.007 or more, most over 0.1. Japanese cuts (買っ, 終わっ) are already caught by the rules.
The 0.5B could not tell them apart (一点桂 got 0.09, above a dozen finished clauses), so the
role map gives this to the 1.5B.

The model is asked only about the last clause of an assistant reply that ends on a letter in
these languages: a token limit cuts the end of a reply, punctuation or an emoji already closes
a clause, and the spaced languages have their word lists.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import regex

from rp_pipeline.core.chat import ChatModel, Completion, LLMCallFailed, Messages, Role
from rp_pipeline.core.cleaning.models import ChatRow
from rp_pipeline.core.signals import SPACELESS

ROLE: Role = "cleaner"
TOP_TOKENS = 20  # the most a provider returns (OpenAI's cap); what is not among them counts as 0
_LAST_TAG = regex.compile(r"<emotion>[^<>]*</emotion>\s*$")
_TAG = regex.compile(r"<[^<>]*>")
_ENDS_ON_LETTER = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}]$")


@dataclass(frozen=True)
class EndingQuery:
    """The conversation up to a reply, and the reply up to the end of its last clause's text."""

    row_id: str
    turn: int
    messages: Messages
    prefix: str


def ending_queries(rows: Iterable[ChatRow]) -> list[EndingQuery]:
    """The replies worth asking about: assistant turns in a spaceless language whose last
    clause ends on a letter, not already known to be cut (`cut_turns`)."""
    queries = []
    for row in rows:
        if row.language not in SPACELESS:
            continue
        for turn, message in enumerate(row.messages):
            if message.role != "assistant" or turn in row.cut_turns:
                continue
            prefix = _LAST_TAG.sub("", message.content).rstrip()
            if not _ENDS_ON_LETTER.search(prefix):
                continue
            context = [{"role": m.role, "content": m.content} for m in row.messages[:turn]]
            queries.append(EndingQuery(row.id, turn, [*context, {"role": "assistant", "content": prefix}], prefix))
    return queries


def _closes(token: str) -> bool:
    """A token that ends the clause: punctuation, a tag, a line break, the end of the message."""
    stripped = token.strip(" ")
    if not stripped or stripped[0] in "<\n":
        return True
    return unicodedata.category(stripped[0]).startswith("P")


def end_probability(next_tokens: Iterable[tuple[str, float]]) -> float:
    """The probability the model puts on the clause ending here, summed over its top tokens."""
    return sum(probability for token, probability in next_tokens if _closes(token))


@dataclass(frozen=True)
class EndingReading:
    """What the model read: {row id: {turn: why}} for the replies it reads as cut, how many it
    was asked about, and how many answers came without probabilities (left to the rules)."""

    unfinished: dict[str, dict[int, str]]
    asked: int
    unread: int


async def find_unfinished(
    model: ChatModel, rows: Iterable[ChatRow], threshold: float, *, seed: int = 0
) -> EndingReading:
    """The replies whose last clause the model reads as unfinished: less than `threshold` on a
    clause end. The model continues the reply (the final assistant message is a prefill;
    llama.cpp's server continues it, as vLLM does with `continue_final_message`). An answer
    without probabilities (llama.cpp withholds them when its token is part of a character) is
    not judged; a model that never gives them cannot do this work, and that is an error."""
    queries = ending_queries(rows)

    async def read(query: EndingQuery) -> Completion:
        try:
            return await model.complete(ROLE, query.messages, seed=seed, top_logprobs=TOP_TOKENS)
        except LLMCallFailed:
            return Completion("")  # no answer: unread, left to the rules like an answer without probabilities

    completions = await asyncio.gather(*(read(q) for q in queries))
    unread = sum(not c.next_tokens for c in completions)
    if queries and unread == len(queries):
        raise ValueError(f"role {ROLE!r} answered without token probabilities: it cannot read endings")
    found: dict[str, dict[int, str]] = {}
    for query, completion in zip(queries, completions, strict=True):
        if not completion.next_tokens:
            continue
        p_end = end_probability(completion.next_tokens)
        if p_end < threshold:
            likely = ", ".join(f"{t!r} {p:.2f}" for t, p in completion.next_tokens[:3])
            clause = _TAG.split(query.prefix)[-1]
            found.setdefault(query.row_id, {})[query.turn] = (
                f"the model reads {clause[-12:]!r} as unfinished: p(end) {p_end:.3f}; next {likely}"
            )
    return EndingReading(found, len(queries), unread)


def merge_cuts(row: ChatRow, unfinished: Mapping[int, str]) -> dict[int, str]:
    """Every turn known to be cut, with why: the generator's token limit, then the model's reading."""
    return {**unfinished, **dict.fromkeys(row.cut_turns, "stopped on the token limit")}
