"""The simulator against an in-process `ChatModel`: no server, no litellm, no Dagster.

Core depends only on the `core.chat.ChatModel` protocol, so a plain object with the two
methods is a complete model for it.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from rp_pipeline.core.chat import Completion, Messages, Role, StructuredOutputError
from rp_pipeline.core.models import TopicSet
from rp_pipeline.core.personas import load_persona_file
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.core.seeds import load_seed_variables, sample_seeds
from rp_pipeline.core.simulate import DialogueSimulator, SimulationConfig
from rp_pipeline.settings import REPO_ROOT

ASSETS = REPO_ROOT / "assets"
USER_LINES = ["我刚下班，路上全是水。", "今天老板又让我加班了。", "你们店里最近有什么新品吗？"]
GOOD = [
    "今天店里好忙<emotion>happy</emotion>你呢？<emotion>neutral</emotion>",
    "雨好大啊<emotion>sad</emotion>你带伞了吗？<emotion>neutral</emotion>",
    "新到的豆子有点酸<emotion>surprised</emotion>想尝尝吗？<emotion>happy</emotion>",
]


class ScriptedChat:
    """Answers by role: the character breaks the rules on its first try each turn (a turn is
    its history after the system prompt, which carries what broke), then replies in
    character; the user agent chats; the moderator never answers in JSON."""

    def __init__(self) -> None:
        self.requests: list[tuple[Role, Messages]] = []

    async def complete(
        self, role: Role, messages: Messages, *, seed: int, response_schema: dict | None = None, language=None
    ) -> Completion:
        self.requests.append((role, messages))
        if role == "character":
            tries = sum(1 for r, m in self.requests if r == "character" and m[1:] == messages[1:])
            return Completion(
                "作为一个AI助手，我很乐意帮助您。" if tries == 1 else GOOD[len(messages) // 2 % len(GOOD)], "stop"
            )
        if role == "scene_agent":
            return Completion("周末的夜市", "stop")
        return Completion(USER_LINES[len(messages) % len(USER_LINES)], "stop")

    async def structured(self, role: Role, messages: Messages, schema: type[BaseModel], *, seed: int):
        self.requests.append((role, messages))
        raise StructuredOutputError("no JSON from this model")


def test_simulator_runs_on_an_in_process_chat_model():
    chat = ScriptedChat()
    card = load_persona_file(ASSETS / "personas" / "lin-xiaoman.yaml")
    sample = sample_seeds(load_seed_variables(ASSETS / "seeds"), 1, seed=0)[0]
    topics = TopicSet(id="topic-x", sample_id=sample.id, keywords=["咖啡", "猫"])
    config = SimulationConfig(min_turns=5, max_turns=7, topic_every=2, moderator_every=2, max_attempts=2)
    simulator = DialogueSimulator(chat, Prompts(ASSETS / "prompts"), RuleSet.load(ASSETS / "rules"), config)

    dialogue = asyncio.run(simulator.simulate(card, sample, topics))

    assert [t.role for t in dialogue.turns] == [
        "character",
        "user",
        "character",
        "user",
        "character",
        "user",
        "character",
    ]
    assert dialogue.stop_reason == "max_turns"  # an unparseable moderator lets the dialogue run on
    replies = dialogue.turns[2::2]
    assert all(not t.violations and t.content in GOOD for t in replies)
    # each reply's first, assistant-speaking try was regenerated and kept for DPO
    assert all(
        len(t.rejected) == 1 and "assistant_speak" in {v.code for v in t.rejected[0].violations} for t in replies
    )
    # the character is never shown the user card
    character_prompts = [m[0]["content"] for r, m in chat.requests if r == "character"]
    assert character_prompts and all(dialogue.user.occupation not in p for p in character_prompts)
