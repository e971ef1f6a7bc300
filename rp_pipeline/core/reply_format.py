"""The character reply format of the field notes, parsed strictly.

    text<emotion>LABEL</emotion>text<emotion>LABEL</emotion>[<img><prompt>…</prompt><includePerson>true|false</includePerson></img>]

Every clause carries an emotion label; at most one image, and only at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rp_pipeline.core.models import EMOTIONS

_CLAUSE = re.compile(r"([^<>]+?)<emotion>\s*([A-Za-z]+)\s*</emotion>", re.DOTALL)
_IMAGE = re.compile(
    r"<img>\s*<prompt>([^<>]+)</prompt>\s*<includePerson>\s*(true|false)\s*</includePerson>\s*</img>\s*$",
    re.DOTALL,
)
MAX_CHARS = 50
MAX_CHARS_WITH_IMAGE = 80


class ReplyFormatError(ValueError):
    pass


@dataclass(frozen=True)
class Clause:
    text: str
    emotion: str


@dataclass(frozen=True)
class Image:
    prompt: str
    include_person: bool


@dataclass(frozen=True)
class Reply:
    clauses: tuple[Clause, ...]
    image: Image | None

    @property
    def text(self) -> str:
        """What the user reads: the clauses without tags."""
        return "".join(c.text for c in self.clauses)

    @property
    def char_limit(self) -> int:
        return MAX_CHARS_WITH_IMAGE if self.image else MAX_CHARS

    def render(self) -> str:
        body = "".join(f"{c.text}<emotion>{c.emotion}</emotion>" for c in self.clauses)
        if self.image:
            person = "true" if self.image.include_person else "false"
            body += f"<img><prompt>{self.image.prompt}</prompt><includePerson>{person}</includePerson></img>"
        return body


def parse_reply(raw: str) -> Reply:
    """Parse a reply or raise ReplyFormatError saying what is wrong and where."""
    text = raw.strip()
    if not text:
        raise ReplyFormatError("empty reply")
    image = None
    if match := _IMAGE.search(text):
        image = Image(prompt=match.group(1).strip(), include_person=match.group(2) == "true")
        text = text[: match.start()].rstrip()
    elif "<img" in text or "<prompt>" in text:
        raise ReplyFormatError(
            "malformed <img> tag (expected "
            "<img><prompt>…</prompt><includePerson>true|false</includePerson></img> at the end)"
        )
    clauses: list[Clause] = []
    pos = 0
    for match in _CLAUSE.finditer(text):
        if match.start() != pos:
            raise ReplyFormatError(f"unexpected text at offset {pos}: {text[pos : match.start()][:30]!r}")
        label = match.group(2).lower()
        if label not in EMOTIONS:
            raise ReplyFormatError(f"unknown emotion label {label!r}; expected one of {list(EMOTIONS)}")
        clause_text = match.group(1).strip()
        if clause_text:
            clauses.append(Clause(clause_text, label))
        pos = match.end()
    if pos != len(text):
        raise ReplyFormatError(f"text without an <emotion> label at offset {pos}: {text[pos:][:30]!r}")
    if not clauses:
        raise ReplyFormatError("no clause with text")
    return Reply(tuple(clauses), image)
