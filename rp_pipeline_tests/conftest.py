"""Shared fixtures: a fake OpenAI-compatible server, a pipeline environment on tmp_path.

No test reaches beyond 127.0.0.1 and no test downloads weights.
"""

from __future__ import annotations

import importlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.spec import AbstractFileSystem
from upath import UPath

from rp_pipeline.settings import REPO_ROOT, Settings
from rp_pipeline_tests.fake_llm import FakeLLM

TEST_LANGUAGES = [{"code": "zh", "weight": 0.5}, {"code": "en", "weight": 0.5}]


@pytest.fixture
def fake_llm():
    server = FakeLLM().start()
    yield server
    server.stop()


def write_test_assets(root: Path, **profile_overrides) -> Path:
    """A copy of assets/ restricted to zh/en samples, with a small test profile."""
    assets = root / "assets"
    shutil.copytree(REPO_ROOT / "assets", assets)
    (assets / "seeds" / "languages.yaml").write_text(yaml.safe_dump(TEST_LANGUAGES), encoding="utf-8")
    profile = {
        "name": "test",
        "seed": 3,
        "n_seed_samples": 4,
        "n_synthesized_personas": 1,
        "self_samples_per_turn": 1,
        "simulation": {"min_turns": 5, "max_turns": 7, "topic_every": 2, "moderator_every": 2, "max_attempts": 2},
        "cleaning": {"min_exchanges": 1},
        # The test personas: 3 authored zh cards and the synthesized one (a zh sample), 1 en, 1 es, 1 ja.
        "corpus": {"languages": {"zh": 4, "en": 1, "es": 1, "ja": 1}},
        "training": {
            "base_model": "embedded",
            "sft_steps": 2,
            "dpo_steps": 1,
            "max_length": 4096,  # the tiny tokenizer spends ~3 tokens on a CJK character
            "batch_size": 2,
            "eval_max_new_tokens": 8,
        },
    }
    for key, value in profile_overrides.items():
        if isinstance(value, dict):
            profile[key] = {**profile.get(key, {}), **value}
        else:
            profile[key] = value
    (assets / "profiles" / "test.yaml").write_text(yaml.safe_dump(profile, allow_unicode=True), encoding="utf-8")
    return assets


def make_settings(root: Path, fake: FakeLLM, llm: dict | None = None, **profile_overrides) -> Settings:
    """Settings for a pipeline under `root` on the fake server; DAGSTER_HOME is the caller's."""
    return Settings(
        data_dir=root / "data",
        assets_dir=write_test_assets(root, **profile_overrides),
        profile="test",
        llm_config=fake.write_config(root / "models.yaml", **(llm or {})),
    )


@pytest.fixture
def pipeline_settings(tmp_path, fake_llm, monkeypatch) -> Settings:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    return make_settings(tmp_path, fake_llm)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-weight tiny Qwen2 with a locally trained tokenizer; built in about a second."""
    from rp_pipeline_tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


class InMemoryS3(MemoryFileSystem):
    """fsspec's in-memory file system under the `s3://` scheme (its own store, key-like paths
    without a leading slash, as s3fs has them), so UPath's S3Path and DuckDB's routing of
    `s3://` globs are exercised without s3fs or a server."""

    protocol = ("s3", "s3a")
    root_marker = ""
    store: ClassVar[dict] = {}
    pseudo_dirs: ClassVar[list[str]] = [""]

    @classmethod
    def _strip_protocol(cls, path):
        return AbstractFileSystem._strip_protocol.__func__(cls, path).strip("/")  # type: ignore[attr-defined]


@pytest.fixture(params=["memory", "s3"])
def object_store(request, monkeypatch) -> Iterator[UPath]:
    """A fresh bucket on an in-memory fsspec file system (`memory://`, or `s3://` served by
    `InMemoryS3`), held to what an object store offers: there is no rename (S3's "move" is a
    copy and a delete), so any attempt fails the test."""

    def no_rename(self, path1, path2, *args, **kwargs):
        raise AssertionError(f"renamed {path1} to {path2}: an object store has no rename")

    for name in ("mv", "move", "rename"):
        monkeypatch.setattr(MemoryFileSystem, name, no_rename)
    if request.param == "s3":
        # fsspec has no unregister: the registry dict itself is patched, and restored after
        monkeypatch.setitem(importlib.import_module("fsspec.registry")._registry, "s3", InMemoryS3)
    bucket = UPath(f"{request.param}://rp-test-{uuid.uuid4().hex[:12]}")
    yield bucket
    if bucket.fs.exists(bucket.path):
        bucket.fs.rm(bucket.path, recursive=True)
