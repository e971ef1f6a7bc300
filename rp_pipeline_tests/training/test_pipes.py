"""The scripts report through Dagster Pipes when Dagster launches them."""

import json
import sys

import dagster as dg

from rp_pipeline_tests.training.conftest import offline_env, request_rows, write_jsonl


def test_generate_dense_reports_materialization_through_pipes(int8_chain, tiny_model_dir, sft_run, dpo_run, tmp_path):
    # int8_chain comes first only to start quantization in the background before this runs
    out = tmp_path / "gen.jsonl"
    cfg = tmp_path / "generate.json"
    cfg.write_text(
        json.dumps(
            {
                "model_dir": str(tiny_model_dir),
                "kind": "dense",
                "adapters": [str(sft_run.workdir / "adapter"), str(dpo_run.workdir / "adapter")],
                "requests_file": str(write_jsonl(tmp_path / "req.jsonl", request_rows())),
                "output_file": str(out),
                "max_new_tokens": 8,
            }
        ),
        encoding="utf-8",
    )

    @dg.asset
    def generations(context: dg.AssetExecutionContext, pipes: dg.PipesSubprocessClient):
        cmd = [sys.executable, "-m", "rp_pipeline.training.generate", "--config", str(cfg)]
        return pipes.run(command=cmd, context=context, env=offline_env()).get_materialize_result()

    result = dg.materialize(
        [generations], resources={"pipes": dg.PipesSubprocessClient()}, instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    meta = result.asset_materializations_for_node("generations")[0].metadata
    assert meta["rows"].value == 3
    assert meta["tokens_per_s"].value > 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert all(0 < r["new_tokens"] <= 8 for r in rows)
