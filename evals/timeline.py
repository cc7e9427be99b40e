"""Scoring rules for dated question sets (``shared/bench/timeline/README.md``).

A question may carry an ``as_of`` date ("today" for it: later articles must be ignored and never
cited) and a ``kind``. A ``disagreement`` answer must contain every gold string (both outlets'
figures), not one of them. Accuracy is also reported per kind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from evals import metrics as m
from newsdesk.models import Answer

#: kinds whose gold answers must all appear in the answer (they are not alternatives)
ALL_REQUIRED = frozenset({"disagreement"})


def matches(text: str, answers: Sequence[str], kind: str | None) -> str | None:
    """The gold answer(s) ``text`` contains under the rules of ``kind`` (None when it fails)."""
    if kind in ALL_REQUIRED:
        found = [gold for gold in answers if m.matches_gold(text, [gold])]
        return " + ".join(found) if found and len(found) == len(answers) else None
    return m.matches_gold(text, answers)


def cited_after(answer: Answer, as_of: date | None) -> list[str]:
    """One problem per citation of an article published after ``as_of``."""
    if as_of is None:
        return []
    return [
        f"cites [{c.number}] {c.article_id}, published {c.published} after as_of {as_of}"
        for c in answer.citations
        if c.published is not None and c.published > as_of
    ]


def accuracy_by_kind(rows: Iterable[Any]) -> dict[str, float | None]:
    """Share of questions passed on the answer per kind: answerable ones correct, unanswerable abstained."""
    total: dict[str, int] = defaultdict(int)
    good: dict[str, int] = defaultdict(int)
    for row in rows:
        kind = getattr(row, "kind", None)
        if not kind:
            continue
        total[kind] += 1
        ok = bool(row.correct) if row.answerable else row.abstained
        ok = ok and not any(f.startswith("cites [") for f in row.failures)
        good[kind] += int(ok)
    return {kind: m.ratio(good[kind], total[kind]) for kind in sorted(total)}


def overall_accuracy(rows: Sequence[Any]) -> float | None:
    """Share of all questions passed on the answer (answerable correct, unanswerable abstained)."""
    if not rows:
        return None
    ok = sum(
        (bool(r.correct) if r.answerable else r.abstained) and not any(f.startswith("cites [") for f in r.failures)
        for r in rows
    )
    return m.ratio(ok, len(rows))
