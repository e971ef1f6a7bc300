"""Prompt templates live in `assets/prompts/*.j2` so prompt work never touches code.

Templates that show a transcript to another agent render character replies with the `seen`
filter: the words the user reads, without emotion tags or labels (a label word copied into
a user turn leaks into the next reply), and an image as "[photo]".
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from rp_pipeline.core.ids import content_hash
from rp_pipeline.core.rules import spoken_text


def seen(raw: str) -> str:
    """A reply as the user sees it in the chat: its spoken words, and "[photo]" for an image."""
    text = spoken_text(raw)
    return f"{text} [photo]" if "<img>" in raw else text


class Prompts:
    def __init__(self, prompts_dir: Path):
        self.dir = prompts_dir
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(prompts_dir)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )
        self._env.filters["seen"] = seen

    def render(self, name: str, **context: Any) -> str:
        """The template filled in; a broken template or a missing variable is an error naming
        the file (and the line of a syntax error)."""
        path = self.dir / f"{name}.j2"
        try:
            return self._env.get_template(f"{name}.j2").render(**context).strip()
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"{path}:{exc.lineno}: template syntax error: {exc.message}") from exc
        except jinja2.TemplateNotFound as exc:
            raise ValueError(f"{path}: no such prompt template") from exc
        except jinja2.UndefinedError as exc:
            raise ValueError(f"{path}: {exc.message} (a variable the template uses was not passed)") from exc

    @property
    def version(self) -> str:
        """Hash of every template: part of the code version of the stages that use them."""
        return _dir_hash(self.dir)


@lru_cache(maxsize=8)
def _dir_hash(path: Path) -> str:
    return content_hash({p.name: p.read_text(encoding="utf-8") for p in sorted(path.glob("*.j2"))}, 12)
