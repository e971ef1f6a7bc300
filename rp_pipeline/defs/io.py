"""Asset values are JSON files under data/assets/<asset>/<partition>.json (any fsspec path).

A partitioned upstream read by an unpartitioned asset always arrives as a dict keyed by
partition (Dagster's UPathIOManager returns a bare value when only one partition exists),
and partitions that failed are skipped rather than sinking the consumer. Values are read back
as the typed records the consumer's annotation names.
"""

import functools
import json
from pathlib import Path
from typing import Any

from dagster import ConfigurableIOManagerFactory, InputContext, OutputContext, UPathIOManager
from pydantic import BaseModel, TypeAdapter
from upath import UPath

from rp_pipeline.core.atomic import write_text_atomic


def to_jsonable(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, list | tuple):
        return [to_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    return obj


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter:
    return TypeAdapter(annotation)


class JsonIOManager(UPathIOManager):
    extension = ".json"

    def dump_to_path(self, context: OutputContext, obj: Any, path: UPath) -> None:
        """Whole or not at all: a local file is renamed into place (`write_text_atomic`); on an
        object store one PUT already replaces the object whole."""
        text = json.dumps(to_jsonable(obj), ensure_ascii=False)
        if isinstance(path, Path):
            write_text_atomic(path, text)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")

    def load_from_path(self, context: InputContext, path: UPath) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))

    def load_input(self, context: InputContext) -> Any:
        """Read back as the consumer's annotation (`PersonaCard`, `list[Dialogue]`,
        `dict[str, list[CleanedDialogue]]`, ...), so a malformed hand-off fails here, naming
        the field, and assets never re-validate rows themselves."""
        return _adapter(context.dagster_type.typing_type).validate_python(super().load_input(context))

    def load_partitions(self, context: InputContext) -> Any:
        loaded = super().load_partitions(context)
        if not context.has_partition_key and len(context.asset_partition_keys) == 1:
            return {context.asset_partition_keys[0]: loaded} if loaded is not None else {}
        return loaded


class JsonIOManagerFactory(ConfigurableIOManagerFactory):
    base_dir: str

    def create_io_manager(self, context) -> JsonIOManager:
        return JsonIOManager(base_path=UPath(self.base_dir))
