"""Prompt templates, one Markdown file per prompt, loaded by name.

A prompt file may hold a system part and a user part separated by a line ``<!-- user -->``; callers
fill both as :class:`string.Template` (``$name`` placeholders, ``$$`` for a literal dollar sign).
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

_NAME = re.compile(r"[a-z0-9_-]+")


@cache
def load(name: str) -> str:
    """The text of ``prompts/<name>.md``.

    Raises:
        ValueError: ``name`` is not a plain prompt name (letters, digits, ``_``, ``-``).
        FileNotFoundError: there is no such prompt.

    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a prompt name: {name!r}")
    resource = files(__name__).joinpath(f"{name}.md")
    if not resource.is_file():
        raise FileNotFoundError(f"no prompt named {name!r} (expected prompts/{name}.md)")
    return resource.read_text(encoding="utf-8")
