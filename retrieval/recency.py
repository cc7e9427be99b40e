"""Latest wins, visibly: figures that change over time, told with their dates.

News revises figures: a toll of 14 becomes 23, then 41. When the sentences that answer a question
state different values for the same slot, the answer gives the newest value with its date and outlet
and mentions the superseded one ("41, as of 12 March 2024 (Northern Wire) [1]; earlier reports said
37 [2]"). How it decides, over candidate sentences and the ``published`` dates of their articles:

- **The slot.** Each figure in a relevant sentence is scored by the sentence's relevance plus how
  close the question's words stand to it; the best figure sets the slot's kind (a count, a share in
  percent, an amount of money) and figures of that kind scoring near it fill the slot. A figure
  introduced by "from" ("rose to 23 from 14") is the old value of a change.
- **Its date.** A value dates from the first article that states it, so a background paragraph of a
  newer article restating an old figure ("put the toll at 14 ... and at 37 last Thursday") does not
  make that figure new. The newest value is the one first reported last.
- **Disagreement.** Two values first reported on the same newest day by different outlets are shown
  side by side, each with its outlet; neither wins.
- **Change.** "By how much did X rise between ..." is a difference no article states: it is computed
  from the earliest and the newest reported values in the window, both cited.

Everything quoted goes through :class:`~retrieval.citations.CitationBook` (verbatim at offsets).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from newsdesk.models import Answer, AnswerSentence
from retrieval.answer_types import asks_margin, is_margin
from retrieval.base import SearchFilters
from retrieval.citations import CitationBook, render
from retrieval.lexical import tokenize
from retrieval.question import Question
from retrieval.timeframe import Window

log = logging.getLogger(__name__)
LATEST = re.compile(r"\b(latest|current(?:ly)?|now|so far|most recent|to date|still|at present|newest)\b", re.I)
CHANGE = re.compile(
    r"\bby how (?:much|many)\b.*\b(rise|rose|risen|increase[ds]?|fall|fell|fallen|drop(?:ped)?|grow|grew|grown|"
    r"climb(?:ed)?|change[ds]?|go up|go down|raise[ds]?|cut|decline[ds]?)\b",
    re.I,
)
_MON = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_FIGURE = re.compile(
    r"(?<![\w.,£$€-])(?P<cur>[£$€]\s?)?(?P<num>\d[\d,]*(?:\.\d+)?)(?![\w-])"
    r"(?:\s?(?P<pct>%|percent\b|per cent\b))?(?:\s?(?P<mag>million|billion|bn)\b)?",
    re.I,
)
_MONEY_WORDS = frozenset({"pence", "cents", "pounds", "dollars", "euros", "p"})
_WORD = re.compile(r"\S+")


@dataclass
class Mention:
    """One figure stated in a candidate sentence."""

    cand: Any  # retrieval.answer.Candidate
    value: str  # normalised number ("41", "23.5")
    unit: str  # "count", "percent" or "money"
    score: float
    old: bool  # introduced by "from": the previous value of a change
    clause: str = ""
    same: float = 0.0  # cosine of its clause with the slot anchor's
    affirms: bool = False  # states the value as current (not "had", "earlier", "from N"...)

    @property
    def published(self) -> date | None:
        """Publication date of the sentence's article."""
        return self.cand.passage.published

    @property
    def article(self) -> str:
        """Id of the sentence's article."""
        return self.cand.passage.article_id


def _normal(number: str) -> str:
    try:
        value = Decimal(number.replace(",", ""))
    except InvalidOperation:
        return number
    text = format(value.normalize(), "f")
    return text


def mentions(cand: Any, q_weights: dict[str, float], *, margins: bool = True) -> list[Mention]:
    """The figures a sentence states, each scored by relevance and nearness to the question's words.

    Without ``margins``, a contest's margin ("412 votes ahead of") is not one of them.
    """
    text = cand.text
    words = [(m.start(), tokenize(m.group(0))) for m in _WORD.finditer(text)]
    total = sum(q_weights.values()) or 1.0
    found = []
    for m in _FIGURE.finditer(text):
        before, after = text[: m.start()], text[m.end():]
        num = m.group("num")
        if re.search(rf"\b{_MON}\s*$", before, re.I) or re.match(rf"\s+{_MON}\b", after, re.I):
            continue  # a day of a date
        if not m.group("cur") and re.fullmatch(r"(1[89]|20)\d\d", num):
            continue  # a year
        if re.match(r"\s*(?:-year-old|years? old|year|years|days?|hours?|weeks?|months?|am|pm)\b", after, re.I):
            continue
        if not margins and is_margin(text, m.start(), m.end()):
            continue
        next_word = (after.split()[:1] or [""])[0].strip(".,;:").lower()
        unit = "percent" if m.group("pct") else (
            "money" if m.group("cur") or m.group("mag") or next_word in _MONEY_WORDS else "count")
        if m.group("mag"):
            unit += "-" + m.group("mag").lower()[0]
        at = sum(1 for start, _ in words if start < m.start())
        near = 0.0
        for i, (_, toks) in enumerate(words):
            for tok in toks:
                if tok in q_weights:
                    near += q_weights[tok] / (1.0 + max(0, abs(i - at) - 1) / 2.0)
        old = bool(re.search(r"\b(?:from|up from|down from)\s+$", before, re.I))
        found.append(Mention(cand, _normal(num), unit, near / total, old, clause(cand, m.start())))
    return found


def question_mode(question: str) -> str | None:
    """"change" for a question asking how much a figure moved, "latest" for a current-value one, else None."""
    if CHANGE.search(question):
        return "change"
    if LATEST.search(question):
        return "latest"
    return None


def _fmt_date(d: date | None, as_of: date | None = None) -> str:
    """"12 March" (the year added when it is not the as-of date's, or no as-of date is given)."""
    if d is None:
        return "an undated report"
    return f"{d.day} {d.strftime('%B')}" if as_of is not None and d.year == as_of.year else \
        f"{d.day} {d.strftime('%B %Y')}"


#: a change or latest-figure question is read from dated reports when the abstention model gives it at least
#: this share of its answering threshold (the fitted model reads words; these questions seldom share them)
CHANGE_ABSTAIN_SHARE = 0.5
#: weight of the sentence's relevance in a figure's score (beside its clause's similarity and word overlap)
RELEVANCE_WEIGHT = 0.25
#: words marking a sentence as background: a figure it restates is not being reported as current
BACKGROUND = re.compile(
    r"\b(had|earlier|originally|initially|previous(?:ly)?|ago|began|at the time|on election night|"
    r"last (?:week|month|year|night|monday|tuesday|wednesday|thursday|friday|saturday|sunday))\b",
    re.I,
)
_CLAUSE_BREAK = re.compile(r"[,;:()\u2014\u2013]|\s-\s|\b(?:and|but|while|although|which)\b", re.I)


def clause(cand: Any, at: int) -> str:
    """The clause of a sentence around character ``at``, its figures masked (what the figure is about)."""
    text = cand.text
    cuts = [0, *(m.end() for m in _CLAUSE_BREAK.finditer(text) if m.end() <= at),
            len(text)]
    start = max(c for c in cuts if c <= at)
    ends = [m.start() for m in _CLAUSE_BREAK.finditer(text, at) if m.start() > at]
    end = ends[0] if ends else len(text)
    part = text[start:end]
    if len(part.split()) < 6:  # "to 282 pence a share": too short to say what it is about; add the clause before
        before = [c for c in cuts if c < start - 1]
        part = text[(max(before) if before else 0) : end]
    return _FIGURE.sub("N", part).strip()


def slot(question: str, candidates: list[Any], idf: Any, embed: Any, *, pool: int = 20, reach: float = 0.35,
         same: float = 0.6, near: float = 0.35, overlap_weight: float = 0.5) -> list[Mention]:
    """The figures of the question's slot among the most relevant candidate sentences.

    Each figure's clause (its figures masked) is embedded; the anchor is the figure whose clause and
    sentence best match the question, and the slot holds the figures of the anchor's kind whose
    clause says much the same as the anchor's (cosine >= ``same``).
    """
    if not candidates:
        return []
    best = max(c.relevance for c in candidates)
    chosen = sorted((c for c in candidates if c.relevance >= best - reach), key=lambda c: -c.relevance)[:pool]
    q_weights = {t: idf(t) for t in set(tokenize(question))}
    asked = {_normal(n) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", question)}
    margins = asks_margin(question)
    found = [m for c in chosen for m in mentions(c, q_weights, margins=margins)
             if m.value not in asked and m.published is not None]
    if not found:
        return []
    vecs = embed([question, *(m.clause for m in found)])
    q_sim = vecs[1:] @ vecs[0]
    total = sum(q_weights.values()) or 1.0
    for m, sim in zip(found, q_sim, strict=True):
        words = set(tokenize(m.clause))
        overlap = sum(w for t, w in q_weights.items() if t in words) / total
        m.score = float(sim) + RELEVANCE_WEIGHT * m.cand.relevance + overlap_weight * overlap
    anchor = max(range(len(found)), key=lambda i: found[i].score)
    same_as = vecs[1:] @ vecs[1 + anchor]
    top = found[anchor]
    for m, sim in zip(found, same_as, strict=True):
        m.same = float(sim)
    chosen_ = [m for m in found if m.unit == top.unit and m.same >= same and m.score >= top.score - near]
    values = {m.value for m in chosen_}
    # a value dates from its first mention anywhere among the candidates: restated later, it is not new;
    # restated later as current (no "had", "earlier", "last month"...), it is still the value then
    pool_ids = {id(m.cand) for m in found}
    wider = [m for c in candidates if id(c) not in pool_ids for m in mentions(c, q_weights, margins=margins)
             if m.value in values and m.published is not None]
    earlier = [m for m in [*found, *wider] if m.unit == top.unit and m.value in values and m not in chosen_]
    for m in earlier:
        m.affirms = not m.old and not BACKGROUND.search(m.cand.text)
        m.old = True  # dates the value; never the article's own figure
    for m in chosen_:
        m.affirms = not m.old and not BACKGROUND.search(m.cand.text)
    return chosen_ + earlier


@dataclass
class Timeline:
    """Values of one slot by the date they were first reported."""

    first_seen: dict[str, date]
    current: dict[str, list[Mention]]  # value -> the mentions reporting it as an article's own figure
    #: figures of another slot: first appearing in an article that still states an older value as current
    #: ("shares closed at 276 pence, below the offer price of 282 pence"), so not a revision of it
    side: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, found: list[Mention]) -> Timeline:
        """Date each value by its first mention; an article's own figure is its best one not "from"."""
        first_seen: dict[str, date] = {}
        for m in found:
            if m.value not in first_seen or m.published < first_seen[m.value]:
                first_seen[m.value] = m.published
        own: dict[str, Mention] = {}
        for m in sorted(found, key=lambda m: -m.score):  # an article's own figure: its best one not "from"
            if not m.old and m.article not in own:
                own[m.article] = m
        current: dict[str, list[Mention]] = {}
        for m in own.values():
            current.setdefault(m.value, []).append(m)
        affirmed_in: dict[str, set[str]] = {}
        for m in found:
            if m.affirms:
                affirmed_in.setdefault(m.value, set()).add(m.article)
        side = set()
        for m in found:
            if m.published != first_seen[m.value]:
                continue
            if any(other != m.value and first_seen[other] < first_seen[m.value] and m.article in articles
                   for other, articles in affirmed_in.items()):
                side.add(m.value)
        return cls(first_seen, current, side)

    def newest(self) -> list[str]:
        """Values first reported on the newest date among the reported ones (several: a disagreement)."""
        live = [v for v in self.current if v not in self.side]
        if not live:
            return []
        last = max(self.first_seen[v] for v in live)
        return sorted((v for v in live if self.first_seen[v] == last), key=lambda v: -self._weight(v))

    def earliest(self) -> str | None:
        """The value first reported earliest (figures of another slot aside)."""
        values = [v for v in self.first_seen if v not in self.side]
        return min(values, key=lambda v: self.first_seen[v]) if values else None

    def _weight(self, value: str) -> float:
        return max(m.score for m in self.current[value])

    def source(self, value: str, *, first: bool = True) -> Mention:
        """The mention to cite for ``value``: from the article that first reported it, best-scoring first."""
        pool = self.current.get(value) or []
        dated = [m for m in pool if m.published == self.first_seen[value]] or pool
        return max(dated, key=lambda m: m.score)


def _mention_of(found: list[Mention], value: str, on: date) -> Mention | None:
    dated = [m for m in found if m.value == value and m.published == on]
    return max(dated, key=lambda m: m.score) if dated else None


def _difference(old: str, new: str) -> str:
    diff = Decimal(new) - Decimal(old)
    return format(abs(diff).normalize(), "f")


def compose(question: str, found: list[Mention], mode: str | None, book: CitationBook,
            as_of: date | None = None) -> list[AnswerSentence] | None:
    """The dated answer for a slot, or None when the slot does not call for one (one value, no mode).

    Dates read "12 March", with the year when it is not ``as_of``'s (always, without ``as_of``).
    """
    line = Timeline.build(found)
    newest = line.newest()
    if not newest:
        return None
    values = set(line.first_seen) - line.side
    if mode is None and len(values) < 2:
        return None

    def cite(m: Mention) -> int | None:
        return book.cite(m.cand.passage, m.cand.start, m.cand.end, m.cand.text)

    def quote(m: Mention, number: int) -> AnswerSentence:
        return AnswerSentence(text=m.cand.text, citations=[number])

    if mode == "change":
        old = line.earliest()
        new = newest[0]
        if old is None or old == new:
            return None
        src_old = _mention_of(found, old, line.first_seen[old])
        src_new = line.source(new)
        if src_old is None:
            return None
        n_old, n_new = cite(src_old), cite(src_new)
        if n_old is None or n_new is None:
            return None
        return [
            AnswerSentence(text=f"{_difference(old, new)}: from {old} ({_fmt_date(src_old.published, as_of)}, "
                                f"{src_old.cand.passage.source})", citations=[n_old]),
            AnswerSentence(text=f"to {new} ({_fmt_date(src_new.published, as_of)}, {src_new.cand.passage.source}).",
                           citations=[n_new]),
            quote(src_old, n_old), quote(src_new, n_new),
        ]

    if len(newest) > 1:  # reported on the same newest day with different values: side by side
        sources = [line.source(v) for v in newest[:3]]
        if len({m.cand.passage.source for m in sources}) < 2:
            newest = newest[:1]
        else:
            numbers = [cite(m) for m in sources]
            if any(n is None for n in numbers):
                return None
            pairs = list(zip(sources, numbers, strict=True))
            opening = f"Reports differ as of {_fmt_date(sources[0].published, as_of)}: "
            lead = [AnswerSentence(text=(opening if i == 0 else "") + f"{m.value} ({m.cand.passage.source})"
                                   + (";" if i < len(pairs) - 1 else "."), citations=[n])
                    for i, (m, n) in enumerate(pairs)]
            return [*lead, *(quote(m, n) for m, n in pairs)]

    new = newest[0]
    src = line.source(new)
    number = cite(src)
    if number is None:
        return None
    older = sorted((v for v in line.first_seen
                    if line.first_seen[v] < line.first_seen[new] and v not in newest and v not in line.side),
                   key=lambda v: line.first_seen[v], reverse=True)
    lead = [AnswerSentence(text=f"{new}, as of {_fmt_date(src.published, as_of)} ({src.cand.passage.source}).",
                           citations=[number])]
    sentences = [quote(src, number)]
    if older:
        prev = older[0]
        src_prev = _mention_of(found, prev, line.first_seen[prev])
        n_prev = cite(src_prev) if src_prev else None
        if n_prev is not None:
            lead[0].text = lead[0].text[:-1] + ";"
            lead.append(AnswerSentence(text=f"earlier reports said {prev}.", citations=[n_prev]))
            sentences.append(quote(src_prev, n_prev))
    elif mode is None:
        return None
    return [*lead, *sentences]


def _is_quote(sentence: AnswerSentence, book: CitationBook) -> bool:
    return any(c.quote == sentence.text for c in book.citations)


def stale_note(answer: Answer, as_of: date, days: int) -> str | None:
    """A note when every article the answer cites is older than ``days`` before ``as_of``."""
    dates = [c.published for c in answer.citations if c.published is not None]
    if answer.abstained or not dates or len(dates) < len(answer.citations):
        return None
    newest = max(dates)
    if (as_of - newest).days > days:
        return f"Note: the newest article this answer cites is from {_fmt_date(newest)}, " \
               f"{(as_of - newest).days} days before {_fmt_date(as_of)}."
    return None


def revise(answer: Answer, question: Question, candidates: list[Any], filters: SearchFilters,
           window: Window | None, answerer: Any) -> Answer:
    """The answer with the latest value stated first and dated (when figures changed), plus time metadata.

    Args:
        answer: what the answerer composed.
        question: the analysed question (its text and expected kind).
        candidates: the scored candidate sentences (``relevance``, ``passage.published``).
        filters: the filters used (their ``today()`` is the as-of date).
        window: the question's time window, if any.
        answerer: the extractive answerer (its ``store`` and ``searcher.idf``).
    """
    as_of = filters.today()
    answer.metadata["as_of"] = as_of.isoformat()
    if window is not None:
        answer.metadata["time_window"] = window.to_json()
    try:
        answer = _revise(answer, question, candidates, as_of, answerer)
    except Exception:  # noqa: BLE001 - dating an answer must never lose it: keep the answer as composed
        log.exception("recency: could not date the answer to %r", question.text)
    return _with_note(answer, as_of, answerer)


def _revise(answer: Answer, q: Question, candidates: list[Any], as_of: date, answerer: Any) -> Answer:
    question = q.text
    mode = question_mode(question)
    if q.kind in ("time", "name", "place"):
        return answer
    if answer.abstained:
        # a change is stated by no sentence, and a latest figure is often worded otherwise than asked ("the
        # death toll" against "killed 31"), so neither scores high: they may still be read from dated reports
        best = answer.metadata.get("answer_probability")
        threshold = answerer.answer_threshold
        if mode is None or best is None or best < CHANGE_ABSTAIN_SHARE * threshold:
            return answer
    found = slot(question, candidates, answerer.searcher.idf, answerer._embed)
    if not found:
        return answer
    articles = sorted({m.article for m in found})
    book = CitationBook(answerer.store.article_texts(articles))
    sentences = compose(question, found, mode, book, as_of)
    if sentences:
        # the dated lead ("41, as of 12 March 2024 (Northern Wire); earlier reports said 37") heads the text;
        # the sentences are the verbatim quotes it rests on, except a computed change, which is a claim itself
        lead = [s for s in sentences if s.citations and not _is_quote(s, book)]
        quotes = [s for s in sentences if s not in lead]
        claims = sentences if mode == "change" else quotes
        answer = answer.model_copy(update={
            "text": f"{render(lead)} {render(quotes)}".strip() if mode != "change" else render(sentences),
            "sentences": claims, "citations": book.citations, "abstained": False, "related": [],
            "metadata": {**answer.metadata, "recency": mode or "revised", "lead": render(lead),
                         "values": {v: d.isoformat() for v, d in Timeline.build(found).first_seen.items()}},
        })
    return answer


def _with_note(answer: Answer, as_of: date, answerer: Any) -> Answer:
    days = getattr(answerer.settings, "stale_after_days", 30)
    note = stale_note(answer, as_of, days)
    if note:  # in the text, so every front end shows it (not a sentence: it quotes nothing)
        answer.metadata["stale"] = note
        answer.text = f"{answer.text}\n\n{note}"
    return answer
