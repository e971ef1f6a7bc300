"""A fake OpenAI-compatible server on 127.0.0.1 that litellm talks to like any provider.

Roles are routed to models named `fake-<role>`; each role has a scripted behaviour that
follows the prompt (language, persona examples), and tests can queue exact responses
(malformed ones included, `Cut` ones that stop on the token limit, `NextTokens` ones that are
a first token's probabilities) or HTTP errors per role. Requests are served concurrently, each
after `latency_s`; `peak_in_flight` says how many were ever open at once.

`fault_rate` injects provider faults into that share of requests (see `FAULTS`): which request
gets which fault is a hash of the request and how often it was seen, so a retry draws again and
a run is reproducible whatever the order of concurrent requests. `answered` and
`billed_tokens` count what a provider would bill: the 200 answers it sent.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from rp_pipeline.core.chat import ROLES

LANGUAGE_LINES = {
    "Chinese": ["你今天过得怎么样", "那你最近在忙什么呀", "我有点累但是很开心", "给我讲讲你的事吧"],
    "English": ["how was your day", "what have you been up to", "I am tired but happy", "tell me about you"],
    "Spanish": ["qué tal tu día", "qué has hecho hoy", "estoy cansado pero feliz", "cuéntame algo de ti"],
    "Japanese": ["今日はどうだった", "最近なにしてるの", "疲れたけど楽しいよ", "あなたの話を聞かせて"],
}
DRAFTS = {
    "Chinese": {
        "name": "苏晴",
        "gender": "女",
        "age": 24,
        "background": "在老城区长大，喜欢拍照和逛菜市场。",
        "speaking_examples": [
            "今天的晚霞好漂亮<emotion>happy</emotion>你看到了吗？<emotion>surprised</emotion>",
            "菜市场的阿姨又多给我一把葱<emotion>happy</emotion>",
        ],
        "knowledge_boundary": "不懂编程和金融。",
        "opening_line": "你来啦<emotion>happy</emotion>今天想聊什么？<emotion>neutral</emotion>",
        "specialty": "街头摄影",
    },
    "English": {
        "name": "Mara Quinn",
        "gender": "female",
        "age": 29,
        "background": "Grew up by the sea and now restores old bikes.",
        "speaking_examples": [
            "Guess what I fixed today<emotion>happy</emotion>",
            "That chain nearly beat me<emotion>angry</emotion>but I won<emotion>happy</emotion>",
        ],
        "knowledge_boundary": "Knows nothing about medicine or law.",
        "opening_line": "Hey, you made it<emotion>happy</emotion>How was your day?<emotion>neutral</emotion>",
        "specialty": "bike repair",
    },
}
TOPICS = {
    "Chinese": ["咖啡", "猫咪", "下雨天", "老电影", "咖啡"],
    "English": ["coffee", "cats", "rain", "films", "coffee"],
    "Spanish": ["el café", "los gatos", "la lluvia", "el cine", "el café"],
    "Japanese": ["コーヒー", "ねこ", "雨の日", "映画", "コーヒー"],
}
SCENE_TOPICS = {
    "Chinese": "下雨天看的老电影",
    "English": "a rainy-day film",
    "Spanish": "una película para un día de lluvia",
    "Japanese": "雨の日に見る映画",
}
BAD_REPLY = "作为一个AI，我很高兴为您服务"  # assistant-speak without emotion tags
# What providers do wrong. HTTP faults: 429 with Retry-After, 500, and a timeout (no answer
# within the client's timeout). Content faults come as 200 answers, billed like any other:
# the scripted answer cut in half on the token limit (truncated JSON for structured roles),
# garbage text, and valid JSON of the wrong schema.
FAULTS = ("rate_limit", "server_error", "timeout", "truncated_json", "garbage", "wrong_schema")
GARBAGE = ("\ufffd\ufffd asdfghjkl ;;;; zxcvbnm \ufffd", "Lorem ipsum <|im_end|> ####", "null null null null")
WRONG_SCHEMA = '{"status": "ok", "data": [1, 2, 3]}'


@dataclass(frozen=True)
class Cut:
    """A queued response that stopped on the token limit (finish_reason "length")."""

    content: str


@dataclass(frozen=True)
class NextTokens:
    """A response that is only the first token's alternatives (`logprobs`), as the `cleaner`
    role asks for: [(token, probability)], likeliest first; a bytes token is part of a character."""

    tokens: tuple[tuple[str | bytes, float], ...]


@dataclass(frozen=True)
class Fault:
    """A queued provider fault (one of `FAULTS`) for the next request of a role."""

    kind: str


CLAUSE_ENDS = NextTokens((("。", 0.55), ("<", 0.3), ("了", 0.1)))
CLAUSE_GOES_ON = NextTokens((("花", 0.7), ("圆", 0.2), ("，", 0.001)))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # up to 32 clients connect at once; the default listen backlog is 5


class FakeLLM:
    def __init__(
        self,
        latency_s: float = 0.0,
        violation_every: int = 3,
        *,
        fault_rate: float = 0.0,
        faults: tuple[str, ...] = FAULTS,
        fault_seed: int = 0,
        timeout_fault_s: float = 2.0,
    ):
        self.latency_s = latency_s
        self.fault_rate, self.faults, self.fault_seed = fault_rate, faults, fault_seed
        self.timeout_fault_s = timeout_fault_s  # a `timeout` fault holds the request this long (> client timeout)
        self.faults_injected: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()  # 200 answers per role: what a provider bills
        self.billed_tokens = Counter[str]()  # prompt / completion tokens of those answers
        self._seen: Counter[str] = Counter()
        self.role_latency_s: dict[str, float] = {}  # per-role override, e.g. to make one role time out
        self.violation_every = violation_every
        # How the judge picks between two replies (A, B) -> "A" | "B" | "tie"; default: the
        # reply with fewer assistant/format markers (see _markers).
        self.judge_pick: Callable[[str, str], str] | None = None
        # Endings the `cleaner` reads as unfinished (the reply prefill ends with one of them).
        self.unfinished_endings: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.queued: dict[str, deque] = defaultdict(deque)
        self.requests: list[dict] = []
        self.authorizations: Counter[str] = Counter()  # the Authorization headers the provider saw
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def queue(self, role: str, *responses: str | int | Cut | NextTokens | Fault) -> None:
        """Next responses for `role`: a string is the content, a `Cut` content cut by the token
        limit, an int an HTTP error status, a `Fault` one of `FAULTS`."""
        self.queued[role].extend(responses)

    def write_config(self, path: Path, **overrides) -> Path:
        config = {
            "max_concurrency": 8,
            "num_retries": 2,
            "timeout_s": 30,
            "max_repairs": 2,
            "roles": {
                role: {
                    "model": f"openai/fake-{role}",
                    "api_base": self.api_base,
                    "structured_output": "json_object_schema",
                }
                for role in ROLES
            },
        }
        config.update(overrides)
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        return path

    def fault_for(self, role: str, body: dict) -> str | None:
        """The fault this request gets, if any: a queued `Fault`, else a hash of the request and of
        how often it was seen, under `fault_rate`."""
        with self._lock:
            if self.queued[role] and isinstance(self.queued[role][0], Fault):
                fault = self.queued[role].popleft().kind
                self.faults_injected[fault] += 1
                return fault
        if not self.fault_rate:
            return None
        key = json.dumps(body, sort_keys=True, ensure_ascii=False)
        with self._lock:
            seen = self._seen[key]
            self._seen[key] += 1
        digest = hashlib.sha256(f"{self.fault_seed}:{seen}:{key}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        if draw >= self.fault_rate:
            return None
        fault = self.faults[int(draw / self.fault_rate * len(self.faults))]
        with self._lock:
            self.faults_injected[fault] += 1
        return fault

    def _faulty(self, fault: str, role: str, body: dict) -> str | int | Cut | NextTokens:
        """A content fault's answer (HTTP faults are sent by the handler)."""
        if fault == "garbage":
            return GARBAGE[len(json.dumps(body)) % len(GARBAGE)]
        if fault == "wrong_schema":
            return WRONG_SCHEMA
        answer = self.respond(role, body)  # truncated_json: the real answer, cut on the token limit
        text = answer.content if isinstance(answer, Cut) else answer
        return Cut(text[: len(text) // 2]) if isinstance(text, str) else text

    # -- scripted behaviour -------------------------------------------------------------

    def respond(self, role: str, body: dict) -> str | int | Cut | NextTokens:
        with self._lock:
            if self.queued[role]:
                return self.queued[role].popleft()
        text = "\n".join(m["content"] for m in body["messages"])
        turn = len(body["messages"])
        seed = int(body.get("seed") or 0)
        if role == "character":
            retry = "last try broke" in text
            if self.violation_every and seed % self.violation_every == 0 and not retry:
                return BAD_REPLY
            return _character_line(text, turn)
        if role == "cleaner":  # continues the final assistant message by one token
            prefix = body["messages"][-1]["content"]
            return CLAUSE_GOES_ON if any(prefix.endswith(e) for e in self.unfinished_endings) else CLAUSE_ENDS
        if role == "dialogue_writer":  # the whole dialogue; its second character message breaks the rules
            count = int(re.search(r"Write the next (\d+) messages", text).group(1))
            lines = LANGUAGE_LINES.get(_write_in(text), LANGUAGE_LINES["English"])
            turns = [
                {"role": "user", "content": f"{lines[i // 2 % len(lines)]} {i}"}
                if i % 2 == 0
                else {"role": "character", "content": BAD_REPLY if i == 3 else _character_line(text, i)}
                for i in range(count)
            ]
            return json.dumps({"turns": turns}, ensure_ascii=False)
        if role == "user_agent":  # a different line per transcript length, in the asked language
            lines = LANGUAGE_LINES.get(_write_in(text), LANGUAGE_LINES["English"])
            said = text.count("\nYou: ")
            return f"{lines[said % len(lines)]} {said}"
        if role == "scene_agent":
            return SCENE_TOPICS.get(_write_in(text), SCENE_TOPICS["English"])
        if role == "moderator":
            return json.dumps({"stop": False, "reason": "still going"})
        if role == "topic_writer":
            return json.dumps({"keywords": TOPICS.get(_write_in(text), TOPICS["English"])}, ensure_ascii=False)
        if role == "persona_writer":
            return json.dumps(DRAFTS.get(_write_in(text), DRAFTS["English"]), ensure_ascii=False)
        if role == "judge" and "\nReply A: " in text:  # pairwise: which of two replies is better
            a = text.split("\nReply A: ", 1)[1].split("\nReply B: ", 1)[0]
            b = text.split("\nReply B: ", 1)[1].split("\n\nAnswer with JSON", 1)[0]
            if self.judge_pick:
                better = self.judge_pick(a, b)
            else:
                better = "A" if _markers(a) < _markers(b) else "B" if _markers(b) < _markers(a) else "tie"
            return json.dumps({"reason": "scripted", "better": better})
        if role == "judge":  # rubric: a transcript whose last reply brushes the user off rates low
            last = [ln for ln in text.splitlines() if ln.startswith("character:")][-1:]
            dull = bool(last) and any(w in last[0] for w in ("whatever", "随便"))
            scores = (2, 2, 3, 2) if dull else (6, 7, 8, 5)
            dims = ("human_likeness", "purposefulness", "consistency", "attractiveness")
            return json.dumps({d: {"reason": "scripted", "score": n} for d, n in zip(dims, scores, strict=True)})
        return 500

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": f"fake-{r}", "object": "model"} for r in ROLES]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                role = body["model"].removeprefix("fake-")
                with fake._lock:
                    fake.calls[role] += 1
                    fake.requests.append(body)
                    fake.authorizations[self.headers.get("Authorization", "")] += 1
                    fake.in_flight += 1
                    fake.peak_in_flight = max(fake.peak_in_flight, fake.in_flight)
                fault = fake.fault_for(role, body)
                try:
                    if latency := fake.role_latency_s.get(role, fake.latency_s):
                        time.sleep(latency)
                    if fault == "timeout":
                        time.sleep(fake.timeout_fault_s)
                        return  # no answer: the client gave up waiting
                    if fault == "rate_limit":
                        message = {"message": "injected rate limit", "type": "rate_limit_error"}
                        self._send(429, {"error": message}, {"Retry-After": "1"})
                        return
                    if fault == "server_error":
                        self._send(500, {"error": {"message": "injected server error", "type": "server_error"}})
                        return
                    result = fake._faulty(fault, role, body) if fault else fake.respond(role, body)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1
                if isinstance(result, int):
                    self._send(result, {"error": {"message": f"scripted {result}", "type": "server_error"}})
                    return
                finish_reason = "length" if isinstance(result, (Cut, NextTokens)) else "stop"
                logprobs = None
                if isinstance(result, NextTokens):
                    alternatives = [  # a bytes token is part of a character: llama.cpp sends "" and its bytes
                        {"token": "", "logprob": math.log(p), "bytes": list(t)}
                        if isinstance(t, bytes)
                        else {"token": t, "logprob": math.log(p), "bytes": list(t.encode())}
                        for t, p in result.tokens
                    ]
                    first = {**alternatives[0], "top_logprobs": alternatives[: body.get("top_logprobs") or 0]}
                    logprobs, result = {"content": [first]}, first["token"]
                result = result.content if isinstance(result, Cut) else result
                usage = {
                    "prompt_tokens": len(json.dumps(body["messages"])) // 4,
                    "completion_tokens": max(1, len(result) // 4),
                }
                with fake._lock:
                    fake.answered[role] += 1
                    fake.billed_tokens.update(usage)
                self._send(
                    200,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": finish_reason,
                                "message": {"role": "assistant", "content": result},
                                "logprobs": logprobs,
                            }
                        ],
                        "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
                    },
                )

            def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout); nothing to answer

        return Handler


def _character_line(text: str, turn: int) -> str:
    """A reply in the card's voice: a clause of one of its speaking examples, numbered."""
    section = text.split("# How you talk (examples)", 1)[-1].split("#", 1)[0]
    examples = [ln[2:] for ln in section.splitlines() if ln.startswith("- ")]
    # Every clause of every example, in turn: a persona with two examples does not fall
    # into an A-B-A loop (cleaning cuts loops) within a short dialogue.
    clauses = [c for e in examples for c in re.findall(r"([^<>]+)<emotion>", e)] or examples
    clause = clauses[(turn // 2) % len(clauses)].strip()
    return f"{clause} {turn}<emotion>happy</emotion>"


MARKERS = ("AI", "assistant", "```", "**", "\n1.", "我可以帮你", "请告诉我", "It depends", "*", "再见", "Bye")


def _markers(reply: str) -> int:
    """A crude judge: assistant and format markers, and a missing emotion tag, count against a reply."""
    return sum(reply.count(m) for m in MARKERS) + ("<emotion>" not in reply)


def _write_in(text: str) -> str:
    # "Write every text field in X", "is written in X", "Write your next message to NAME in X",
    # a switching user's "Your next message to NAME is in X", the scene agent's "in X, as one short phrase"
    match = re.search(
        r"(?:Write|written|text field|message to [^\n.:]*? is)[^\n.:]*? in ([A-Z]\w+)"
        r"|\bin ([A-Z]\w+), as one short phrase",
        text,
    )
    return next(g for g in match.groups() if g) if match else "English"


# --- The fake provider in a process of its own ---------------------------------------------
# For benchmarks/llm_throughput.py. A provider never runs in the client's process; served from
# it, the server's threads would take the GIL (and CPU) from the event loop being measured.
# The child is a fresh interpreter (not multiprocessing: that re-runs the caller's main script)
# that answers one JSON line per request on stdin.


def serve_stdio(latency_s: float, violation_every: int) -> None:
    """The child: serve a FakeLLM, print its api_base, write a config per request line
    ([path, overrides]), and on an empty line print the calls per role and stop."""
    fake = FakeLLM(latency_s=latency_s, violation_every=violation_every).start()
    print(json.dumps(fake.api_base), flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        path, overrides = json.loads(line)
        print(json.dumps(str(fake.write_config(Path(path), **overrides))), flush=True)
    print(json.dumps(dict(fake.calls)), flush=True)
    fake.stop()


class FakeLLMProcess:
    """A `FakeLLM` served by a child process, with the same `start`, `write_config` and `stop`;
    `calls` (per role) is known once it has stopped."""

    def __init__(self, latency_s: float = 0.0, violation_every: int = 3):
        self.latency_s, self.violation_every = latency_s, violation_every
        self.api_base = ""
        self.calls: Counter[str] = Counter()
        self._child: subprocess.Popen[str] | None = None

    def start(self) -> FakeLLMProcess:
        root = str(Path(__file__).resolve().parents[1])
        serve = f"serve_stdio({self.latency_s!r}, {self.violation_every!r})"
        code = f"from rp_pipeline_tests.fake_llm import serve_stdio; {serve}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self._child = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.api_base = self._ask(None)
        return self

    def write_config(self, path: Path, **overrides) -> Path:
        return Path(self._ask(json.dumps([str(path), overrides])))

    def stop(self) -> None:
        if self._child is None:
            return
        self.calls = Counter(self._ask(""))
        self._child.wait(timeout=10)
        self._child = None

    def _ask(self, line: str | None):
        """Send a request line (None: only read) and read the child's JSON answer."""
        assert self._child is not None and self._child.stdin is not None and self._child.stdout is not None
        if line is not None:
            self._child.stdin.write(line + "\n")
            self._child.stdin.flush()
        answer = self._child.stdout.readline()
        if not answer:
            raise RuntimeError(f"the fake provider's process ended (exit code {self._child.poll()})")
        return json.loads(answer)
