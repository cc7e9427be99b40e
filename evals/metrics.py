"""Pure metric functions of the evaluation harness, as defined in ``shared/eval/README.md``.

Nothing here loads a model or touches the store: the harness gathers answers, passages and article texts,
and these functions turn them into numbers. A metric whose denominator is empty is ``None`` ("n/a"), never 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from newsdesk.models import Answer
from newsdesk.text import fold

_MARKER = re.compile(r"\[(\d+)\]")

#: ``supports(premise, claim)``: does ``premise`` (cited passages, joined) support ``claim``?
SupportFn = Callable[[str, str], bool]


# --- text ------------------------------------------------------------------------------------------------
def strip_markers(text: str) -> str:
    """Remove citation markers such as ``[1]`` and fold whitespace."""
    return fold(_MARKER.sub(" ", text)).replace(" .", ".").replace(" ,", ",")


def markers(text: str) -> list[int]:
    """Citation numbers referenced by ``[n]`` markers in ``text``, in order of appearance."""
    return [int(n) for n in _MARKER.findall(text)]


# --- retrieval -------------------------------------------------------------------------------------------
def first_hit_rank(passage_texts: Sequence[str], quotes: Iterable[str]) -> int | None:
    """1-based rank of the first passage holding any gold quote (both whitespace-folded), or None."""
    gold = [fold(q) for q in quotes if fold(q)]
    if not gold:
        return None
    for rank, text in enumerate(passage_texts, start=1):
        folded = fold(text)
        if any(q in folded for q in gold):
            return rank
    return None


def hit_at_k(rank: int | None, k: int) -> bool:
    """True when the first relevant passage is within the top ``k``."""
    return rank is not None and rank <= k


def reciprocal_rank(rank: int | None, cutoff: int = 10) -> float:
    """``1/rank`` of the first relevant passage within ``cutoff``, else 0 (MRR@cutoff's term)."""
    return 1.0 / rank if rank is not None and rank <= cutoff else 0.0


# --- answers ---------------------------------------------------------------------------------------------
def answer_text(answer: Answer) -> str:
    """The answer's words without citation markers (its sentences when it has any)."""
    if answer.sentences:
        return fold(" ".join(s.text for s in answer.sentences))
    return strip_markers(answer.text)


#: how an answer that shows conflicting reports opens (it then states no single answer first)
CONFLICT_OPENING = "The articles disagree"


def first_statement(answer: Answer) -> str:
    """What a reader sees first: the short answer when there is one, else the answer's first sentence.

    An answer opening with "The articles disagree" states no single answer first (empty string).
    """
    if answer.abstained:
        return ""
    if answer.short:
        return answer.short
    if strip_markers(answer.text).startswith(CONFLICT_OPENING):
        return ""
    if answer.sentences:
        return answer.sentences[0].text
    return strip_markers(answer.text)


def matches_gold(text: str, answers: Iterable[str]) -> str | None:
    """The first gold answer contained in ``text`` (case-insensitive, whitespace folded), or None."""
    haystack = fold(text).casefold()
    for gold in answers:
        needle = fold(gold).casefold()
        if needle and needle in haystack:
            return gold
    return None


# --- citation validity -----------------------------------------------------------------------------------
def citation_problems(answer: Answer, article_texts: Mapping[str, str]) -> list[str]:
    """Why the answer's citations are invalid (empty list: valid).

    Valid means every marker (in the text and on the sentences) resolves to a listed citation, numbers are
    not listed twice, and each citation's quote is verbatim in the stored article at its stated offsets.
    """
    problems = []
    listed: dict[int, object] = {}
    for citation in answer.citations:
        if citation.number in listed:
            problems.append(f"citation [{citation.number}] is listed twice")
        listed[citation.number] = citation
    used = markers(answer.text) + [n for s in answer.sentences for n in s.citations]
    for number in dict.fromkeys(used):
        if number not in listed:
            problems.append(f"marker [{number}] has no listed source")
    for citation in answer.citations:
        text = article_texts.get(citation.article_id)
        if text is None:
            problems.append(f"[{citation.number}] cites {citation.article_id!r}, which is not in the store")
        elif not (0 <= citation.char_start < citation.char_end <= len(text)):
            problems.append(
                f"[{citation.number}] offsets {citation.char_start}:{citation.char_end} are outside "
                f"{citation.article_id} ({len(text)} chars)"
            )
        elif text[citation.char_start : citation.char_end] != citation.quote:
            problems.append(
                f"[{citation.number}] quote is not verbatim at {citation.article_id}"
                f"[{citation.char_start}:{citation.char_end}]"
            )
    return problems


def has_citations(answer: Answer) -> bool:
    """True when the answer lists a source or uses a marker."""
    return bool(answer.citations or markers(answer.text) or any(s.citations for s in answer.sentences))


# --- ALCE citation recall and precision ------------------------------------------------------------------
@dataclass
class SentenceSupport:
    """ALCE's verdicts for one answer sentence."""

    index: int
    text: str
    citations: list[int]
    supported: bool  # the cited passages, joined, support the sentence (citation recall)
    needed: list[int] = field(default_factory=list)  # citations counted as precise
    irrelevant: list[int] = field(default_factory=list)  # not supporting alone, and the others suffice


def alce_support(
    sentences: Sequence[tuple[str, Sequence[int]]],
    quotes: Mapping[int, str],
    supports: SupportFn,
) -> list[SentenceSupport]:
    """Citation recall and precision verdicts per sentence, following ALCE (Gao et al., 2023).

    * Recall: a sentence is supported when the concatenation of all its cited passages supports it; a
      sentence without citations, or citing an unlisted number, is not.
    * Precision: every citation of a supported sentence is precise, except that for a sentence with
      several citations a citation is irrelevant when it does not support the sentence alone and the
      sentence's other citations, joined, still do. Citations of an unsupported sentence are not precise.

    Args:
        sentences: (sentence text without markers, citation numbers).
        quotes: the cited passage of each citation number.
        supports: the judge, ``supports(premise, claim)``.

    """
    out = []
    for index, (text, cited) in enumerate(sentences):
        cited = list(dict.fromkeys(cited))
        if not cited or any(n not in quotes for n in cited):
            out.append(SentenceSupport(index, text, cited, supported=False))
            continue
        joined = "\n".join(quotes[n] for n in cited)
        supported = supports(joined, text)
        verdict = SentenceSupport(index, text, cited, supported=supported)
        if supported and len(cited) == 1:
            verdict.needed = list(cited)
        elif supported:
            for number in cited:
                if supports(quotes[number], text):
                    verdict.needed.append(number)
                    continue
                rest = "\n".join(quotes[n] for n in cited if n != number)
                (verdict.irrelevant if supports(rest, text) else verdict.needed).append(number)
        out.append(verdict)
    return out


def citation_recall(verdicts: Iterable[SentenceSupport]) -> float | None:
    """Share of sentences whose cited passages, together, support them (pooled over all answers)."""
    verdicts = list(verdicts)
    return ratio(sum(v.supported for v in verdicts), len(verdicts))


def citation_precision(verdicts: Iterable[SentenceSupport]) -> float | None:
    """Share of citations that are precise (pooled over all sentences of all answers)."""
    verdicts = list(verdicts)
    return ratio(sum(len(v.needed) for v in verdicts), sum(len(v.citations) for v in verdicts))


# --- abstention ------------------------------------------------------------------------------------------
def abstention_scores(
    abstained: Sequence[bool], answerable: Sequence[bool]
) -> tuple[float | None, float | None]:
    """Precision and recall of abstaining, where the positives are the unanswerable questions."""
    true_pos = sum(a and not ok for a, ok in zip(abstained, answerable, strict=True))
    return ratio(true_pos, sum(abstained)), ratio(true_pos, sum(not ok for ok in answerable))


# --- aggregates ------------------------------------------------------------------------------------------
def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when the denominator is 0."""
    return numerator / denominator if denominator else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation between order statistics (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def binary_scores(predicted: Sequence[bool], gold: Sequence[bool]) -> dict[str, float]:
    """Precision, recall and F1 of the positive class, and macro-F1 over both classes."""

    def prf(pred: Sequence[bool], true: Sequence[bool]) -> tuple[float, float, float]:
        tp = sum(p and t for p, t in zip(pred, true, strict=True))
        precision = tp / sum(pred) if sum(pred) else 0.0
        recall = tp / sum(true) if sum(true) else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    precision, recall, f1_pos = prf(predicted, gold)
    _, _, f1_neg = prf([not p for p in predicted], [not g for g in gold])
    accuracy = sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold) if gold else 0.0
    return {
        "macro_f1": (f1_pos + f1_neg) / 2,
        "precision": precision,
        "recall": recall,
        "f1": f1_pos,
        "accuracy": accuracy,
    }
