"""Fixtures for the training-script tests: a tiny model and one shared SFT -> DPO ->
quantize chain, each stage run once per session as a user would run it (a subprocess)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import rp_pipeline

REPO_ROOT = Path(rp_pipeline.__file__).resolve().parent.parent


class ScriptRun:
    """``python -m rp_pipeline.training.<name> --config cfg.json`` started from an unrelated
    cwd, output captured to files (so two runs can go at once without pipe deadlocks).
    A str config is written verbatim, to test unreadable files."""

    def __init__(
        self, name: str, config: dict | str, workdir: Path, timeout: float = 300, python: str = sys.executable
    ):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir, self.timeout = workdir, timeout
        cfg = workdir / f"{name}.json"
        cfg.write_text(config if isinstance(config, str) else json.dumps(config, ensure_ascii=False), encoding="utf-8")
        self._out, self._err = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
        with open(self._out, "w") as out, open(self._err, "w") as err:
            self._popen = subprocess.Popen(
                [python, "-m", f"rp_pipeline.training.{name}", "--config", str(cfg)],
                cwd=workdir,
                env=offline_env(),
                stdout=out,
                stderr=err,
                text=True,
            )
        self.proc: subprocess.CompletedProcess | None = None

    def wait(self) -> ScriptRun:
        if self.proc is None:
            try:
                code = self._popen.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                raise
            self.proc = subprocess.CompletedProcess(
                self._popen.args, code, self._out.read_text(encoding="utf-8"), self._err.read_text(encoding="utf-8")
            )
        return self

    @property
    def ok(self) -> bool:
        return self.wait().proc.returncode == 0


def kill_after_first_checkpoint(name: str, config: dict, workdir: Path, timeout: float = 240) -> Path:
    """Start the script, SIGKILL it once its first complete checkpoint exists (beside
    `config["output_dir"]`), and return the last complete checkpoint it left."""
    from rp_pipeline.training.common import checkpoints_dir, last_checkpoint

    run = ScriptRun(name, config, workdir)
    checkpoints = checkpoints_dir(config["output_dir"])
    deadline = time.monotonic() + timeout
    while last_checkpoint(checkpoints) is None:
        assert run._popen.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline, f"no checkpoint in {timeout} s"
        time.sleep(0.05)
    run._popen.send_signal(signal.SIGKILL)
    run._popen.wait()
    left = last_checkpoint(checkpoints)
    assert left is not None
    return left


def offline_env() -> dict[str, str]:
    """No hub access, and no Dagster Pipes context inherited from an outer run. One torch
    thread: the tiny model gains nothing from more, and two runs share the cores. The scripts
    import the same rp_pipeline as the tests (not whatever checkout is installed), also under
    an interpreter that does not have it installed (the gptq environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def run_training_script(
    name: str, config: dict | str, workdir: Path, timeout: float = 300, python: str = sys.executable
) -> ScriptRun:
    return ScriptRun(name, config, workdir, timeout, python).wait()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def chat_rows(n: int) -> list[dict]:
    langs = [
        ("你好，今天过得怎么样？", "还不错！<emotion>happy</emotion>"),
        ("Hi! What are you doing?", "Making coffee for you.<emotion>happy</emotion>"),
        ("¿Dónde estás?", "En la librería.<emotion>neutral</emotion>"),
        ("元気ですか？", "はい、元気です。<emotion>happy</emotion>"),
    ]
    return [
        {
            "messages": [
                {"role": "system", "content": "You are Mia, a cheerful barista."},
                {"role": "user", "content": langs[i % 4][0]},
                {"role": "assistant", "content": langs[i % 4][1]},
            ]
        }
        for i in range(n)
    ]


def corpus_rows(n: int) -> list[dict]:
    """Distinct rows shaped like the corpus's messages.jsonl (an id and a conversation)."""
    rows = chat_rows(n)
    for i, row in enumerate(rows):
        row["id"] = f"row-{i:03d}"
        row["messages"][1]["content"] += f" #{i}"
    return rows


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "messages.jsonl", corpus_rows(24))


def pair_rows(n: int) -> list[dict]:
    return [
        {
            "prompt": [{"role": "system", "content": "You are Mia."}, {"role": "user", "content": f"你好 {i}"}],
            "chosen": [{"role": "assistant", "content": "你好呀！<emotion>happy</emotion>"}],
            "rejected": [{"role": "assistant", "content": "As an AI language model I cannot."}],
        }
        for i in range(n)
    ]


@pytest.fixture(scope="session")
def sft_run(tiny_model_dir, tmp_path_factory) -> ScriptRun:
    work = tmp_path_factory.mktemp("sft")
    cfg = {
        "base_model_dir": str(tiny_model_dir),
        "train_file": str(write_jsonl(work / "train.jsonl", chat_rows(8))),
        "output_dir": str(work / "adapter"),
        "max_steps": 5,
        "max_length": 128,
        "assistant_only_loss": True,  # the demanding path: needs the template's generation markers
    }
    return run_training_script("sft", cfg, work)


@pytest.fixture(scope="session")
def dpo_run(tiny_model_dir, sft_run, tmp_path_factory) -> ScriptRun:
    assert sft_run.ok, sft_run.proc.stderr[-3000:]
    work = tmp_path_factory.mktemp("dpo")
    cfg = {
        "base_model_dir": str(tiny_model_dir),
        "sft_adapters": [str(sft_run.workdir / "adapter")],
        "pairs_file": str(write_jsonl(work / "pairs.jsonl", pair_rows(4))),
        "output_dir": str(work / "adapter"),
        "max_steps": 3,
        "max_length": 128,
    }
    return run_training_script("dpo", cfg, work)


def request_rows() -> list[dict]:
    return [
        {"id": "a", "messages": [{"role": "user", "content": "你好！"}]},
        {"id": "b", "messages": [{"role": "system", "content": "You are Mia."}, {"role": "user", "content": "Hi"}]},
        {"id": "c", "messages": [{"role": "user", "content": "¿Qué tal?"}]},
    ]


@pytest.fixture(scope="session")
def int8_chain(tiny_model_dir, sft_run, dpo_run, corpus_file, tmp_path_factory):
    """Start quantize -> generate(quantized) in a background thread as soon as DPO is done,
    so it overlaps the Dagster Pipes test (dense generation) on the second core."""
    assert dpo_run.ok, dpo_run.proc.stderr[-3000:]
    qwork, gwork = tmp_path_factory.mktemp("quantize"), tmp_path_factory.mktemp("generate_int8")
    quant_cfg = {
        "base_model_dir": str(tiny_model_dir),
        "adapters": [str(sft_run.workdir / "adapter"), str(dpo_run.workdir / "adapter")],
        "output_dir": str(qwork / "int8"),
        "corpus_file": str(corpus_file),
        "heldout_rows": 6,
        "calibration_rows": 12,
        "max_length": 128,
    }
    gen_cfg = {
        "model_dir": str(qwork / "int8"),
        "kind": "quantized",
        "requests_file": str(write_jsonl(gwork / "req.jsonl", request_rows())),
        "output_file": str(gwork / "gen.jsonl"),
        "max_new_tokens": 8,
        "temperature": 0,  # greedy path
    }

    def chain() -> dict[str, ScriptRun]:
        quant = run_training_script("quantize", quant_cfg, qwork)
        gen = run_training_script("generate", gen_cfg, gwork) if quant.ok else None
        return {"quantize": quant, "generate": gen}

    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(chain)


@pytest.fixture(scope="session")
def quantize_run(int8_chain) -> ScriptRun:
    return int8_chain.result()["quantize"]


@pytest.fixture(scope="session")
def quantized_generate_run(int8_chain) -> ScriptRun:
    assert int8_chain.result()["generate"] is not None, "quantize failed"
    return int8_chain.result()["generate"]
