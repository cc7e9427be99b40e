"""The shared text rules (newsdesk/text.py, newsdesk/dates.py): one home each, used by every front end."""

from __future__ import annotations

import re

import pytest

from newsdesk.dates import MONTH, MONTH_CAPITALISED
from newsdesk.errors import EmptyQuestion, QuestionTooLong, UsageError
from newsdesk.settings import Settings
from newsdesk.text import fold, validate_question


def test_fold_collapses_every_kind_of_whitespace() -> None:
    assert fold("  a\n\tb\u00a0 c\u2003 ") == "a b c"
    assert fold("") == ""


def test_questions_are_measured_stripped() -> None:
    settings = Settings(max_question_chars=10)
    assert validate_question("   ten chars!   ", settings) == "ten chars!"
    with pytest.raises(QuestionTooLong) as too_long:
        validate_question("eleven chars", settings)
    assert (too_long.value.length, too_long.value.limit) == (12, 10)
    assert "NEWSDESK_MAX_QUESTION_CHARS" in str(too_long.value)
    with pytest.raises(EmptyQuestion, match="the question is empty"):
        validate_question(" \n\t", settings)
    assert issubclass(EmptyQuestion, UsageError) and issubclass(QuestionTooLong, UsageError)


@pytest.mark.parametrize("month", ["January", "Jan", "May", "June", "Jun", "Sept", "Sep", "September", "Dec"])
def test_month_patterns(month: str) -> None:
    assert re.fullmatch(MONTH, month, re.IGNORECASE)
    assert re.fullmatch(MONTH_CAPITALISED, month)
    assert not re.fullmatch(MONTH_CAPITALISED, month.lower())  # "may" the verb is not a month here


def test_month_patterns_match_no_partial_names() -> None:
    for word in ("Ma", "Janu", "Septe", "Octob", "Mays"):
        assert not re.fullmatch(MONTH_CAPITALISED, word) and not re.fullmatch(MONTH, word, re.IGNORECASE)
