"""Text rules every layer shares: whitespace folding and the question's limits."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from newsdesk.errors import EmptyQuestion, QuestionTooLong

if TYPE_CHECKING:
    from newsdesk.settings import Settings

_SPACE = re.compile(r"\s+")


def fold(text: str) -> str:
    """Collapse runs of whitespace (newlines included) to one space and strip."""
    return _SPACE.sub(" ", text).strip()


def validate_question(question: str, settings: Settings) -> str:
    """Strip the question and enforce the settings' limits; every front end asks through this.

    Raises:
        EmptyQuestion: nothing but whitespace.
        QuestionTooLong: longer than ``max_question_chars`` once stripped.
    """
    question = question.strip()
    if not question:
        raise EmptyQuestion("the question is empty")
    if len(question) > settings.max_question_chars:
        raise QuestionTooLong(
            f"the question is {len(question)} characters long; the limit is {settings.max_question_chars} "
            "(NEWSDESK_MAX_QUESTION_CHARS)",
            len(question), settings.max_question_chars,
        )
    return question
