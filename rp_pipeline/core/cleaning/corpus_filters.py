"""Filters across rows: exact duplicates, near duplicates (MinHash LSH) and over-frequent
reply openings. They run over everything one call sees (a `rp clean` file, a persona's
dialogues, the whole training corpus); the first row of a group stays, in input order.

Near-duplicate shingles are character n-grams of the spoken letters, not whitespace words:
Chinese and Japanese have no spaces, so word shingles would make every CJK reply one token.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from rp_pipeline.core.cleaning.models import ChatRow, CleaningConfig, TurnReport
from rp_pipeline.core.cleaning.rows import cut_at
from rp_pipeline.core.ids import content_hash
from rp_pipeline.core.rules import normalized

NUM_PERM = 64
SCHEME = "affine32"  # datasketch 2.x default; signatures built from shared permutations must name it
CJK_SHINGLE, ALPHABET_SHINGLE = 3, 5  # about one word either way


_CJK = re.compile("[\u3040-\u9fff\uac00-\ud7af]")  # ideographs, kana, hangul


def shingles(text: str) -> set[str]:
    """Character n-grams; n is 3 when most letters are CJK ideographs/kana/hangul, else 5."""
    cjk = len(_CJK.findall(text))
    n = CJK_SHINGLE if cjk * 2 >= len(text) else ALPHABET_SHINGLE
    return {text[i : i + n] for i in range(max(len(text) - n + 1, 1))} if text else set()


def _dialogue_text(row: ChatRow) -> str:
    return "\n".join(normalized(m.content) for m in row.messages if m.role != "system")


def remove_duplicates(rows: list[ChatRow], config: CleaningConfig) -> tuple[list[ChatRow], list[TurnReport]]:
    """Exact duplicates by message content, then near duplicates of the conversation (system
    prompt excluded: one persona's rows all share it) whose shingle Jaccard, verified after the
    LSH lookup, reaches the threshold. datasketch (scipy) loads here, not with the code location."""
    from datasketch import MinHash, MinHashLSH

    template = MinHash(num_perm=NUM_PERM, seed=1, scheme=SCHEME)  # permutations drawn once, shared by all
    kept: list[ChatRow] = []
    reports: list[TurnReport] = []
    seen: dict[str, str] = {}
    lsh = MinHashLSH(threshold=config.near_duplicate_threshold, num_perm=NUM_PERM)
    sets: dict[str, set[str]] = {}
    for index, row in enumerate(rows):
        key = content_hash([m.model_dump() for m in row.messages])
        if key in seen:
            reports.append(
                TurnReport(
                    id=row.id,
                    turn=None,
                    role=None,
                    codes=["exact_duplicate"],
                    action="drop",
                    details=[f"same as {seen[key]}"],
                )
            )
            continue
        seen[key] = row.id
        grams = shingles(_dialogue_text(row))
        if grams:
            signature = MinHash(num_perm=NUM_PERM, seed=1, permutations=template.permutations, scheme=SCHEME)
            signature.update_batch([g.encode("utf-8") for g in grams])
            twin = next(
                (
                    c
                    for c in map(str, lsh.query(signature))
                    if len(grams & sets[c]) / len(grams | sets[c]) >= config.near_duplicate_threshold
                ),
                None,
            )
            if twin is not None:
                reports.append(
                    TurnReport(
                        id=row.id,
                        turn=None,
                        role=None,
                        codes=["near_duplicate"],
                        action="drop",
                        details=[f"like {rows[int(twin)].id}"],
                    )
                )
                continue
            lsh.insert(str(index), signature)
            sets[str(index)] = grams
        kept.append(row)
    return kept, reports


def cap_openings(rows: list[ChatRow], config: CleaningConfig) -> tuple[list[ChatRow], list[TurnReport]]:
    """Down-sample over-frequent phrasings: once `cap` replies open with the same letters, a
    row is cut before the next such reply (or dropped if too little would remain). The cap is
    a share of all replies, never below `pattern_min_count`."""
    total = sum(m.role == "assistant" for row in rows for m in row.messages)
    cap = max(config.pattern_min_count, math.ceil(config.pattern_max_share * total))
    counts: Counter[str] = Counter()
    kept: list[ChatRow] = []
    reports: list[TurnReport] = []
    for row in rows:
        result: ChatRow | None = row
        mine: Counter[str] = Counter()  # counted only if the row stays
        for turn, message in enumerate(row.messages):
            opening = normalized(message.content)[: config.pattern_chars] if message.role == "assistant" else ""
            if not opening:
                continue
            if counts[opening] + mine[opening] >= cap:
                result, action = cut_at(row, turn, config)
                reports.append(
                    TurnReport(
                        id=row.id,
                        turn=turn,
                        role="assistant",
                        codes=["overfrequent_pattern"],
                        action=action,
                        details=[f"{opening!r} already opens {cap} replies"],
                    )
                )
                break
            mine[opening] += 1
        if result is not None:
            kept.append(result)
            counts.update(mine)
    return kept, reports


def corpus_filters(rows: list[ChatRow], config: CleaningConfig) -> tuple[list[ChatRow], list[TurnReport]]:
    deduped, reports = remove_duplicates(rows, config)
    capped, capped_reports = cap_openings(deduped, config)
    return capped, reports + capped_reports
