"""Outputs on object storage (an fsspec URL): a corpus export is published whole or read as
absent, reads back in every format through fsspec, and reaches the training scripts as a local file."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from upath import UPath

from rp_pipeline.core.artifacts import corpus_row_ids
from rp_pipeline.core.corpus import CorpusConfig, build_corpus, corpus_version, export_corpus
from rp_pipeline.core.storage import COMPLETE, location, published_files, upload_dir, work_dir
from rp_pipeline.settings import Settings
from rp_pipeline_tests.core.test_corpus import _dialogue


def _rows():
    dialogues = [_dialogue(6, "zh", "clean-zh"), _dialogue(6, "en", "clean-en")]
    return build_corpus(dialogues, [], CorpusConfig(general_share=0, cutoff_len=150)).rows


def test_local_paths_stay_pathlib_and_urls_become_upaths(tmp_path):
    assert location(str(tmp_path)) == tmp_path and type(location(str(tmp_path))) is type(tmp_path)
    assert location(f"file://{tmp_path}") == tmp_path and isinstance(location(f"file://{tmp_path}"), Path)
    assert location(UPath(tmp_path)) == tmp_path and type(location(UPath(tmp_path))) is type(tmp_path)
    remote = location("memory://bucket/rp")
    assert (
        isinstance(remote, UPath)
        and not isinstance(remote, Path)
        and str(remote / "corpus") == ("memory://bucket/rp/corpus")
    )


def test_a_remote_data_dir_needs_a_local_work_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RP_DATA_DIR", "memory://bucket/rp")
    with pytest.raises(ValueError, match="RP_WORK_DIR"):
        Settings()
    monkeypatch.setenv("RP_WORK_DIR", str(tmp_path))
    settings = Settings()
    assert str(settings.data_dir) == "memory://bucket/rp" and settings.local_dir == tmp_path
    assert Settings(data_dir=tmp_path).local_dir == tmp_path  # local: one directory, as before
    assert work_dir(tmp_path / "data", None) == tmp_path / "data"


def test_a_corpus_exported_to_object_storage_reads_back_in_every_format(object_store, tmp_path):
    from datasets import load_from_disk

    rows = _rows()
    target = object_store / "corpus" / corpus_version(rows)
    corpus = export_corpus(rows, target, corpus_version(rows))

    assert corpus.dir == str(target) and corpus.messages.startswith(f"{object_store.protocol}://")
    assert corpus.load_rows() == rows
    assert corpus_row_ids(target) == [r.id for r in rows]
    manifest = published_files(target)
    assert manifest is not None and {"rows.jsonl", "messages.jsonl", "corpus.parquet", "hf_dataset/README.md"} <= set(
        manifest
    )
    assert all(target.fs.size(f"{target.path}/{name}") == size for name, size in manifest.items())
    table = pq.read_table(UPath(corpus.parquet).path, filesystem=target.fs)
    assert table.column("id").to_pylist() == [r.id for r in rows]
    dataset = load_from_disk(corpus.hf_dataset)  # datasets opens the URL through fsspec itself
    assert len(dataset) == len(rows) and dataset[0]["messages"][0]["role"] == "system"
    sharegpt = json.loads(location(corpus.sharegpt).read_text(encoding="utf-8"))
    assert [r["id"] for r in sharegpt] == [r.id for r in rows]


def test_training_scripts_get_the_messages_file_on_a_local_disk_once(object_store, tmp_path):
    rows = _rows()
    corpus = export_corpus(rows, object_store / "corpus" / "v1", "v1")

    local = corpus.for_scripts(tmp_path / "work")
    path = Path(local.messages)
    assert path == tmp_path / "work" / "corpus" / "v1" / "messages.jsonl"
    assert path.read_bytes() == location(corpus.messages).read_bytes()
    assert local.dir == corpus.dir and local.rows == corpus.rows  # the rest still points at the store

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded again")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(object_store.fs), "get_file", no_download)
        assert corpus.for_scripts(tmp_path / "work").messages == str(path)  # same size: kept
    path.write_text("truncated")  # a copy that does not match the manifest is fetched again
    assert corpus.for_scripts(tmp_path / "work").messages == str(path)
    assert path.read_bytes() == location(corpus.messages).read_bytes()
    local_corpus = export_corpus(rows, tmp_path / "local", "v1")
    assert local_corpus.for_scripts(tmp_path / "work") is local_corpus  # a local export is used in place


def test_an_upload_without_its_marker_is_absent_to_every_reader(object_store, tmp_path):
    rows = _rows()
    target = object_store / "corpus" / "v1"
    fs = target.fs
    real_pipe = type(fs).pipe_file

    def killed_before_the_marker(self, path, value, *args, **kwargs):
        if path.endswith(COMPLETE):
            raise KeyboardInterrupt("killed")
        return real_pipe(self, path, value, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(type(fs), "pipe_file", killed_before_the_marker)
        export_corpus(rows, target, "v1")

    assert fs.exists(f"{target.path}/rows.jsonl")  # every file is there, but not published
    corpus = export_corpus(rows, tmp_path / "scratch", "v1").model_copy(
        update={"dir": str(target), "messages": str(target / "messages.jsonl")}
    )
    for read in (corpus.load_rows, lambda: corpus_row_ids(target), lambda: corpus.for_scripts(tmp_path / "work")):
        with pytest.raises(FileNotFoundError, match=f"no {COMPLETE} marker"):
            read()
    assert not (tmp_path / "work" / "corpus").exists()

    export_corpus(rows, target, "v1")  # the next export publishes it
    assert corpus.load_rows() == rows


def test_a_re_upload_hides_the_old_version_first_and_leaves_no_stale_object(object_store, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "sub").mkdir(parents=True)
    (first / "a.txt").write_text("old")
    (first / "sub" / "stale.txt").write_text("only in the old upload")
    second.mkdir()
    (second / "a.txt").write_text("new!")
    target = object_store / "dir"

    assert upload_dir(first, target) == {"a.txt": 3, "sub/stale.txt": 22}
    assert upload_dir(second, target) == {"a.txt": 4}
    assert published_files(target) == {"a.txt": 4}
    assert sorted(p.rsplit("/", 1)[-1] for p in target.fs.find(target.path)) == [COMPLETE, "a.txt"]
    assert published_files(tmp_path) is None  # a local directory is complete by construction
