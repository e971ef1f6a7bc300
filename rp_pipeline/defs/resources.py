"""Resources every stage shares: where things live, the LLM layer, lineage, the trainer."""

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from rp_pipeline.core.base_models import BaseModelSpec, load_base_models
from rp_pipeline.core.chat import Role
from rp_pipeline.core.models import Drop
from rp_pipeline.core.profile import Profile, load_profile, profile_path
from rp_pipeline.core.prompts import Prompts
from rp_pipeline.core.rules import RuleSet
from rp_pipeline.core.seeds import load_seed_variables
from rp_pipeline.core.storage import Location, location, work_dir
from rp_pipeline.lineage.models import LineageEvent, LLMCall
from rp_pipeline.lineage.store import LineageStore
from rp_pipeline.llm.cache import ResponseCache
from rp_pipeline.llm.client import CallRecord, LLMClient
from rp_pipeline.llm.config import EMBEDDED, LLMConfig, RoleConfig, load_llm_config


class PipelineResource(ConfigurableResource):
    """Authored inputs (assets/), produced files (data/, local or object storage), the local
    work directory (what scripts and SQLite need on a disk) and the run profile."""

    assets_dir: str
    data_dir: str
    work_dir: str = ""  # default: data_dir, which must then be local
    profile: str = "demo"

    @property
    def assets(self) -> Path:
        return Path(self.assets_dir)

    @property
    def data(self) -> Location:
        """Corpus exports (and, beside them, asset values and lineage): local or object storage."""
        return location(self.data_dir)

    @property
    def work(self) -> Path:
        """Training configs, checkpoints, preference pairs, evaluation files: local, since the
        training scripts open local paths (a container or pod mounts it at the same path)."""
        return work_dir(self.data, self.work_dir)

    def load_profile(self) -> Profile:
        return load_profile(profile_path(self.profile, self.assets))

    def prompts(self) -> Prompts:
        return Prompts(self.assets / "prompts")

    def rules(self) -> RuleSet:
        return RuleSet.load(self.assets / "rules")

    def base_models(self) -> dict[str, BaseModelSpec]:
        return load_base_models(self.assets / "models" / "base_models.yaml")

    def seed_language_weights(self) -> dict[str, float]:
        """The seed languages' weights: the role-play language target when a profile sets none."""
        return {w.code: w.weight for w in load_seed_variables(self.assets / "seeds").languages}


class LLMResource(ConfigurableResource):
    """Hands each asset an `LLMClient` (its own ledger, the shared cache). The embedded
    models' llama.cpp servers are started on first use and stopped when the run's step ends
    (unless `rp demo` already serves them: RP_EMBEDDED_API_BASES)."""

    config_path: str
    cache_path: str
    _stack: contextlib.ExitStack | None = PrivateAttr(None)
    _api_bases: dict[str, str] = PrivateAttr(default_factory=dict)

    @contextlib.contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator["LLMResource"]:
        with contextlib.ExitStack() as stack:
            self._stack = stack
            yield self

    def config(self) -> LLMConfig:
        return load_llm_config(self.config_path)

    def client(self) -> LLMClient:
        return self._client(self.config())

    def role_client(self, role: Role) -> LLMClient:
        """A client that asks only `role`: only its bundled model is served for it."""
        return self._client(self.config().only(role))

    def _client(self, config: LLMConfig) -> LLMClient:
        if needed := config.embedded_models - self._api_bases.keys():
            self._api_bases.update(self._start_embedded(needed))
        return LLMClient(config, ResponseCache(self.cache_path), self._api_bases)

    def served_client(self, api_base: str, model_id: str, max_tokens: int) -> LLMClient:
        """A client of the model under evaluation served at `api_base`, sampled plainly (no
        grammar): evaluation measures the model, not the constraints. Every role is that model
        (only the character is asked), so the map's other bundled models need no server here."""
        config = load_llm_config(self.config_path)
        plain = RoleConfig(model=EMBEDDED, temperature=0.7, max_tokens=max_tokens)
        # One request at a time: each scenario turn then extends the previous prompt, and
        # llama.cpp re-evaluates only the new tokens.
        served = config.model_copy(update={"roles": dict.fromkeys(config.roles, plain), "max_concurrency": 1})
        return LLMClient(served, ResponseCache(self.cache_path), {EMBEDDED: api_base}, served_as={EMBEDDED: model_id})

    def _start_embedded(self, names: set[str]) -> dict[str, str]:
        from rp_pipeline.llm.embedded import embedded_servers

        if self._stack is None:
            raise RuntimeError("LLMResource used outside a Dagster run")
        return self._stack.enter_context(embedded_servers(names, Path(self.cache_path).parent))


class LineageResource(ConfigurableResource):
    root: str

    def store(self) -> LineageStore:
        return LineageStore(self.root)

    @contextlib.contextmanager
    def billing(self, context: AssetExecutionContext, *clients: LLMClient) -> Iterator[None]:
        """A step that fails after paying for calls still bills them: as the error leaves the
        block, the clients' calls go to the ledger (a step that succeeds records them itself,
        with its rows, inside the block)."""
        try:
            yield
        except BaseException:
            self.record(context, calls=[c for client in clients for c in client.calls])
            raise

    def record(
        self,
        context: AssetExecutionContext,
        rows: Iterable[tuple[str, list[str], dict[str, Any]]] = (),
        drops: Iterable[Drop] = (),
        calls: Iterable[CallRecord] = (),
    ) -> None:
        """Append this step's rows, drops and LLM calls as lineage segments."""
        asset = context.asset_key.to_user_string()
        partition = context.partition_key if context.has_partition_key else None
        code_version = context.assets_def.code_versions_by_key.get(context.asset_key)
        base = {"run_id": context.run_id, "asset": asset, "partition": partition, "code_version": code_version}
        events = [
            LineageEvent(**base, row_id=row_id, parent_ids=parents, attrs=attrs) for row_id, parents, attrs in rows
        ]
        events += [
            LineageEvent(
                **base,
                row_id=d.row_id,
                kind="drop",
                reason=d.reason,
                detail=(f"turn {d.turn}: " if d.turn is not None else "") + d.detail,
                attrs={"action": d.action},
            )
            for d in drops
        ]
        store = self.store()
        store.write_events(events)
        store.write_calls(
            LLMCall(
                run_id=context.run_id,
                asset=asset,
                partition=partition,
                role=c.role,
                model=c.model,
                prompt_hash=c.prompt_hash,
                cache_hit=c.cache_hit,
                prompt_tokens=c.prompt_tokens,
                completion_tokens=c.completion_tokens,
                cost_usd=c.cost_usd,
                latency_s=c.latency_s,
                ok=c.ok,
                error=c.error,
            )
            for c in calls
        )
