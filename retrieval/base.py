"""Interfaces shared by the retrievers, the answerers and their callers (CLI, bot, evals)."""

from __future__ import annotations

from datetime import date
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

from newsdesk.models import Answer


class SearchFilters(BaseModel):
    """Structured filters; turned into Chroma ``where`` dicts, never into strings."""

    sources: list[str] = Field(default_factory=list)
    article_ids: list[str] = Field(default_factory=list)
    since: date | None = None
    until: date | None = None

    def is_empty(self) -> bool:
        """True when no filter is set."""
        return not (self.sources or self.article_ids or self.since or self.until)


class Turn(BaseModel):
    """One earlier exchange of a conversation (a chat REPL or a Discord thread)."""

    question: str
    answer: str = ""


@runtime_checkable
class Answerer(Protocol):
    """Anything that turns a question into an :class:`Answer` with checked citations."""

    name: str

    def answer(
        self,
        question: str,
        *,
        history: list[Turn] | None = None,
        filters: SearchFilters | None = None,
        k: int | None = None,
    ) -> Answer:
        """Answer ``question``; ``history`` holds earlier turns, oldest first."""
        ...
