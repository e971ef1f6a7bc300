"""The JSON IO manager hands typed records from asset to asset, and a malformed file fails at
the boundary naming the field."""

from __future__ import annotations

import json

import pytest
from dagster import DagsterInstance, Definitions, asset
from pydantic import ValidationError

from rp_pipeline.core.artifacts import Checkpoint, QuantizedModel
from rp_pipeline.defs.io import JsonIOManagerFactory

CHECKPOINT = Checkpoint(version="dpo-1", stage="dpo", base_model_dir="/m", adapters=["/a", "/b"], corpus_version="c-1")
seen: dict[str, object] = {}


@asset
def checkpoint() -> Checkpoint:
    return CHECKPOINT


@asset
def quantized(checkpoint: Checkpoint) -> QuantizedModel:
    seen["checkpoint"] = checkpoint
    return QuantizedModel(version="q-1", format="gguf", path="/q.gguf", base_gguf="/b.gguf", checkpoint=checkpoint)


@asset
def served(quantized: QuantizedModel) -> list[str]:
    seen["quantized"] = quantized
    return [quantized.path]


def _defs(tmp_path) -> Definitions:
    return Definitions(
        assets=[checkpoint, quantized, served], resources={"io_manager": JsonIOManagerFactory(base_dir=str(tmp_path))}
    )


def test_records_round_trip_as_their_types(tmp_path):
    with DagsterInstance.ephemeral() as instance:
        assert _defs(tmp_path).resolve_implicit_global_asset_job_def().execute_in_process(instance=instance).success
    assert seen["checkpoint"] == CHECKPOINT and isinstance(seen["checkpoint"], Checkpoint)
    assert isinstance(seen["quantized"], QuantizedModel) and seen["quantized"].checkpoint == CHECKPOINT
    assert json.loads((tmp_path / "checkpoint.json").read_text())["adapters"] == ["/a", "/b"]


def test_a_malformed_hand_off_names_the_field(tmp_path):
    defs = _defs(tmp_path)
    with DagsterInstance.ephemeral() as instance:
        assert defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance).success
        broken = json.loads((tmp_path / "checkpoint.json").read_text())
        broken["adapters"] = []
        (tmp_path / "checkpoint.json").write_text(json.dumps(broken))
        job = defs.resolve_implicit_global_asset_job_def()
        with pytest.raises(ValidationError, match="adapters"):
            job.execute_in_process(instance=instance, asset_selection=[quantized.key])
