"""The training corpus: role-play dialogues plus a share of general instructions, and the
export formats trainers consume (ShareGPT, OpenAI messages, HF datasets, LLaMA-Factory).

General data keeps the model's general skills; the field notes put it at 1/4-1/3 and
never over half, so more than half is refused rather than silently clipped.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from rp_pipeline.core.ids import content_id
from rp_pipeline.core.models import CleanedDialogue, CorpusRow, LanguageCode, Message

DATASET_NAME = "rp_corpus"


class GeneralRow(BaseModel):
    id: str
    language: LanguageCode
    messages: list[Message] = Field(min_length=2)


class CorpusConfig(BaseModel):
    general_share: float = Field(0.25, ge=0, description="share of general rows in the corpus")
    seed: int = 0

    def model_post_init(self, __context: object) -> None:
        if self.general_share > 0.5:
            raise ValueError(f"general_share {self.general_share} > 0.5: general data must never be over half")


def load_general_rows(path: Path) -> list[GeneralRow]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(GeneralRow.model_validate_json(line))
        except ValidationError as exc:
            raise ValueError(f"{path}:{number}: invalid general instruction row: {exc}") from exc
    return rows


def build_corpus(dialogues: list[CleanedDialogue], general: list[GeneralRow], config: CorpusConfig) -> list[CorpusRow]:
    rows = [
        CorpusRow(id=content_id("row", [m.model_dump() for m in d.messages]), source="roleplay",
                  persona_id=d.persona_id, language=d.language, messages=d.messages, parent_ids=[d.id])
        for d in dialogues
    ]
    wanted = round(config.general_share / (1 - config.general_share) * len(rows)) if config.general_share else 0
    picked = random.Random(config.seed).sample(general, min(wanted, len(general)))
    rows += [
        CorpusRow(id=content_id("row", [m.model_dump() for m in g.messages]), source="general", persona_id=None,
                  language=g.language, messages=g.messages, parent_ids=[g.id])
        for g in picked
    ]
    return sorted(rows, key=lambda r: r.id)


def corpus_version(rows: list[CorpusRow]) -> str:
    return content_id("corpus", sorted(r.id for r in rows))


def language_distribution(rows: list[CorpusRow]) -> dict[str, int]:
    return dict(Counter(r.language for r in rows).most_common())


def to_sharegpt(row: CorpusRow) -> dict:
    system = next((m.content for m in row.messages if m.role == "system"), "")
    role_map = {"user": "human", "assistant": "gpt"}
    return {
        "id": row.id,
        "system": system,
        "conversations": [{"from": role_map[m.role], "value": m.content} for m in row.messages if m.role != "system"],
    }


def to_messages(row: CorpusRow) -> dict:
    return {"id": row.id, "messages": [m.model_dump() for m in row.messages]}


def llama_factory_dataset_info(file_name: str) -> dict:
    """LLaMA-Factory's `dataset_info.json` entry for the ShareGPT export (its documented fields)."""
    return {
        DATASET_NAME: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
        }
    }


def export_corpus(rows: list[CorpusRow], out_dir: Path, version: str) -> dict[str, Path]:
    """Write every format; returns their paths. `datasets` is imported here, not at load time."""
    from datasets import Dataset

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "sharegpt": out_dir / "sharegpt.json",
        "messages": out_dir / "messages.jsonl",
        "dataset_info": out_dir / "dataset_info.json",
        "hf_dataset": out_dir / "hf_dataset",
        "parquet": out_dir / "corpus.parquet",
    }
    paths["sharegpt"].write_text(json.dumps([to_sharegpt(r) for r in rows], ensure_ascii=False, indent=1), "utf-8")
    paths["messages"].write_text("".join(json.dumps(to_messages(r), ensure_ascii=False) + "\n" for r in rows), "utf-8")
    paths["dataset_info"].write_text(json.dumps(llama_factory_dataset_info(paths["sharegpt"].name), indent=2), "utf-8")
    dataset = Dataset.from_list(
        [{"id": r.id, "source": r.source, "persona_id": r.persona_id or "", "language": r.language,
          "messages": [m.model_dump() for m in r.messages]} for r in rows]
    )
    dataset.info.description = f"rp_pipeline role-play corpus {version}"
    dataset.save_to_disk(str(paths["hf_dataset"]))
    dataset.to_parquet(str(paths["parquet"]))
    (paths["hf_dataset"] / "README.md").write_text(dataset_card(rows, version), "utf-8")
    return paths


def dataset_card(rows: list[CorpusRow], version: str) -> str:
    langs = "\n".join(f"| {lang} | {n} |" for lang, n in language_distribution(rows).items())
    sources = Counter(r.source for r in rows)
    return (
        f"---\nlicense: other\ntask_categories: [text-generation]\n---\n# {DATASET_NAME} ({version})\n\n"
        "Synthetic multi-turn role-play dialogues (persona card as system prompt, scene excluded) "
        "simulated by rp_pipeline's multi-agent simulator and cleaned with its role-play rules, "
        f"mixed with general instructions.\n\n- rows: {len(rows)} (role-play {sources['roleplay']}, "
        f"general {sources['general']})\n\n| language | rows |\n|---|---|\n{langs}\n"
    )
