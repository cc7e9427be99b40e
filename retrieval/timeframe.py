"""Relative time in questions ("yesterday", "last week", "in March") as a window on ``published``.

A question is read against an as-of date ("today" for it). Phrases are found by pattern and resolved
with calendar arithmetic from python-dateutil (weeks run Monday to Sunday, "on Tuesday" is the most
recent Tuesday before the as-of date, "this month" is the as-of date's calendar month) and explicit
dates after "since", "after", "before", "until" or "as of" ("since March 4", "as of 12 March") with
dateparser, relative to the as-of date and preferring the past. A bare date ("if the election is on
5 May", "the 7 July bombings") names an event, not when it was reported, and is left to ranking.
Every window found is intersected; a day named by a weekday or "yesterday" also admits the next day's
reports of it. A phrase naming an event rather than a date ("since the election") is resolved, when a
searcher is given, to the date of the earliest article among the best matches that names the event;
otherwise it is reported as unresolved and not applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from dateutil.relativedelta import FR, MO, SA, SU, TH, TU, WE, relativedelta

from newsdesk.dates import MONTH, MONTHS
from retrieval.base import SearchFilters

_WEEKDAYS = {"monday": MO, "tuesday": TU, "wednesday": WE, "thursday": TH, "friday": FR, "saturday": SA,
             "sunday": SU}
_MONTHS = list(MONTHS)
_MON = MONTH
_EXPLICIT = re.compile(
    rf"\b(?:{_MON}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MON}\b"
    rf"(?:,?\s+\d{{4}})?|\d{{4}}-\d{{2}}-\d{{2}})",
    re.I,
)
_BOUND = re.compile(r"\b(since|after|before|until|till|as of)\s+$", re.I)
_IN_MONTH = re.compile(rf"\b(?:in|during|throughout)\s+(?:early\s+|late\s+|mid-?)?({'|'.join(_MONTHS)})\b"
                       r"(?:\s+(\d{4}))?", re.I)
_WEEKDAY = re.compile(rf"\b(?:on|last|this past)\s+({'|'.join(_WEEKDAYS)})\b", re.I)
_RELATIVE = re.compile(
    r"\b(today|yesterday|(?:this|last|previous|past)\s+(?:week|month|year)|"
    r"(?:in\s+the\s+|over\s+the\s+)?(?:past|last)\s+(\d+|two|three|four|five|six|seven|ten)\s+(days|weeks|months))\b",
    re.I,
)
_SINCE_EVENT = re.compile(r"\bsince\s+the\s+([a-z]+(?:\s+[a-z]+)?)\b", re.I)
_COUNTS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "ten": 10}


@dataclass(frozen=True)
class Window:
    """A date window on ``published`` (either end open) and the phrases it came from."""

    since: date | None
    until: date | None
    phrases: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        """The form shown in ``Answer.metadata["time_window"]``."""
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "phrases": list(self.phrases),
            **({"unresolved": list(self.unresolved)} if self.unresolved else {}),
        }


def _day(d: date, as_of: date) -> tuple[date, date]:
    """An event's day and the day after (when it is reported), never past the as-of date."""
    return d, min(d + timedelta(days=1), max(d, as_of))


def _month(year: int, month: int) -> tuple[date, date]:
    first = date(year, month, 1)
    return first, first + relativedelta(months=1) - timedelta(days=1)


@lru_cache(maxsize=256)
def _parse_explicit(text: str, as_of: date) -> date | None:
    import dateparser

    parsed = dateparser.parse(
        text.replace(" of ", " "), languages=["en"],
        settings={"RELATIVE_BASE": datetime(as_of.year, as_of.month, as_of.day), "PREFER_DATES_FROM": "past",
                  "REQUIRE_PARTS": ["day", "month"]},
    )
    return parsed.date() if parsed else None


def _relative(phrase: str, count: str | None, unit: str | None, as_of: date) -> tuple[date, date]:
    p = " ".join(phrase.lower().split())
    if p == "today":
        return as_of, as_of
    if p == "yesterday":
        return _day(as_of - timedelta(days=1), as_of)
    if count:
        n = int(count) if count.isdigit() else _COUNTS[count.lower()]
        delta = {"days": relativedelta(days=n), "weeks": relativedelta(weeks=n), "months": relativedelta(months=n)}
        return as_of - delta[unit.lower()], as_of
    which, unit = p.split()[-2:]
    monday = as_of + relativedelta(weekday=MO(-1))
    if unit == "week":
        if which == "this":
            return monday, as_of
        if which == "past":
            return as_of - timedelta(days=7), as_of
        return monday - timedelta(days=7), monday - timedelta(days=1)
    if unit == "month":
        if which == "this":
            return as_of.replace(day=1), as_of
        if which == "past":
            return as_of - relativedelta(months=1), as_of
        previous = as_of.replace(day=1) - timedelta(days=1)
        return _month(previous.year, previous.month)
    if which == "this":
        return date(as_of.year, 1, 1), as_of
    if which == "past":
        return as_of - relativedelta(years=1), as_of
    return date(as_of.year - 1, 1, 1), date(as_of.year - 1, 12, 31)


def find_window(question: str, as_of: date) -> Window | None:
    """The publication window a question's time phrases ask for, resolved against ``as_of`` (or None).

    Args:
        question: the question as asked.
        as_of: "today" for the question.

    Returns:
        The intersection of every window found (``until`` never after ``as_of``), or None when the
        question names no time, or only phrases that cannot be resolved to dates.
    """
    spans: list[tuple[date | None, date | None]] = []
    phrases: list[str] = []
    for m in _EXPLICIT.finditer(question):
        bound = _BOUND.search(question[: m.start()])
        if not bound:  # a bare date names an event ("if the election is on 5 May"), not when it was reported
            continue
        found = _parse_explicit(m.group(0), as_of)
        if found is None:
            continue
        phrases.append(bound.group(0) + m.group(0))
        spans.append((found, None) if bound.group(1).lower() in ("since", "after") else (None, found))
    for m in _IN_MONTH.finditer(question):
        month = _MONTHS.index(m.group(1).lower()) + 1
        year = int(m.group(2)) if m.group(2) else (as_of.year if month <= as_of.month else as_of.year - 1)
        spans.append(_month(year, month))
        phrases.append(m.group(0))
    for m in _WEEKDAY.finditer(question):
        day = as_of - timedelta(days=1) + relativedelta(weekday=_WEEKDAYS[m.group(1).lower()](-1))
        spans.append(_day(day, as_of))
        phrases.append(m.group(0))
    for m in _RELATIVE.finditer(question):
        spans.append(_relative(m.group(1), m.group(2), m.group(3), as_of))
        phrases.append(m.group(0))
    unresolved = tuple(m.group(0) for m in _SINCE_EVENT.finditer(question))
    if not spans:
        return Window(None, None, (), unresolved) if unresolved else None
    since = max((s for s, _ in spans if s is not None), default=None)
    until = min((u for _, u in spans if u is not None), default=None)
    if since and until and since > until:  # phrases that cannot all hold: keep the first one alone
        since, until = spans[0]
    until = min(until, as_of) if until else as_of
    return Window(since, until, tuple(phrases), unresolved)


def event_date(searcher: Any, event: str, question: str, filters: SearchFilters, k: int = 10) -> date | None:
    """When an event named in a question ("since the election") was first reported, or None.

    The question (the event's words first) is searched up to the as-of date; of the best passages that
    name the event's last word, the earliest publication date is the event's. None when no passage
    names it or none is dated.
    """
    from retrieval.lexical import STOPWORDS

    words = [w for w in event.split() if w.lower() not in STOPWORDS] or event.split()
    head = words[-1].lower()
    passages = searcher.search(f"{event} {question}", k=k, filters=filters)
    dated = [p.published for p in passages if p.published and re.search(rf"\b{re.escape(head)}", p.text, re.I)]
    return min(dated) if dated else None


def narrow(question: str, filters: SearchFilters | None, as_of: date | None = None, searcher: Any = None
           ) -> tuple[SearchFilters, Window | None]:
    """``filters`` with the question's time window applied (and its as-of date kept).

    The window only narrows what the caller asked for: an explicit ``--since`` / ``--until`` still holds.

    Args:
        question: the question.
        filters: the caller's filters; their ``as_of`` wins over ``as_of``.
        as_of: the default as-of date (the ``as_of`` setting); None: today.
        searcher: when given, "since the <event>" is resolved to the event's first report
            (:func:`event_date`); otherwise such phrases stay unresolved.
    """
    filters = filters or SearchFilters()
    if filters.as_of is None and as_of is not None:
        filters = SearchFilters(**{**filters.model_dump(), "as_of": as_of})
    as_of = filters.today()
    window = find_window(question, as_of)
    if window is not None and window.unresolved and searcher is not None:
        resolved = [(phrase, event_date(searcher, phrase.split(None, 2)[-1], question, filters))
                    for phrase in window.unresolved]
        found = [(phrase, day) for phrase, day in resolved if day is not None]
        if found:
            since = max([day for _, day in found] + ([window.since] if window.since else []))
            window = Window(since, window.until or as_of, (*window.phrases, *(p for p, _ in found)),
                            tuple(p for p, day in resolved if day is None))
    if window is None or (window.since is None and window.until is None):
        return filters, window
    since = max(d for d in (filters.since, window.since) if d) if (filters.since or window.since) else None
    until = min(d for d in (filters.until, window.until, as_of) if d)
    return SearchFilters(sources=filters.sources, article_ids=filters.article_ids, since=since, until=until,
                         as_of=filters.as_of), window
