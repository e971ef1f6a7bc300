"""Dialogue simulation (field notes 000/001), in one of two modes.

multi_agent: four agents: the character (sees its card and the scene, never the user card),
the user agent (sees the character card, its own user card and the scene), a scene agent
that hands topics to the character (the character starts and deepens topics, notes 000),
and a moderator that only decides when to stop. Both speakers are checked as they are
generated and regenerated on violation, up to `max_attempts`: character replies against the
reply rules (a reply cut by the token limit counts as `truncated`), user turns against the
user-turn rules; the last attempt is kept with its violations, for cleaning to cut. Rejected
character attempts are kept, since they are exactly the "rejected" side DPO wants.

single_call: one LLM writes the whole dialogue as structured JSON (cheaper, less natural
turn-taking). Its character turns are checked by the same rules; a violating turn is kept
with its reason codes, for cleaning to repair or drop.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from rp_pipeline.core.chat import ChatModel, LLMCallFailed, StructuredOutputError
from rp_pipeline.core.ids import content_id, stable_seed
from rp_pipeline.core.languages import LANGUAGES
from rp_pipeline.core.models import Attempt, Dialogue, PersonaCard, SeedSample, TopicSet, Turn, UserCard, Violation
from rp_pipeline.core.personas import system_prompt
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet, check_character_reply, check_user_turn
from rp_pipeline.core.signals import SPACELESS
from rp_pipeline.core.topics import in_language


class SimulationMode(StrEnum):
    multi_agent = "multi_agent"
    single_call = "single_call"


class SimulationConfig(BaseModel):
    mode: SimulationMode = SimulationMode.multi_agent
    # Turns count the opening line; a dialogue ends on a character turn, so it has an odd length.
    min_turns: int = Field(default=20, ge=2)
    max_turns: int = Field(default=100, ge=3)
    topic_every: int = Field(
        default=4, ge=1, description="the character gets a topic on its first reply and then every N replies"
    )
    moderator_every: int = Field(default=4, ge=1, description="ask the moderator every N turns after min_turns")
    max_attempts: int = Field(default=3, ge=1, description="tries per turn (character and user) on a rule violation")
    dialogues_per_persona: int = Field(default=1, ge=1)
    language_switch_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of multi_agent dialogues whose user writes its 2nd and 3rd turns in another language "
        "(English; Chinese to an English character) and asks the character to follow, which it must not",
    )

    def model_post_init(self, __context: object) -> None:
        if self.min_turns > self.max_turns:
            raise ValueError(f"min_turns ({self.min_turns}) > max_turns ({self.max_turns})")


class WrittenTurn(BaseModel):
    role: Literal["user", "character"]
    content: str = Field(min_length=1)


class WrittenDialogue(BaseModel):
    """The single-call writer's output: the turns after the opening line, user first."""

    turns: list[WrittenTurn] = Field(min_length=2)

    @model_validator(mode="after")
    def _alternates(self) -> WrittenDialogue:
        for i, turn in enumerate(self.turns):
            expected = "user" if i % 2 == 0 else "character"
            if turn.role != expected:
                raise ValueError(
                    f"turns[{i}].role is {turn.role!r}; turns alternate user, character, starting with user"
                )
        return self


class StopDecision(BaseModel):
    stop: bool
    reason: str = Field(default="", max_length=80)  # bounded: a constrained decoder must close the JSON in time


# The user's 2nd turn asks for the other language and the 3rd insists: a 7-turn dialogue then
# ends on the character keeping its language twice, as users do it ("can we speak English?").
SWITCH_TURNS = (2, 3)
CUT = Violation(code="truncated", detail="stopped on the token limit")
USER_CUT = Violation(code="user_truncated", detail="stopped on the token limit")


def user_card(sample: SeedSample, persona: PersonaCard) -> UserCard:
    """The sample's user; the relationship is the card's, so the user agent and the character
    are told the same one (an authored card's relationship wins over the sample's)."""
    return UserCard(
        personality=sample.user_personality, occupation=sample.user_occupation, relationship=persona.relation_to_user
    )


def _one_line(text: str, limit: int = 200) -> str:
    """User-agent output: the first non-empty line, without a speaker prefix or quotes."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    head = line[:16]
    for colon in (":", "："):
        if colon in head:
            line = line.split(colon, 1)[1].strip()
            break
    return line.strip('"“”「」')[:limit]


class DialogueSimulator:
    def __init__(self, llm: ChatModel, prompts: Prompts, rules: RuleSet, config: SimulationConfig):
        self.llm, self.prompts, self.rules, self.config = llm, prompts, rules, config

    async def simulate(self, persona: PersonaCard, sample: SeedSample, topics: TopicSet, index: int = 0) -> Dialogue:
        # The mode joins the id only when it is not the original multi-agent one, and the switch
        # language only for a dialogue that has one, so ids (and with them seeds and cached calls)
        # of the other dialogues stay what they were.
        multi_agent = self.config.mode == SimulationMode.multi_agent
        config = self.config.model_dump(exclude={"language_switch_share", *(["mode"] if multi_agent else [])})
        key: dict = {
            "persona": persona.model_dump(),
            "sample": sample.id,
            "topics": topics.id,
            "index": index,
            "config": config,
            "prompts": self.prompts.version,
        }
        switch = None
        if multi_agent and stable_seed("switch", content_id("dlg", key)) / 2**32 < self.config.language_switch_share:
            switch = key["switch_language"] = "zh" if persona.language == "en" else "en"
        dialogue_id = content_id("dlg", key)
        user = user_card(sample, persona)
        if self.config.mode == SimulationMode.single_call:
            turns, stop_reason = await self._write_whole(dialogue_id, persona, user, sample, topics)
        else:
            turns, stop_reason = await self._run_agents(dialogue_id, persona, user, sample, topics, switch)
        return Dialogue(
            id=dialogue_id,
            persona_id=persona.id,
            sample_id=sample.id,
            topic_id=topics.id,
            language=persona.language,
            mode=self.config.mode.value,
            system_prompt=system_prompt(persona, self.prompts),
            scene=sample.scene,
            user=user,
            turns=turns,
            stop_reason=stop_reason,
            switch_language=switch,
        )

    async def _run_agents(
        self,
        dialogue_id: str,
        persona: PersonaCard,
        user: UserCard,
        sample: SeedSample,
        topics: TopicSet,
        switch: str | None = None,
    ) -> tuple[list[Turn], str]:
        character_system = (
            system_prompt(persona, self.prompts, with_opening_line=False)
            + "\n\n"
            + self.prompts.render(
                "character_scene",
                scene=sample.scene,
                switch_to=switch and LANGUAGES[switch],
                language_name=LANGUAGES[persona.language],
            )
        )
        # Topics fit the card: a sample's keywords were written for its own occupation and language,
        # so they are handed on (those in the persona's language) only to the card synthesized from
        # that sample; every other topic is the scene agent's, which sees the card.
        ideas = in_language(topics.keywords, persona.language) if sample.id in persona.parent_ids else []
        first = ideas[0] if ideas else None
        turns = [Turn(role="character", content=persona.opening_line)]
        replies = 0
        try:
            while len(turns) + 2 <= self.config.max_turns:
                turns.append(await self._user_turn(dialogue_id, persona, user, sample, turns, switch))
                topic = None
                if replies % self.config.topic_every == 0:
                    topic = (
                        first
                        if replies == 0 and first
                        else await self._scene_topic(dialogue_id, persona, sample, ideas, turns)
                    )
                turns.append(await self._character_turn(dialogue_id, character_system, persona, turns, topic))
                replies += 1
                if len(turns) + 2 > self.config.max_turns:
                    break  # no room for another exchange: asking the moderator would decide nothing
                if await self._should_stop(dialogue_id, turns):
                    return turns, "moderator"
        except LLMCallFailed:
            # The exchanges so far are whole and stay (cleaning decides whether they are enough);
            # a user turn left without its reply goes. The other dialogues of the batch go on.
            return turns[: len(turns) - (len(turns) % 2 == 0)], "llm_error"
        return turns, "max_turns"

    async def _write_whole(
        self, dialogue_id: str, persona: PersonaCard, user: UserCard, sample: SeedSample, topics: TopicSet
    ) -> tuple[list[Turn], str]:
        lo, hi = self.config.min_turns, self.config.max_turns
        length = lo + stable_seed(dialogue_id, "length") % (hi - lo + 1)  # a stable length in [min, max]
        to_write = (length - 1) // 2 * 2  # after the opening line, ending on a character turn
        prompt = self.prompts.render(
            "dialogue_writer",
            card=persona,
            system=system_prompt(persona, self.prompts),
            user=user,
            scene=sample.scene,
            topics=topics.keywords,
            turns=to_write,
            language_name=LANGUAGES[persona.language],
        )
        turns = [Turn(role="character", content=persona.opening_line)]
        try:
            written = await self.llm.structured(
                "dialogue_writer",
                [{"role": "user", "content": prompt}],
                WrittenDialogue,
                seed=stable_seed(dialogue_id, "single_call"),
            )
        except StructuredOutputError:
            return turns, "invalid_output"  # recorded, and cleaning drops a dialogue this short
        except LLMCallFailed:
            return turns, "llm_error"
        kept = written.turns[:to_write]
        kept = kept[: len(kept) // 2 * 2]  # never end on a user turn
        for turn in kept:
            if turn.role == "user":
                text = turn.content.strip()
                violations = self._check_user(text, persona.language, turns)
                turns.append(Turn(role="user", content=text, violations=violations))
                continue
            text = turn.content.strip()
            turns.append(Turn(role="character", content=text, violations=self._check_reply(text, persona, turns)))
        return turns, "single_call"

    def _check_reply(self, text: str, persona: PersonaCard, turns: list[Turn]) -> list[Violation]:
        """The reply rules, with what came before: the user's message, the card's opening line
        and the character's earlier replies (echoes of any of them are flagged)."""
        return check_character_reply(
            text,
            persona.language,
            self.rules,
            last_user=turns[-1].content,
            opening_line=persona.opening_line,
            previous_replies=[t.content for t in turns[1:] if t.role == "character"],
            character_name=persona.name,
        )

    def _check_user(self, text: str, language: str, turns: list[Turn]) -> list[Violation]:
        """The user-turn rules, with the character message it answers and the user's earlier turns;
        `language` is the one this turn must be in (another than the persona's on a switch turn)."""
        return check_user_turn(
            text,
            language,
            self.rules,
            last_character=turns[-1].content,
            previous_user_turns=[t.content for t in turns if t.role == "user"],
        )

    async def _user_turn(
        self,
        dialogue_id: str,
        persona: PersonaCard,
        user: UserCard,
        sample: SeedSample,
        turns: list[Turn],
        switch: str | None = None,
    ) -> Turn:
        # Small models copy the other side when given a role-swapped chat; a transcript in one
        # message keeps the user agent in its own voice. A turn that breaks the user-turn rules
        # (echo, assistant-speak, degenerate, markup, wrong language) or that stopped on the token
        # limit is sampled again. `switch`: the dialogue's switch language, which the user's turns
        # numbered in SWITCH_TURNS are in, asking the character to follow (the first) or insisting.
        number = sum(t.role == "user" for t in turns) + 1
        switch_to = switch if number in SWITCH_TURNS else None
        language = switch_to or persona.language
        text, violations, cut = "", [], False
        for attempt in range(self.config.max_attempts):
            prompt = self.prompts.render(
                "user_agent",
                card=persona,
                user=user,
                scene=sample.scene,
                transcript=turns[-8:],
                language_name=LANGUAGES[persona.language],
                switch_to=switch_to and LANGUAGES[switch_to],
                insist=number > SWITCH_TURNS[0],
                codes=[v.code for v in violations],
            )
            completion = await self.llm.complete(
                "user_agent", [{"role": "user", "content": prompt}], seed=stable_seed(dialogue_id, len(turns), attempt)
            )
            text = _one_line(completion.text)
            violations = self._check_user(text, language, turns)
            # the limit cut the line kept only when nothing follows it (a first line, then a cut second one, is whole)
            cut = completion.cut and "\n" not in completion.text.strip()
            if cut:
                violations.append(USER_CUT)
            if not violations:
                break
        return Turn(role="user", content=text, violations=violations, cut=cut)

    async def _character_turn(
        self, dialogue_id: str, system: str, persona: PersonaCard, turns: list[Turn], topic: str | None
    ) -> Turn:
        history = [{"role": "assistant" if t.role == "character" else "user", "content": t.content} for t in turns]
        rejected: list[Attempt] = []
        for attempt in range(self.config.max_attempts):
            # What this reply should do (generation only, never stored) closes the system prompt:
            # the scene agent's topic and what broke in the last try.
            hint = self.prompts.render(
                "character_turn",
                card=persona,
                topic=topic,
                codes=[v.code for v in rejected[-1].violations] if rejected else [],
                language_name=LANGUAGES[persona.language],
                spaced=persona.language not in SPACELESS,  # 50 characters are ~8 words: the number a model can follow
            )
            messages = [{"role": "system", "content": f"{system}\n\n{hint}"}, *history]
            completion = await self.llm.complete(
                "character", messages, seed=stable_seed(dialogue_id, len(turns), attempt), language=persona.language
            )
            text = completion.text.strip()
            violations = self._check_reply(text, persona, turns)
            if completion.cut and all(v.code != CUT.code for v in violations):
                violations.insert(0, CUT)  # the token limit fell somewhere in it: regenerate
            if not violations:
                return Turn(role="character", content=text, topic=topic, rejected=rejected)
            rejected.append(Attempt(content=text, violations=violations))
        last = rejected.pop()
        return Turn(
            role="character",
            content=last.content,
            topic=topic,
            violations=last.violations,
            rejected=rejected,
            cut=CUT in last.violations,
        )

    async def _scene_topic(
        self, dialogue_id: str, persona: PersonaCard, sample: SeedSample, ideas: list[str], turns: list[Turn]
    ) -> str | None:
        """A topic for the character to bring up or dig into, fitting its card, in its language;
        an answer in another language, or none, falls back to a keyword idea (or to no topic)."""
        prompt = self.prompts.render(
            "scene_agent",
            card=persona,
            scene=sample.scene,
            keywords=ideas,
            transcript=turns[-6:],
            language_name=LANGUAGES[persona.language],
        )
        try:
            completion = await self.llm.complete(
                "scene_agent", [{"role": "user", "content": prompt}], seed=stable_seed(dialogue_id, len(turns), "topic")
            )
        except LLMCallFailed:
            completion = None  # a topic is a hint, not a turn: the dialogue goes on with a keyword idea
        topic = _one_line(completion.text, limit=80) if completion else ""
        if topic and in_language([topic], persona.language):
            return topic
        used = {t.topic for t in turns}
        return next((k for k in ideas if k not in used), None)

    async def _should_stop(self, dialogue_id: str, turns: list[Turn]) -> bool:
        n = len(turns)
        if n < self.config.min_turns or (n - self.config.min_turns) % self.config.moderator_every > 1:
            return False
        prompt = self.prompts.render(
            "moderator",
            transcript=turns[-10:],
            turns=n,
            min_turns=self.config.min_turns,
            max_turns=self.config.max_turns,
        )
        try:
            decision = await self.llm.structured(
                "moderator",
                [{"role": "user", "content": prompt}],
                StopDecision,
                seed=stable_seed(dialogue_id, n, "moderator"),
            )
        except StructuredOutputError:
            return False  # no usable verdict: go on to max_turns rather than lose the dialogue
        return decision.stop


async def simulate_many(
    simulator: DialogueSimulator, jobs: list[tuple[PersonaCard, SeedSample, TopicSet, int]]
) -> list[Dialogue]:
    return list(await asyncio.gather(*(simulator.simulate(*job) for job in jobs)))


def assign_samples(card: PersonaCard, samples: list[SeedSample], n: int) -> list[SeedSample]:
    """Which user/scene/topic samples a persona talks through: its own sample for a synthesized
    card, otherwise a stable per-persona pick that prefers samples in the persona's language."""
    own = [s for s in samples if s.id in card.parent_ids]
    if own:
        return (own * n)[:n]
    same_language = [s for s in samples if s.language == card.language] or samples
    start = int(content_id("pick", card.id).split("-")[1], 16) % len(same_language)
    return [same_language[(start + i) % len(same_language)] for i in range(n)]
