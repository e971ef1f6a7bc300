"""Seed tables and the sampler that combines them (field notes 001, v0.1.5).

Coverage-aware: every personality type and occupation is used before any repeats, so a
small sample still spans the tables (the notes raised coverage on purpose to generalize).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import ValidationError

from rp_pipeline.core.ids import content_id
from rp_pipeline.core.models import SeedSample, SeedVariables

T = TypeVar("T")
TABLES = tuple(SeedVariables.model_fields)


def load_seed_variables(seeds_dir: Path) -> SeedVariables:
    """Read `<table>.yaml` for every table; errors name the file and the field."""
    raw = {}
    for table in TABLES:
        path = seeds_dir / f"{table}.yaml"
        try:
            raw[table] = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot read seed table: {exc}") from exc
    try:
        return SeedVariables.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        table = first["loc"][0]
        raise ValueError(
            f"{seeds_dir / f'{table}.yaml'}: invalid seed table at {first['loc']}: {first['msg']}"
        ) from exc


def _cycle(rng: random.Random, items: Sequence[T], n: int) -> list[T]:
    """n draws that exhaust a shuffled copy of `items` before repeating any."""
    out: list[T] = []
    while len(out) < n:
        batch = list(items)
        rng.shuffle(batch)
        out.extend(batch)
    return out[:n]


def sample_seeds(variables: SeedVariables, n: int, seed: int) -> list[SeedSample]:
    rng = random.Random(seed)
    columns = {
        "character_personality": _cycle(rng, variables.character_personalities, n),
        "character_occupation": _cycle(rng, variables.character_occupations, n),
        "user_personality": _cycle(rng, variables.user_personalities, n),
        "user_occupation": _cycle(rng, variables.user_occupations, n),
        "relationship": _cycle(rng, variables.relationships, n),
        "scene": _cycle(rng, variables.scenes, n),
    }
    codes = [lang.code for lang in variables.languages]
    weights = [lang.weight for lang in variables.languages]
    samples = []
    for i in range(n):
        fields = {name: column[i] for name, column in columns.items()}
        fields["language"] = rng.choices(codes, weights)[0]
        payload = {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in fields.items()}
        samples.append(SeedSample(id=content_id("seed", {"seed": seed, "i": i, **payload}), index=i, **fields))
    return samples


def coverage(variables: SeedVariables, samples: list[SeedSample]) -> dict[str, float]:
    """Share of each table's values that appear in the sample."""

    def share(used: set, table: Sequence) -> float:
        return round(len(used) / len(table), 3) if table else 0.0

    return {
        "character_personalities": share(
            {s.character_personality.id for s in samples}, variables.character_personalities
        ),
        "user_personalities": share({s.user_personality.id for s in samples}, variables.user_personalities),
        "character_occupations": share({s.character_occupation for s in samples}, variables.character_occupations),
        "user_occupations": share({s.user_occupation for s in samples}, variables.user_occupations),
        "scenes": share({s.scene.id for s in samples}, variables.scenes),
        "languages": share({s.language for s in samples}, variables.languages),
    }


def language_counts(samples: list[SeedSample]) -> dict[str, int]:
    return dict(Counter(s.language for s in samples).most_common())
