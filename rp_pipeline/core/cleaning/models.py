"""The records cleaning reads and writes: a chat row (the `messages` view every exporter and
`rp clean` share), a per-turn verdict of one filter, and the report row of a flagged turn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rp_pipeline.core.models import LanguageCode, Message, NonEmptyStr

REASON_CODES = (
    "wrong_language",
    "lang_mix",
    "assistant_speak",
    "stage_direction",
    "goodbye",
    "too_long",
    "bad_format",
    "meta_commentary",
    "empty",
    "echo",
    "repetition_loop",
    "near_duplicate",
    "exact_duplicate",
    "pii",
    "symbol_debris",
    "overfrequent_pattern",
    "too_few_turns",  # a row that was short before anything was cut (no turn to blame)
    # character replies
    "truncated",  # ends mid-word or inside a tag (a length limit or the grammar's clause bound cut it)
    "self_repeat",  # the same clause or sentence twice inside one reply
    "name_prefix",  # starts with a speaker prefix such as `林小满：` or `Lin:` (seed rule 1)
    "language_name",  # talks about the language it speaks in ("in English", "用中文回答")
    "degenerate",  # a character or syllable repeated far past emphasis, keyboard mash (a provider's garbage)
    # user turns: a flagged user turn cuts the row before it
    "user_assistant_speak",  # assistant-speak or a refusal ("I'm sorry, but I can't help with that.")
    "user_degenerate",  # a character or syllable repeated far past emphasis, keyboard mash
    "user_echo",  # (nearly) copies the character's last reply
    "user_markup",  # format tags, emotion label words or leaked JSON in the text
    "user_wrong_language",  # not in the dialogue's language (short neutral turns are not judged)
    "user_truncated",  # the generator stopped on its token limit (a Chinese turn cut after a word looks whole)
)
Action = Literal["drop", "cut", "repair", "flag"]


class CleaningConfig(BaseModel):
    min_exchanges: int = Field(default=2, ge=1, description="a row left with fewer assistant turns is dropped, not cut")
    loop_window: int = Field(
        default=4, ge=1, description="a reply repeating one of this many previous replies is a loop"
    )
    loop_similarity: float = Field(
        default=0.75, gt=0, le=1, description="character-bigram Jaccard of two looping replies"
    )
    near_duplicate_threshold: float = Field(
        default=0.8, gt=0, le=1, description="MinHash Jaccard of near-duplicate rows"
    )
    pattern_chars: int = Field(default=6, ge=1, description="a reply's opening: its first N letters/digits")
    pattern_max_share: float = Field(
        default=0.05, gt=0, le=1, description="cap on the share of replies with one opening"
    )
    pattern_min_count: int = Field(default=20, ge=1, description="the cap is never below this many replies")
    ending_min_probability: float = Field(
        default=0.005,
        ge=0,
        lt=1,
        description="a Chinese/Japanese reply whose last clause the `cleaner` model ends with less "
        "than this probability is `truncated` (core/cleaning/endings.py)",
    )


class ChatRow(BaseModel):
    """One conversation: `{"id", "language", "messages": [{"role", "content"}]}`; a system
    message, if any, comes first.

    `opening_line` is the character's first message when training keeps it in the system
    prompt instead of `messages` (a simulated dialogue): cleaning compares every turn with it
    but never exports it. `character_name` lets cleaning recognise a `Name：` prefix.
    `cut_turns` are the messages whose generator stopped on its token limit: cut, whatever
    their text looks like (a Chinese turn cut after a whole word reads as finished).
    `switch_language`: the other language the user deliberately writes some turns in (a
    simulated language-hold test); user turns in it are not drift, the character's still are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: NonEmptyStr
    language: LanguageCode
    messages: list[Message] = Field(min_length=1)
    opening_line: str | None = None
    character_name: str | None = None
    cut_turns: list[int] = Field(default_factory=list)
    switch_language: LanguageCode | None = None

    @field_validator("messages")
    @classmethod
    def _system_first(cls, messages: list[Message]) -> list[Message]:
        for index, message in enumerate(messages[1:], start=1):
            if message.role == "system":
                raise ValueError(f"messages.{index}: a system message is only allowed as the first message")
        return messages


class TurnReport(BaseModel):
    """A flagged turn (or, with turn=None, a whole row) and what cleaning did about it.

    drop: the row was removed; cut: the row was cut before this turn; repair: the turn was
    rewritten and kept; flag: the turn also breaks a rule but was already removed by a cut.
    """

    id: str
    turn: int | None
    role: Literal["system", "user", "assistant"] | None
    codes: list[str]
    action: Action
    details: list[str] = Field(default_factory=list, exclude=True)  # for lineage; not in report.jsonl


@dataclass(frozen=True)
class Verdict:
    """What one filter says about one turn: drop the turn (the row is cut there) or repair it."""

    code: str
    action: Literal["drop", "repair"]
    detail: str = ""
    repaired: str | None = None
