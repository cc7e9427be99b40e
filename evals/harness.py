"""Runs an evaluation dataset through an answerer and scores every question.

The dataset layout and the metric definitions are those of ``shared/eval/README.md``. Questions go through
the same answerer the CLI and the bot use; retrieval is measured on the searcher's own ranking
(``search(question, k=max(k, 10))``); citations are checked against the store's full article texts and
judged for support by a pluggable :class:`evals.judge.SupportJudge`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, computed_field

from evals import metrics as m
from evals import timeline
from evals.jsonl import read_jsonl
from evals.judge import SupportJudge
from newsdesk.errors import UsageError
from newsdesk.models import Answer
from retrieval.base import SearchFilters
from retrieval.timeframe import narrow

Progress = Callable[[int, int, str], None]  # (done, total, question id)

#: Keys of the overall metrics, in the order they are shown (and the ``--json`` output's keys).
METRIC_KEYS = (
    "n",
    "answer_accuracy",
    "strict_answer_accuracy",
    "short_coverage",
    "short_precision",
    "hit_at_k",
    "mrr_at_10",
    "citation_validity",
    "citation_precision",
    "citation_recall",
    "abstention_precision",
    "abstention_recall",
    "latency_p50_ms",
    "latency_p95_ms",
)
#: Per-kind keys added when the questions have a ``kind`` (timeline sets, evals/timeline.py).
TIMELINE_KEYS = ("accuracy", "accuracy_by_kind")
MRR_CUTOFF = 10
WARMUP_QUESTION = "What happened?"


class Evidence(BaseModel):
    """A gold passage: ``quote`` is a verbatim substring of the article ``doc`` names."""

    doc: str
    quote: str


class EvalItem(BaseModel):
    """One question of an evaluation dataset."""

    id: str
    question: str
    answerable: bool = True
    answers: list[str] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    as_of: date | None = None  # "today" for the question (timeline sets); None: answered as of now
    kind: str | None = None  # e.g. latest, change, disagreement (evals/timeline.py)


class QuestionResult(BaseModel):
    """Everything measured for one question, with the reason for each failure."""

    id: str
    question: str
    answerable: bool
    kind: str | None = None
    as_of: date | None = None
    answer: str = ""
    abstained: bool = False
    correct: bool | None = None  # answerable questions only
    strict: bool | None = None  # answerable questions only: the first statement holds a gold answer
    short: str | None = None  # the short answer shown, if any
    short_correct: bool | None = None  # answerable questions with a short answer only
    matched: str | None = None  # the gold answer the answer contains
    hit: bool | None = None  # answerable questions with evidence only
    rank: int | None = None  # of the first passage holding a gold quote, within the top 10
    citations: int = 0
    citation_valid: bool | None = None  # answers that cite something only
    sentences: int = 0
    sentences_supported: int = 0
    citations_judged: int = 0
    citations_precise: int = 0
    latency_ms: float = 0.0
    timings: dict[str, float] = Field(default_factory=dict)  # the answerer's own per-stage timings
    failures: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        """True when nothing failed for this question."""
        return not self.failures


class EvalResult(BaseModel):
    """Overall metrics and per-question rows of one run."""

    metrics: dict[str, Any]
    questions: list[QuestionResult]
    k: int
    judge: str
    answerer: str = ""
    dataset: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object: the overall metrics' keys and ``questions``."""
        return {
            **{key: self.metrics.get(key) for key in METRIC_KEYS},
            **{key: self.metrics[key] for key in TIMELINE_KEYS if key in self.metrics},
            "questions": [q.model_dump() for q in self.questions],
        }


def load_dataset(path: Path) -> list[EvalItem]:
    """Read a dataset in the layout of ``shared/eval/README.md`` (one JSON object a line).

    Raises:
        UsageError: the file is missing, a line is malformed, or an id repeats.

    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such dataset: {path}")
    items: list[EvalItem] = []
    seen: set[str] = set()
    for number, raw in read_jsonl(path):
        try:
            item = EvalItem.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise UsageError(f"{path}:{number}: {where}: {first['msg']}") from None
        if item.id in seen:
            raise UsageError(f"{path}:{number}: id {item.id!r} appears twice")
        if item.answerable and not item.answers:
            raise UsageError(f"{path}:{number}: answerable question {item.id!r} has no answers")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise UsageError(f"{path} holds no questions")
    return items


def _judge_answer(answer: Answer, judge: SupportJudge) -> list[m.SentenceSupport]:
    quotes = {c.number: c.quote for c in answer.citations}
    sentences = [(m.strip_markers(s.text), s.citations) for s in answer.sentences]
    if not sentences and answer.text.strip():  # an answer without sentence structure: one sentence
        sentences = [(m.strip_markers(answer.text), m.markers(answer.text))]
    return m.alce_support(sentences, quotes, judge.supports)


def evaluate_one(
    item: EvalItem, *, answerer: Any, searcher: Any, store: Any, judge: SupportJudge, k: int
) -> tuple[QuestionResult, list[m.SentenceSupport]]:
    """Answer and score one question; an error raised by the answerer becomes a failure, not a crash."""
    row = QuestionResult(id=item.id, question=item.question, answerable=item.answerable, kind=item.kind,
                         as_of=item.as_of)
    # --- time (issue 11): the question's as-of date and time window apply to retrieval as well ---
    filters, _ = narrow(item.question, SearchFilters(as_of=item.as_of) if item.as_of else None, searcher=searcher)
    if item.answerable and item.evidence:
        passages = searcher.search(item.question, k=max(k, MRR_CUTOFF), filters=filters)
        row.rank = m.first_hit_rank([p.text for p in passages[:MRR_CUTOFF]], [e.quote for e in item.evidence])
        row.hit = m.hit_at_k(row.rank, k)
        if not row.hit:
            where = f"first at rank {row.rank}" if row.rank else f"none in the top {MRR_CUTOFF}"
            row.failures.append(f"retrieval miss: no gold quote in the top {k} ({where})")
    started = time.perf_counter()
    try:
        answer = answerer.answer(item.question, k=k, filters=SearchFilters(as_of=item.as_of) if item.as_of else None)
    except Exception as exc:  # noqa: BLE001 - one failing question must not stop the run
        row.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        row.failures.append(f"answerer error: {type(exc).__name__}: {exc}")
        row.correct = False if item.answerable else None
        return row, []
    row.latency_ms = round((time.perf_counter() - started) * 1000, 2)
    row.answer, row.abstained, row.citations = answer.text, answer.abstained, len(answer.citations)
    if answer.short:
        row.answer = f"{answer.short} | {answer.text}"
    row.timings = dict(answer.timings)

    if item.answerable:
        row.matched = None if answer.abstained else timeline.matches(m.answer_text(answer), item.answers, item.kind)
        row.correct = row.matched is not None
        row.strict = not answer.abstained and m.matches_gold(m.first_statement(answer), item.answers) is not None
        if answer.short and not answer.abstained:
            row.short = answer.short
            row.short_correct = m.matches_gold(answer.short, item.answers) is not None
        if answer.abstained:
            row.failures.append("abstained on an answerable question")
        elif not row.correct:
            row.failures.append(f"wrong answer: contains none of {item.answers}")
    elif not answer.abstained:
        row.failures.append("answered an unanswerable question")

    row.failures.extend(timeline.cited_after(answer, item.as_of))
    if m.has_citations(answer):
        texts = store.article_texts(sorted({c.article_id for c in answer.citations}))
        problems = m.citation_problems(answer, texts)
        row.citation_valid = not problems
        row.failures.extend(f"invalid citation: {p}" for p in problems)
    if answer.abstained:
        if answer.citations:
            row.failures.append(f"abstained but cites {len(answer.citations)} source(s)")
        return row, []

    verdicts = _judge_answer(answer, judge)
    row.sentences = len(verdicts)
    row.sentences_supported = sum(v.supported for v in verdicts)
    row.citations_judged = sum(len(v.citations) for v in verdicts)
    row.citations_precise = sum(len(v.needed) for v in verdicts)
    for v in verdicts:
        if not v.citations:
            row.failures.append(f"sentence {v.index + 1} cites nothing")
        elif not v.supported:
            row.failures.append(f"sentence {v.index + 1} not supported by its citations {v.citations}")
        for number in v.irrelevant:
            row.failures.append(f"citation [{number}] of sentence {v.index + 1} is irrelevant")
    return row, verdicts


def aggregate(rows: Sequence[QuestionResult], verdicts: Sequence[m.SentenceSupport]) -> dict[str, Any]:
    """The overall metrics of a run from its per-question rows and all sentence verdicts."""
    answerable = [r for r in rows if r.answerable]
    retrieval = [r for r in answerable if r.hit is not None]
    cited = [r for r in rows if r.citation_valid is not None]
    abstain_precision, abstain_recall = m.abstention_scores(
        [r.abstained for r in rows], [r.answerable for r in rows]
    )
    latencies = [r.latency_ms for r in rows]
    p50, p95 = m.percentile(latencies, 50), m.percentile(latencies, 95)
    return {
        "n": len(rows),
        "answer_accuracy": m.ratio(sum(bool(r.correct) for r in answerable), len(answerable)),
        "strict_answer_accuracy": m.ratio(sum(bool(r.strict) for r in answerable), len(answerable)),
        "short_coverage": m.ratio(sum(r.short_correct is not None for r in answerable), len(answerable)),
        "short_precision": m.ratio(
            sum(bool(r.short_correct) for r in answerable), sum(r.short_correct is not None for r in answerable)
        ),
        "hit_at_k": m.ratio(sum(bool(r.hit) for r in retrieval), len(retrieval)),
        "mrr_at_10": m.ratio(sum(m.reciprocal_rank(r.rank, MRR_CUTOFF) for r in retrieval), len(retrieval)),
        "citation_validity": m.ratio(sum(bool(r.citation_valid) for r in cited), len(cited)),
        "citation_precision": m.citation_precision(verdicts),
        "citation_recall": m.citation_recall(verdicts),
        "abstention_precision": abstain_precision,
        "abstention_recall": abstain_recall,
        "latency_p50_ms": round(p50, 2) if p50 is not None else None,
        "latency_p95_ms": round(p95, 2) if p95 is not None else None,
        **({"accuracy": timeline.overall_accuracy(rows), "accuracy_by_kind": timeline.accuracy_by_kind(rows)}
           if any(r.kind for r in rows) else {}),
    }


def evaluate(
    items: Sequence[EvalItem],
    *,
    answerer: Any,
    searcher: Any,
    store: Any,
    judge: SupportJudge,
    k: int = 5,
    progress: Progress | None = None,
    dataset: str = "",
    warmup: bool = True,
    as_of: date | None = None,
) -> EvalResult:
    """Run every item through ``answerer`` and score the run.

    Args:
        items: the questions.
        answerer: anything implementing :class:`retrieval.base.Answerer`.
        searcher: anything with ``search(query, k=...) -> list[Passage]`` (retrieval metrics).
        store: anything with ``article_texts(ids) -> dict[id, text]`` (citation validity).
        judge: decides whether cited passages support a sentence.
        k: passages given to the answerer, and the cut-off of hit@k.
        progress: called after each question with (done, total, id).
        dataset: a name recorded in the result.
        warmup: answer one unrelated question first, untimed, so that one-time work (building the BM25
            snapshot, first model calls) is not charged to the first question's latency.
        as_of: "today" for questions that carry no ``as_of`` of their own (None: the real today).

    """
    started = time.perf_counter()
    if warmup and items:
        try:
            answerer.answer(WARMUP_QUESTION, k=k)
        except Exception:  # noqa: BLE001, S110 - a warm-up failure shows up again on the real questions
            pass
    rows: list[QuestionResult] = []
    verdicts: list[m.SentenceSupport] = []
    for done, item in enumerate(items, start=1):
        if as_of is not None and item.as_of is None:
            item = item.model_copy(update={"as_of": as_of})
        row, judged = evaluate_one(item, answerer=answerer, searcher=searcher, store=store, judge=judge, k=k)
        rows.append(row)
        verdicts.extend(judged)
        if progress:
            progress(done, len(items), item.id)
    return EvalResult(
        metrics=aggregate(rows, verdicts),
        questions=rows,
        k=k,
        judge=judge.name,
        answerer=str(getattr(answerer, "name", type(answerer).__name__)),
        dataset=dataset,
        seconds=round(time.perf_counter() - started, 3),
    )


# --- gates -----------------------------------------------------------------------------------------------
#: command-line option -> metric key
GATES = {
    "--min-answer-accuracy": "answer_accuracy",
    "--min-strict-accuracy": "strict_answer_accuracy",
    "--min-short-precision": "short_precision",
    "--min-hit-at-k": "hit_at_k",
    "--min-citation-precision": "citation_precision",
    "--min-citation-recall": "citation_recall",
    "--min-citation-validity": "citation_validity",
    "--min-abstention-recall": "abstention_recall",
    "--min-abstention-precision": "abstention_precision",
}


def check_gates(metrics: dict[str, Any], minimums: dict[str, float | None]) -> list[str]:
    """One message per gate (metric key -> minimum) that the run falls short of.

    A metric that could not be measured (no question it applies to) fails its gate: it was not shown.
    """
    option = {key: flag for flag, key in GATES.items()}
    failed = []
    for key, minimum in minimums.items():
        if minimum is None:
            continue
        value = metrics.get(key)
        flag = option.get(key, key)
        if value is None:
            failed.append(f"{key} is n/a (no question it applies to), gate {flag} {minimum:g}")
        elif value + 1e-12 < minimum:
            failed.append(f"{key} {value:.3f} is below {flag} {minimum:g}")
    return failed
