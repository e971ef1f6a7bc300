"""Provider faults, one at a time: each costs a retry (or a repair), never data, and the ledger
bills exactly the answers the provider sent. A provider that keeps failing opens the circuit."""

import time

import pytest
from pydantic import BaseModel

from rp_pipeline.core.chat import LLMCallFailed, ProviderUnavailable
from rp_pipeline.core.models import TopicSet
from rp_pipeline.core.personas import load_persona_file
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.core.seeds import load_seed_variables, sample_seeds
from rp_pipeline.core.simulate import DialogueSimulator, SimulationConfig, simulate_many
from rp_pipeline.llm.cache import ResponseCache
from rp_pipeline.llm.client import LLMClient
from rp_pipeline.llm.config import load_llm_config
from rp_pipeline.settings import REPO_ROOT
from rp_pipeline_tests.fake_llm import FAULTS, FakeLLM, Fault

pytestmark = pytest.mark.faults
ASSETS = REPO_ROOT / "assets"
MESSAGES = [{"role": "user", "content": "topics please"}]


class Keywords(BaseModel):
    keywords: list[str]


@pytest.fixture
def fake():
    server = FakeLLM(timeout_fault_s=4.0).start()
    yield server
    server.stop()


def make_client(fake: FakeLLM, tmp_path, **overrides) -> LLMClient:
    # 3 s: an answer on a busy machine is never a timeout; the injected timeout holds its request 4 s
    config = {"timeout_s": 3, "num_retries": 2, **overrides}
    return LLMClient(load_llm_config(fake.write_config(tmp_path / "m.yaml", **config)), ResponseCache(tmp_path / "c"))


def billed(client: LLMClient) -> tuple[int, int, int]:
    """(answers, prompt tokens, completion tokens) the ledger bills: its ok calls that were not cache hits."""
    paid = [c for c in client.calls if c.ok and not c.cache_hit]
    return len(paid), sum(c.prompt_tokens for c in paid), sum(c.completion_tokens for c in paid)


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_costs_a_retry_or_a_repair_and_the_ledger_bills_what_was_answered(fake, tmp_path, fault):
    fake.queue("topic_writer", Fault(fault))
    client = make_client(fake, tmp_path)
    result = client.run(client.structured("topic_writer", MESSAGES, Keywords, seed=1))
    assert result.keywords[0] == "coffee"
    assert fake.faults_injected == {fault: 1}
    assert fake.calls["topic_writer"] == 2  # the fault, then the answer
    # HTTP faults are retried inside one routed call; a content fault is a billed answer, then a repair
    assert billed(client) == (fake.answered["topic_writer"], fake.billed_tokens["prompt_tokens"],
                              fake.billed_tokens["completion_tokens"])  # fmt: skip
    assert billed(client)[0] == (1 if fault in ("rate_limit", "server_error", "timeout") else 2)
    assert all(c.ok for c in client.calls)


def test_a_call_that_fails_all_its_retries_is_a_failure_in_the_ledger_and_costs_nothing(fake, tmp_path):
    fake.queue("judge", Fault("server_error"), Fault("server_error"))
    client = make_client(fake, tmp_path, num_retries=1)
    with pytest.raises(LLMCallFailed, match=r"role 'judge': no answer from openai/fake-judge.*injected server error"):
        client.run(client.complete("judge", MESSAGES, seed=0))
    [call] = client.calls
    assert (call.ok, call.cost_usd, call.prompt_tokens, fake.answered["judge"]) == (False, 0.0, 0, 0)
    assert "InternalServerError" in (call.error or "")
    # nothing was cached: the next run asks again and gets its answer
    assert client.run(client.complete("judge", MESSAGES, seed=0)).text
    assert fake.calls["judge"] == 3


def test_a_provider_that_keeps_answering_429_opens_the_circuit_instead_of_spinning(tmp_path):
    fake = FakeLLM(fault_rate=1.0, faults=("rate_limit",)).start()
    try:
        client = make_client(fake, tmp_path, num_retries=1, breaker_failures=3)
        outcomes = []
        started = time.perf_counter()
        for seed in range(10):
            try:
                client.run(client.complete("character", MESSAGES, seed=seed))
            except LLMCallFailed:
                outcomes.append("failed")
            except ProviderUnavailable as exc:
                outcomes.append("circuit open")
                message = str(exc)
        elapsed = time.perf_counter() - started
    finally:
        fake.stop()
    assert outcomes == ["failed"] * 3 + ["circuit open"] * 7
    assert "openai/fake-character failed 3 calls in a row" in message
    assert "RateLimitError" in message and "quota" in message
    assert fake.calls["character"] == 3 * 2  # each failed call and its one retry; none after the circuit opened
    assert elapsed < 15  # three calls, each waiting out one Retry-After: 1
    assert [c.ok for c in client.calls] == [False] * 3


def test_an_answer_resets_the_breaker(fake, tmp_path):
    client = make_client(fake, tmp_path, num_retries=0, breaker_failures=2)
    for seed in range(4):  # fail, answer, fail, answer: never two failures in a row
        fake.queue("judge", Fault("server_error"))
        with pytest.raises(LLMCallFailed):
            client.run(client.complete("judge", MESSAGES, seed=seed))
        client.run(client.complete("judge", MESSAGES, seed=seed))
    assert [c.ok for c in client.calls] == [False, True] * 4


def test_a_dialogue_whose_call_fails_ends_with_llm_error_and_the_others_go_on(fake, tmp_path):
    fake.violation_every = 0
    client = make_client(fake, tmp_path, num_retries=0, max_concurrency=1)
    card = load_persona_file(ASSETS / "personas" / "lin-xiaoman.yaml")
    sample = sample_seeds(load_seed_variables(ASSETS / "seeds"), 1, seed=0)[0]
    topics = TopicSet(id="topics", sample_id=sample.id, keywords=["咖啡", "猫"])
    config = SimulationConfig(min_turns=5, max_turns=5, topic_every=2, moderator_every=2)
    simulator = DialogueSimulator(client, Prompts(ASSETS / "prompts"), RuleSet.load(ASSETS / "rules"), config)
    fake.queue("character", Fault("server_error"))  # the first character call of the batch gets no answer
    dialogues = client.run(simulate_many(simulator, [(card, sample, topics, i) for i in range(3)]))
    reasons = sorted(d.stop_reason for d in dialogues)
    assert reasons == ["llm_error", "max_turns", "max_turns"]
    failed = next(d for d in dialogues if d.stop_reason == "llm_error")
    # the user turn left without its reply is gone: the dialogue ends on the character
    assert [t.role for t in failed.turns] == ["character"]
    assert all(len(d.turns) == 5 for d in dialogues if d is not failed)
