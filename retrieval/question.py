"""Question analysis, done once: what the question asks for, which of its words matter, what it constrains.

A :class:`Question` is built once per question (:func:`analyze`) and handed to search and to the answerer,
so the stages agree on the expected answer type, the focus word and the constraints instead of each
re-deriving them from the raw text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from retrieval.answer_types import asks_margin, expected_type, focus_noun
from retrieval.lexical import tokenize

_WORD = re.compile(r"[\w’'-]+")
# Numbers, years, ordinals, quarters and halves a relevant passage must share ("2021", "92nd", "Q2").
_CONSTRAINT = re.compile(r"\b(?:\d[\d,.]*(?:st|nd|rd|th|s)?|q[1-4]|h[12])\b", re.I)
_EXPLAIN = re.compile(r"^\s*(?:why|how(?! (?:many|much|long|far|old)\b))\b|\bwhat (?:happened|is happening)\b", re.I)
_PERCENT = re.compile(r"\b(?:percentage|per ?cent|proportion)\b|\bwhat share of\b", re.I)
_MONEY = re.compile(
    # "pay" but not "pay rise" or "pay offer", which are as often a percentage
    r"\b(?:price|prices|priced|cost|costs|costing|paid|pays|paying|spent|spend|spending|worth|value|valued|"
    r"pay(?!\s+(?:rises?|increases?|offers?|awards?|deals?|cuts?|claims?|freeze|settlement)\b)|"
    r"salary|wages?|fees?|fined?|revenues?|profits?|sales|income|earnings|budget|bid|raised?|sum|fund|funding|"
    r"compensation|damages|bonus)\b|\bhow much (?:did|does|do|is|was|were|are|has|had|will|would|money)\b",
    re.I,
)
# A term of time: "what sentence was he given", "how long is the ban" want "18 months", not "400 customers".
_DURATION = re.compile(
    r"\bwhat (?:(?:jail|prison) )?(?:sentence|term|ban|suspension)\b"
    r"|\bhow long\b.*\b(?:jail(?:ed)?|prison|ban(?:ned)?|suspen(?:ded|sion)|sentence[ds]?|contract)\b",
    re.I,
)
_TEMPORAL = frozenset(tokenize("latest newest current currently now recent recently today yet still"))
_YES_NO = re.compile(r"^\s*(?:is|are|was|were|do|does|did|has|have|had|can|could|will|would|should)\b", re.I)


@dataclass(frozen=True)
class Question:
    """A question, analysed once.

    Attributes:
        text: the question as asked (stripped).
        query: the text to retrieve with (a follow-up borrows the previous question's words).
        tokens: stemmed, stop-word-free tokens of ``text`` (as :func:`~retrieval.lexical.tokenize` makes them).
        borrowed: tokens of ``query`` that the question itself does not have (from the previous turn).
        words: the question's lower-cased words, unstemmed (to tell which words a sentence adds).
        kind: the kind of answer asked for: "name", "time", "quantity", "place" or None.
        focus: the stemmed head word(s) of what is asked for ("compani" for "which US company"), if any.
        constraints: numbers, years, ordinals and quarters the question names.
        explanatory: a why/how question, answered by sentences, never by a short item.
        yes_no: a yes/no question ("Has either government confirmed ...?").
        unit: for a quantity, "money", "percent" or "duration" when the question says which ("what price", "how
            much did they pay", "what percentage", "what sentence"); None for counts and anything else.
        predicate: tokens of the question's lower-case words ("pay", "salari"), what it says about its
            named subject; a topical sentence names the subject, an answering one also says this.
        margin: it asks for a margin or a difference ("by how many votes"); else a contest's margin ("412
            votes ahead") is no answer to "how many votes".
    """

    text: str
    query: str
    tokens: frozenset[str]
    borrowed: frozenset[str]
    words: frozenset[str]
    kind: str | None
    focus: frozenset[str] = field(default_factory=frozenset)
    constraints: frozenset[str] = field(default_factory=frozenset)
    explanatory: bool = False
    yes_no: bool = False
    predicate: frozenset[str] = field(default_factory=frozenset)
    unit: str | None = None
    margin: bool = False

    @property
    def wants_item(self) -> bool:
        """Whether a short answer (a name, date, amount, place) can answer it."""
        return self.kind is not None and not self.explanatory and not self.yes_no


def constraints_of(text: str) -> set[str]:
    """Tokens a relevant passage must share with ``text``: numbers, years, ordinals, quarters."""
    return {m.group(0).lower().rstrip(".,") for m in _CONSTRAINT.finditer(text)}


def analyze(text: str, previous: str | None = None, *, follow_up: bool = False) -> Question:
    """Analyse ``text``; with ``follow_up``, ``previous`` (the last question) lends its words to the query."""
    text = text.strip()
    query = f"{text} {previous}" if follow_up and previous else text
    # "latest", "now", "currently" ask when, not what: recency answers them; a sentence need not say them
    tokens = frozenset(tokenize(text)) - _TEMPORAL
    kind = expected_type(text)
    noun = focus_noun(text)
    focus = frozenset(tokenize(noun)) if noun else frozenset()
    return Question(
        text=text,
        query=query,
        tokens=tokens,
        borrowed=frozenset(tokenize(query)) - tokens,
        words=frozenset(w.lower() for w in _WORD.findall(text)),
        kind=kind,
        focus=focus,
        constraints=frozenset(constraints_of(text)),
        explanatory=bool(_EXPLAIN.search(text)),
        yes_no=bool(_YES_NO.search(text)),
        predicate=_predicate(text, tokens),
        unit=_unit(text) if kind == "quantity" else None,
        margin=asks_margin(text),
    )


def _unit(text: str) -> str | None:
    """"percent", "money" or "duration" when a quantity question says which it wants, else None."""
    if _PERCENT.search(text):
        return "percent"
    if _DURATION.search(text):
        return "duration"
    if _MONEY.search(text):
        return "money"
    return None


def _predicate(text: str, tokens: frozenset[str]) -> frozenset[str]:
    """Tokens of the words written in lower case (after the first): not the names the question is about."""
    named = {t for w in _WORD.findall(text)[1:] if w[:1].isupper() for t in tokenize(w)}
    return frozenset(tokens - named)
