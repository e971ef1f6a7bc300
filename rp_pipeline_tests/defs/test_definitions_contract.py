"""The code location's contract, in the dagster-open-platform style: load the definitions the
way Dagster does and compare what users and automation depend on with a committed snapshot.

Lineage (`CHECKPOINT_ASSETS`), the persona sensor, the jobs and the UI all key on these
names, groups and partitions, so a change to any of them must be a deliberate edit of
`definitions_snapshot.json` (regenerate with `RP_UPDATE_SNAPSHOT=1 pytest <this file>`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dagster import Definitions

from rp_pipeline.lineage.store import CHECKPOINT_ASSETS

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")
HEAVY = ("torch", "trl", "transformers", "peft", "deepspeed", "litellm", "datasets")


def contract(defs: Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    checks: dict[str, list[dict]] = {}
    for key in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        spec = graph.get_check_spec(key)
        checks.setdefault(key.asset_key.to_user_string(), []).append({"name": key.name, "blocking": spec.blocking})
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "owners": sorted(node.owners),
            "kinds": sorted(node.kinds),
            "partitions": str(partitions) if partitions else None,
            "pools": sorted(node.pools or ()),
            "code_version": node.code_version,
            "has_description": bool(node.description),
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "checks": checks.get(key.to_user_string(), []),
        }
    jobs = {
        job.name: {
            "assets": sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys),
            "partitioned": job.partitions_def is not None,
        }
        for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name)
        if not job.name.startswith("__")
    }
    sensors = {
        s.name: {"jobs": sorted(j.name for j in s.jobs) if s.has_jobs else [], "default_status": s.default_status.value}
        for s in defs.sensors or ()
    }
    schedules = {s.name: {"cron": s.cron_schedule, "job": s.job_name} for s in defs.schedules or ()}
    return {"assets": assets, "jobs": jobs, "sensors": sensors, "schedules": schedules}


def test_definitions_match_the_snapshot():
    from rp_pipeline.definitions import defs

    current = contract(defs)
    if os.environ.get("RP_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    for name in sorted(set(expected["assets"]) | set(current["assets"])):
        assert current["assets"].get(name) == expected["assets"].get(name), f"asset {name} differs from the snapshot"
    assert current == expected
    assert set(CHECKPOINT_ASSETS) <= set(current["assets"])  # lineage queries these by name


def test_the_contract_sees_a_changed_group_and_partitions():
    """A snapshot comparison that cannot fail is no contract: change one asset and look."""
    from dagster import DynamicPartitionsDefinition

    from rp_pipeline.definitions import defs
    from rp_pipeline.defs.build import ASSETS

    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    other = DynamicPartitionsDefinition(name="other")
    for change in ({"group_name": "elsewhere"}, {"partitions_def": other}):
        assets = [
            a.map_asset_specs(lambda spec, change=change: spec.replace_attributes(**change))
            if a.key.to_user_string() == "seed_variables"
            else a
            for a in ASSETS
        ]
        changed = contract(
            Definitions(
                assets=assets,
                asset_checks=defs.asset_checks,
                jobs=defs.jobs,
                sensors=defs.sensors,
                schedules=defs.schedules,
                resources=defs.resources,
            )
        )
        assert changed["assets"]["seed_variables"] != expected["assets"]["seed_variables"]
        changed["assets"]["seed_variables"] = expected["assets"]["seed_variables"]
        assert changed["assets"] == expected["assets"]  # and no other asset moved


def test_the_code_location_loads_without_heavy_imports():
    """Dagster must load definitions in seconds: no torch, trl or litellm on the import path."""
    code = f"import sys, rp_pipeline.definitions; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
