"""Typed records that cross stage boundaries.

Every stage reads and writes these, so a malformed row fails where it enters the
pipeline, with the field named, instead of three stages later.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from rp_pipeline.core.languages import check_language

LanguageCode = Annotated[str, AfterValidator(check_language)]
NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
EMOTIONS = ("angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised", "other")


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- seed variables -------------------------------------------------------------------


class PersonalityType(Record):
    """A personality written as what the person does, not adjectives (field notes 001)."""

    id: Slug
    name: NonEmptyStr
    behaviours: list[NonEmptyStr] = Field(min_length=2)


class Scene(Record):
    id: Slug
    place: NonEmptyStr
    time: NonEmptyStr
    situation: NonEmptyStr


class LanguageWeight(Record):
    code: LanguageCode
    weight: float = Field(gt=0)


class SeedVariables(Record):
    character_personalities: list[PersonalityType] = Field(min_length=1)
    user_personalities: list[PersonalityType] = Field(min_length=1)
    character_occupations: list[NonEmptyStr] = Field(min_length=1)
    user_occupations: list[NonEmptyStr] = Field(min_length=1)
    relationships: list[NonEmptyStr] = Field(min_length=1)
    scenes: list[Scene] = Field(min_length=1)
    languages: list[LanguageWeight] = Field(min_length=1)
    emotions: list[Literal[EMOTIONS]] = Field(min_length=1)  # type: ignore[valid-type]


class SeedSample(Record):
    """One sampled combination; the unit topics, synthesized personas and users come from."""

    id: str
    index: int
    character_personality: PersonalityType
    character_occupation: str
    user_personality: PersonalityType
    user_occupation: str
    relationship: str
    scene: Scene
    language: LanguageCode


class TopicSet(Record):
    id: str
    sample_id: str
    keywords: list[NonEmptyStr] = Field(min_length=1)


# --- persona cards ----------------------------------------------------------------------


class PersonaCard(Record):
    """The character card of the field notes (000/001/003).

    `speaking_examples` must be in `language`: the notes found the model speaks the
    language of the examples whatever the card says.
    """

    id: Slug
    name: NonEmptyStr
    gender: NonEmptyStr
    age: int = Field(ge=1, le=10_000)
    occupation: NonEmptyStr
    personality: list[NonEmptyStr] = Field(min_length=1)
    relation_to_user: NonEmptyStr
    background: NonEmptyStr
    speaking_examples: list[NonEmptyStr] = Field(min_length=1)
    knowledge_boundary: NonEmptyStr
    opening_line: NonEmptyStr
    specialty: NonEmptyStr
    language: LanguageCode
    source: Literal["authored", "synthesized"] = "authored"
    parent_ids: list[str] = Field(default_factory=list)


class UserCard(Record):
    """The simulated user. Only the user agent sees it (notes 000)."""

    personality: PersonalityType
    occupation: str
    relationship: str


# --- dialogues ------------------------------------------------------------------------


class Violation(Record):
    code: str
    detail: str = ""


class Attempt(Record):
    """A character reply that broke a rule and was regenerated; kept for DPO rejections."""

    content: str
    violations: list[Violation]


class Turn(Record):
    role: Literal["character", "user"]
    content: str
    topic: str | None = None  # the topic the scene agent injected before this turn
    violations: list[Violation] = Field(default_factory=list)
    rejected: list[Attempt] = Field(default_factory=list)
    cut: bool = False  # generation stopped on the token limit (cleaning cuts the row here)


class Dialogue(Record):
    id: str
    persona_id: str
    sample_id: str
    topic_id: str
    language: LanguageCode
    mode: Literal["multi_agent", "single_call"]
    system_prompt: str  # the persona card without the scene: what training sees
    scene: Scene
    user: UserCard
    turns: list[Turn]
    stop_reason: str
    switch_language: LanguageCode | None = None  # a language the user switched to on purpose


class Drop(Record):
    """A row or turn removed by a stage, with the reason code that removed it. `action` says
    what was done: drop (the row is gone), cut (the row ends before `turn`), repair (the turn
    was rewritten and kept) or flag (the turn also broke a rule after an earlier cut)."""

    row_id: str
    turn: int | None = None
    reason: str
    detail: str = ""
    action: Literal["drop", "cut", "repair", "flag"] = "drop"


# --- cleaned data and corpus ------------------------------------------------------------


class Message(Record):
    role: Literal["system", "user", "assistant"]
    content: str


class CleanedDialogue(Record):
    """A dialogue as training sees it: system prompt (card, no scene) + user/assistant turns."""

    id: str
    dialogue_id: str
    persona_id: str
    language: LanguageCode
    messages: list[Message]
    repaired_turns: int = 0
    switch_language: LanguageCode | None = None  # a language the user switched to on purpose


class CorpusRow(Record):
    id: str
    source: Literal["roleplay", "general"]
    persona_id: str | None
    language: LanguageCode
    messages: list[Message]
    parent_ids: list[str]
    switch_language: LanguageCode | None = None  # a language the user switched to on purpose


PairOrigin = Literal["regenerated", "self_sample", "judge_ranked"]


class PreferencePair(Record):
    id: str
    persona_id: str
    origin: PairOrigin
    prompt: list[Message]
    chosen: str
    rejected: str
    rejected_codes: list[str]
    parent_ids: list[str]
