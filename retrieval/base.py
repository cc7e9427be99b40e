"""Interfaces shared by the retrievers, the answerers and their callers (CLI, bot, evals)."""

from __future__ import annotations

from datetime import date
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field, model_validator

from newsdesk.models import Answer


class SearchFilters(BaseModel):
    """Structured filters; turned into Chroma ``where`` dicts, never into strings."""

    sources: list[str] = Field(default_factory=list)
    article_ids: list[str] = Field(default_factory=list)
    since: date | None = None
    until: date | None = None
    #: "today" for this question: later articles are ignored (``until`` is clamped to it) and relative
    #: phrases ("last week") are resolved against it (:mod:`retrieval.timeframe`). None: the real today.
    as_of: date | None = None

    @model_validator(mode="after")
    def _clamp_to_as_of(self) -> SearchFilters:
        if self.as_of is not None and (self.until is None or self.until > self.as_of):
            self.until = self.as_of
        return self

    def is_empty(self) -> bool:
        """True when no filter is set."""
        return not (self.sources or self.article_ids or self.since or self.until)

    def today(self) -> date:
        """The as-of date, or today's date when none is set."""
        return self.as_of or date.today()


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
