"""A training run killed mid-way is resumed by materializing the asset again: the SFT
subprocess is SIGKILLed after its first checkpoint (the materialization fails), and the next
materialization of the same version picks up from that checkpoint and ends on the step count
of a run never interrupted."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import psutil
from dagster import AssetSpec, DagsterInstance, materialize

from rp_pipeline.core.corpus import CorpusConfig, build_corpus, corpus_version, export_corpus
from rp_pipeline.core.models import CleanedDialogue, Message
from rp_pipeline.defs.build import resources
from rp_pipeline.defs.training import sft_checkpoint
from rp_pipeline.training.common import last_checkpoint
from rp_pipeline_tests.conftest import make_settings

E = "<emotion>{}</emotion>".format
STEPS, EVERY = 60, 4


def _corpus(data):
    messages = [Message(role="system", content="你是林小满，一家咖啡店的店员。")]
    for i in range(6):
        messages += [
            Message(role="user", content=f"今天店里忙吗？{i}"),
            Message(role="assistant", content=f"还行吧，第{i}杯拿铁刚做好{E('happy')}"),
        ]
    dialogue = CleanedDialogue(id="c1", dialogue_id="d1", persona_id="lin", language="zh", messages=messages)
    rows = build_corpus([dialogue], [], CorpusConfig(general_share=0, cutoff_len=4096)).rows
    corpus = export_corpus(rows, data / "corpus" / "c", corpus_version(rows))
    (data / "assets").mkdir(parents=True, exist_ok=True)
    (data / "assets" / "training_corpus.json").write_text(corpus.model_dump_json(), encoding="utf-8")


def _materialize(settings):
    return materialize(
        [AssetSpec("training_corpus"), sft_checkpoint],
        selection=[sft_checkpoint],
        instance=DagsterInstance.get(),
        resources=resources(settings),
        raise_on_error=False,
    )


def _kill_sft_after_first_checkpoint(data, killed: list[int]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found = list(data.glob("models/sft-*/.adapter.checkpoints"))
        if found and last_checkpoint(found[0]) is not None:
            for proc in psutil.Process(os.getpid()).children(recursive=True):
                if "rp_pipeline.training.sft" in " ".join(proc.cmdline()):
                    proc.send_signal(signal.SIGKILL)
                    killed.append(int(last_checkpoint(found[0]).name.removeprefix("checkpoint-")))
            return
        time.sleep(0.05)


def test_re_materializing_after_a_killed_sft_resumes_from_its_checkpoint(
    tmp_path, fake_llm, tiny_model_dir, monkeypatch
):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    training = {"base_model": str(tiny_model_dir), "sft_steps": STEPS, "checkpoint_every": EVERY, "max_length": 256}
    settings = make_settings(tmp_path, fake_llm, training=training)
    _corpus(settings.data_dir)

    killed: list[int] = []
    killer = threading.Thread(target=_kill_sft_after_first_checkpoint, args=(settings.data_dir, killed))
    killer.start()
    first = _materialize(settings)
    killer.join()
    assert killed and not first.success  # the subprocess died: the step failed, nothing was published
    assert not list(settings.data_dir.glob("models/sft-*/adapter"))

    second = _materialize(settings)
    assert second.success
    [event] = second.asset_materializations_for_node("sft_checkpoint")
    metadata = {k: getattr(v, "value", v) for k, v in event.metadata.items()}
    # the last complete checkpoint when the resumed run looked: the one seen at the kill, or the next
    # if the kill landed after another save
    assert metadata["resumed_from_step"] >= killed[0] and metadata["resumed_from_step"] % EVERY == 0
    assert metadata["steps"] == STEPS
    [adapter] = settings.data_dir.glob("models/sft-*/adapter")
    metrics = json.loads((adapter / "metrics.json").read_text())
    assert metrics["steps"] == STEPS and metrics["loss_history"][0][0] == metadata["resumed_from_step"] + 1
