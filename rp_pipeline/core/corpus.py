"""The training corpus: role-play dialogues plus a share of general instructions, and the
export formats trainers consume (ShareGPT, OpenAI messages, HF datasets, LLaMA-Factory).

General data keeps the model's general skills; the field notes put it at 1/4-1/3 and
never over half, so more than half is refused rather than silently clipped. A general pool
too small for the target share is reported as a shortfall (`Corpus.general_shortfall`), and
`corpus_gaps` says when the reached share or the language distribution misses the profile's
target by more than its tolerance, so a corpus is never under-filled quietly.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from rp_pipeline.core.artifacts import ROWS_FILE, CorpusArtifact
from rp_pipeline.core.atomic import atomic_dir
from rp_pipeline.core.ids import content_id
from rp_pipeline.core.models import CleanedDialogue, CorpusRow, LanguageCode, Message
from rp_pipeline.core.storage import Location, upload_dir

DATASET_NAME = "rp_corpus"


class GeneralRow(BaseModel):
    id: str
    language: LanguageCode
    messages: list[Message] = Field(min_length=2)


class CorpusConfig(BaseModel):
    general_share: float = Field(default=0.25, ge=0, description="share of general rows in the corpus")
    general_share_tolerance: float = Field(
        default=0.05, ge=0, description="how far the reached general share may fall below general_share"
    )
    languages: dict[LanguageCode, float] | None = Field(
        default=None,
        description="target share of role-play rows per language (normalized); default: the seed language weights",
    )
    language_tolerance: float = Field(
        default=0.15,
        ge=0,
        le=1,
        description="largest total variation distance between reached and target language shares",
    )
    seed: int = 0
    cutoff_len: int = Field(
        default=8192,
        ge=64,
        description="tokens per sample (LLaMA-Factory's cutoff_len); longer rows are split at turn boundaries",
    )

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


MESSAGE_OVERHEAD = 4  # ChatML: <|im_start|>, the role, a newline, <|im_end|>
ASCII_CHARS_PER_TOKEN = 3


def estimate_tokens(text: str) -> int:
    """A tokenizer-free upper estimate, so the code location never loads a tokenizer: Qwen2.5's
    BPE averages about 4 English characters and 1.4 Chinese characters per token, so counting
    one token per 3 ASCII characters and one per other character (CJK, Arabic, Thai, ...)
    overestimates, and a row that fits here fits the real tokenizer. The SFT script splits
    again with the model's own tokenizer (`training/sft.split_to_fit`) for what this misses."""
    ascii_chars = sum(ch.isascii() for ch in text)
    return math.ceil(ascii_chars / ASCII_CHARS_PER_TOKEN) + (len(text) - ascii_chars) + MESSAGE_OVERHEAD


class Split(BaseModel):
    parts: list[list[Message]]
    too_long_exchanges: int = 0  # single exchanges over cutoff_len: never truncated mid-reply, left out


def split_at_turns(
    messages: list[Message], cutoff_len: int, count_tokens: Callable[[str], int] = estimate_tokens
) -> Split:
    """Rows over `cutoff_len` as consecutive parts of whole exchanges (user turns + the reply
    that answers them), each part under the system prompt again."""
    system = [m for m in messages[:1] if m.role == "system"]
    budget = cutoff_len - sum(count_tokens(m.content) for m in system)
    exchanges: list[list[Message]] = []
    pending: list[Message] = []
    for message in messages[len(system) :]:
        pending.append(message)
        if message.role == "assistant":
            exchanges.append(pending)
            pending = []
    parts: list[list[Message]] = []
    part: list[Message] = []
    used = too_long = 0
    for exchange in exchanges:
        cost = sum(count_tokens(m.content) for m in exchange)
        if part and (cost > budget or used + cost > budget):
            parts.append(part)
            part, used = [], 0
        if cost > budget:  # later exchanges start a new part: context before a gap is not kept
            too_long += 1
            continue
        part += exchange
        used += cost
    if part:
        parts.append(part)
    return Split(parts=[system + p for p in parts], too_long_exchanges=too_long)


class Corpus(BaseModel):
    rows: list[CorpusRow]
    held_back: list[CorpusRow] = Field(default_factory=list)  # role-play rows left out for the language mix
    too_long_exchanges: int = 0
    split_rows: int = 0  # role-play dialogues that became more than one row
    general_wanted: int = 0  # general rows the target share asks for
    general_pool: int = 0  # general rows there were to pick from

    @property
    def general_rows(self) -> int:
        return sum(r.source == "general" for r in self.rows)

    @property
    def general_shortfall(self) -> int:
        """General rows the target asked for that the pool could not give."""
        return self.general_wanted - self.general_rows

    @property
    def general_share(self) -> float:
        return round(self.general_rows / len(self.rows), 4) if self.rows else 0.0


def mix_languages(
    rows: list[CorpusRow], target: dict[str, float], tolerance: float, seed: int = 0
) -> tuple[list[CorpusRow], list[CorpusRow]]:
    """(kept, held back): role-play rows of the language furthest over its target share are
    held back one at a time, while that brings the mix closer to the target, until it is
    within `tolerance`. A mix that cannot get there (a language with too few rows) is left
    whole: holding rows back would hide nothing and lose data, and the corpus gate reports it.
    Which rows of a language go is a seeded, stable draw."""
    if not rows:
        return rows, []
    by_language: dict[str, list[CorpusRow]] = {}
    for row in sorted(rows, key=lambda r: content_id("mix", [seed, r.id])):
        by_language.setdefault(row.language, []).append(row)
    counts = {language: len(group) for language, group in by_language.items()}
    weight = sum(target.values())
    held: list[CorpusRow] = []
    while (distance := language_distance(counts, target)) > tolerance:
        total = sum(counts.values())
        over = max(counts, key=lambda k: (counts[k] / total - target.get(k, 0) / weight, k))
        trial = {**counts, over: counts[over] - 1}
        if not sum(trial.values()) or language_distance(trial, target) >= distance:
            return rows, []
        counts = trial
        held.append(by_language[over].pop())
    held_ids = {r.id for r in held}
    return [r for r in rows if r.id not in held_ids], held


def build_corpus(
    dialogues: list[CleanedDialogue],
    general: list[GeneralRow],
    config: CorpusConfig,
    count_tokens: Callable[[str], int] = estimate_tokens,
    language_target: dict[str, float] | None = None,
) -> Corpus:
    """Role-play rows split at the token cutoff, mixed to the language target (`config.languages`,
    else `language_target`: the seed weights), then general rows sampled to the target share."""
    rows: list[CorpusRow] = []
    too_long = split_rows = 0
    for d in dialogues:
        split = split_at_turns(d.messages, config.cutoff_len, count_tokens)
        too_long += split.too_long_exchanges
        split_rows += len(split.parts) > 1
        rows += [
            CorpusRow(
                id=content_id("row", [m.model_dump() for m in part]),
                source="roleplay",
                persona_id=d.persona_id,
                language=d.language,
                messages=part,
                parent_ids=[d.id],
                switch_language=d.switch_language,
            )
            for part in split.parts
        ]
    held: list[CorpusRow] = []
    if target := config.languages or language_target:
        rows, held = mix_languages(rows, target, config.language_tolerance, config.seed)
    wanted = round(config.general_share / (1 - config.general_share) * len(rows)) if config.general_share else 0
    picked = random.Random(config.seed).sample(general, min(wanted, len(general)))
    rows += [
        CorpusRow(
            id=content_id("row", [m.model_dump() for m in g.messages]),
            source="general",
            persona_id=None,
            language=g.language,
            messages=g.messages,
            parent_ids=[g.id],
        )
        for g in picked
    ]
    return Corpus(
        rows=sorted(rows, key=lambda r: r.id),
        held_back=held,
        too_long_exchanges=too_long,
        split_rows=split_rows,
        general_wanted=wanted,
        general_pool=len(general),
    )


def corpus_version(rows: list[CorpusRow]) -> str:
    return content_id("corpus", sorted(r.id for r in rows))


def language_distribution(rows: list[CorpusRow]) -> dict[str, int]:
    return dict(Counter(r.language for r in rows).most_common())


def language_distance(counts: dict[str, int], target: dict[str, float]) -> float:
    """Total variation distance between the reached language shares and the target's (both
    normalized): 0 is a perfect match, 1 is no overlap at all."""
    total, weight = sum(counts.values()), sum(target.values())
    if not total or not weight:
        return 1.0
    languages = set(counts) | set(target)
    return round(sum(abs(counts.get(k, 0) / total - target.get(k, 0) / weight) for k in languages) / 2, 4)


def corpus_gaps(rows: list[CorpusRow], config: CorpusConfig, seed_weights: dict[str, float]) -> list[str]:
    """Where the corpus misses the profile's targets beyond their tolerance, in words."""
    gaps = []
    roleplay = [r for r in rows if r.source == "roleplay"]
    general = len(rows) - len(roleplay)
    reached = general / len(rows) if rows else 0.0
    if config.general_share and reached < config.general_share - config.general_share_tolerance:
        gaps.append(
            f"general share {reached:.1%} < target {config.general_share:.0%} - {config.general_share_tolerance:.0%} "
            f"({general} general rows for {len(roleplay)} role-play rows: the general pool is too small)"
        )
    target = config.languages or seed_weights
    distance = language_distance(language_distribution(roleplay), target)
    if roleplay and distance > config.language_tolerance:
        gaps.append(
            f"role-play language distribution is {distance:.2f} (total variation) from the target, "
            f"over the tolerance {config.language_tolerance:.2f}"
        )
    return gaps


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
            "tags": {
                "role_tag": "from",
                "content_tag": "value",
                "user_tag": "human",
                "assistant_tag": "gpt",
                "system_tag": "system",
            },
        }
    }


EXPORT_FILES = {
    "sharegpt": "sharegpt.json",
    "messages": "messages.jsonl",
    "dataset_info": "dataset_info.json",
    "hf_dataset": "hf_dataset",
    "parquet": "corpus.parquet",
}


def export_corpus(rows: list[CorpusRow], out_dir: Location, version: str) -> CorpusArtifact:
    """Write every format and the rows themselves to `out_dir`, a local directory or an object
    storage location; `datasets` is imported here, not at load time.

    Locally the directory is built beside `out_dir` and renamed into place whole, so a kill
    mid-export leaves the previous complete export or none, and a trainer never reads half a
    corpus. On object storage it is built in a local temp directory (under $TMPDIR, which must
    hold one export) and published with a completion marker written last (`upload_dir`)."""
    if isinstance(out_dir, Path):
        with atomic_dir(out_dir) as staging:
            _write_exports(rows, staging, version)
    else:
        with tempfile.TemporaryDirectory(prefix=f"rp-{version}-") as staging:
            _write_exports(rows, Path(staging), version)
            upload_dir(Path(staging), out_dir)
    return CorpusArtifact(
        version=version, dir=str(out_dir), rows=len(rows), **{k: str(out_dir / v) for k, v in EXPORT_FILES.items()}
    )


def _write_exports(rows: list[CorpusRow], directory: Path, version: str) -> None:
    from datasets import Dataset

    paths = {kind: directory / name for kind, name in EXPORT_FILES.items()}
    sharegpt = json.dumps([to_sharegpt(r) for r in rows], ensure_ascii=False, indent=1)
    paths["sharegpt"].write_text(sharegpt, "utf-8")
    messages = "".join(json.dumps(to_messages(r), ensure_ascii=False) + "\n" for r in rows)
    paths["messages"].write_text(messages, "utf-8")
    info = llama_factory_dataset_info(EXPORT_FILES["sharegpt"])
    paths["dataset_info"].write_text(json.dumps(info, indent=2), "utf-8")
    dataset = Dataset.from_list(
        [
            {
                "id": r.id,
                "source": r.source,
                "persona_id": r.persona_id or "",
                "language": r.language,
                "messages": [m.model_dump() for m in r.messages],
            }
            for r in rows
        ]
    )
    dataset.info.description = f"rp_pipeline role-play corpus {version}"
    dataset.save_to_disk(str(paths["hf_dataset"]))
    dataset.to_parquet(str(paths["parquet"]))
    (paths["hf_dataset"] / "README.md").write_text(dataset_card(rows, version), "utf-8")
    (directory / ROWS_FILE).write_text("".join(r.model_dump_json() + "\n" for r in rows), encoding="utf-8")


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


def corpus_change(old_ids: Iterable[str], new_ids: Iterable[str]) -> float:
    """Share of rows added or removed between two corpus versions (row ids hash the content, so
    an edited row counts as one removed and one added): 0 for the same rows, 1 for disjoint ones."""
    old, new = set(old_ids), set(new_ids)
    return len(old ^ new) / len(old | new) if old | new else 0.0
