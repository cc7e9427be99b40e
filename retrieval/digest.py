"""Digests: the new articles of a period, syndicated and near-duplicate copies grouped, biggest first.

Near-duplicates are found with MinHash over word 5-shingles (datasketch, 128 permutations) and
locality-sensitive hashing at an estimated Jaccard similarity of ``threshold`` (0.5 by default):
candidate pairs from the LSH index are confirmed on their estimated Jaccard, then joined transitively
(union-find), so an exact copy, a lightly edited rewrite and a wire story run by two outlets end up in
one group. Each group is told as one lead sentence, quoted verbatim from its earliest article at
checked offsets (:class:`~retrieval.citations.CitationBook`), with every outlet and date of the group.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from newsdesk.models import Citation, Passage
from retrieval.citations import CitationBook

if TYPE_CHECKING:
    from newsdesk.store import Store

_WORD = re.compile(r"\w+", re.UNICODE)
SHINGLE = 5
NUM_PERM = 128
_SINCE = re.compile(r"^\s*(\d+)\s*([dwm])\s*$", re.I)


@dataclass(frozen=True)
class DigestArticle:
    """What the digest needs of an article."""

    id: str
    text: str
    title: str = ""
    source: str = ""
    published: date | None = None
    url: str = ""


@dataclass
class DigestGroup:
    """One story: its articles (earliest first) and the cited lead sentence."""

    articles: list[DigestArticle]
    lead: Citation | None = None
    outlets: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        """How many articles tell this story."""
        return len(self.articles)

    def to_json(self) -> dict[str, object]:
        """The ``--json`` form of the group."""
        return {
            "size": self.size,
            "lead": self.lead.model_dump(mode="json") if self.lead else None,
            "outlets": self.outlets,
            "articles": [{"id": a.id, "title": a.title, "source": a.source,
                          "published": a.published.isoformat() if a.published else None} for a in self.articles],
        }


def parse_since(value: str, as_of: date) -> date:
    """``7d``, ``2w``, ``1m`` (days, weeks, 30-day months) or an ISO date, as the first day of the period.

    Raises:
        ValueError: anything else.
    """
    found = _SINCE.match(value)
    if found:
        n, unit = int(found.group(1)), found.group(2).lower()
        return as_of - timedelta(days=n * {"d": 1, "w": 7, "m": 30}[unit])
    return date.fromisoformat(value.strip())


def shingles(text: str, size: int = SHINGLE) -> set[bytes]:
    """Word ``size``-grams of the lower-cased text (the whole text when it is shorter)."""
    words = _WORD.findall(text.lower())
    if len(words) < size:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


def group_near_duplicates(texts: Sequence[str], threshold: float = 0.5) -> list[list[int]]:
    """Indices of ``texts`` grouped by estimated Jaccard similarity of their shingles (MinHash LSH)."""
    from datasketch import MinHash, MinHashLSH

    sets = [shingles(t) for t in texts]
    hashes = MinHash.bulk(sets, num_perm=NUM_PERM)
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, mh in enumerate(hashes):
        if not sets[i]:
            continue
        for j in lsh.query(mh):
            if mh.jaccard(hashes[j]) >= threshold:
                parent[find(i)] = find(j)
        lsh.insert(i, mh)
    groups: dict[int, list[int]] = {}
    for i in range(len(texts)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


#: characters segmented to find the lead sentence (the whole text when its first sentences run longer)
LEAD_WINDOW = 600


def lead_span(text: str) -> tuple[int, int] | None:
    """Offsets of the first real sentence of ``text`` (a heading or dateline fragment is joined to the next).

    Only the opening ``LEAD_WINDOW`` characters are segmented (sentence splitting is what a digest of
    thousands of articles spends its time on); when the lead runs to the end of that window, the whole
    text is segmented instead, so a sentence is never cut.
    """
    from newsdesk.sentences import sentence_spans

    if len(text) > LEAD_WINDOW:
        found = _lead(sentence_spans(text[:LEAD_WINDOW]), text[:LEAD_WINDOW])
        if found and found[1] < LEAD_WINDOW - 1:
            return found
    return _lead(sentence_spans(text), text)


def _lead(spans: list, text: str) -> tuple[int, int] | None:
    for i, span in enumerate(spans):
        sentence = text[span.start : span.end]
        if len(sentence.split()) >= 6:
            return span.start, span.end
        if i + 1 < len(spans) and len(sentence.split()) < 6 and "\n" not in text[span.end : spans[i + 1].start]:
            return span.start, spans[i + 1].end
    return (spans[0].start, spans[0].end) if spans else None


def build_digest(articles: Iterable[DigestArticle], since: date, until: date, sources: Sequence[str] = (),
                 threshold: float = 0.5) -> list[DigestGroup]:
    """The period's articles grouped into stories, biggest first (then newest first).

    Args:
        articles: candidates; those published outside ``[since, until]``, undated or from other outlets
            than ``sources`` (when given) are left out.
        since: first day of the period.
        until: last day (the as-of date).
        sources: outlets to keep (all when empty).
        threshold: estimated Jaccard similarity above which two articles are copies of one story.
    """
    wanted = {s.casefold() for s in sources}
    chosen = [a for a in articles if a.published is not None and since <= a.published <= until
              and (not wanted or a.source.casefold() in wanted)]
    chosen.sort(key=lambda a: (a.published, a.id))
    book = CitationBook({a.id: a.text for a in chosen})
    groups = [DigestGroup([chosen[i] for i in sorted(members)])
              for members in group_near_duplicates([a.text for a in chosen], threshold)]
    groups.sort(key=lambda g: (-g.size, -(max(a.published for a in g.articles).toordinal()), g.articles[0].id))
    for group in groups:  # cited in the order shown, so the numbers run 1, 2, 3 down the digest
        group.outlets = sorted({a.source for a in group.articles if a.source})
        first = group.articles[0]
        span = lead_span(first.text)
        if span:
            passage = Passage(chunk_id=f"{first.id}::lead", article_id=first.id, text=first.text, char_start=0,
                              char_end=len(first.text), title=first.title, source=first.source, url=first.url,
                              published=first.published)
            number = book.cite(passage, *span)
            group.lead = book.citations[number - 1] if number else None
    return groups


def digest_groups(store: Store, since: date, until: date, sources: Sequence[str]) -> list[DigestGroup]:
    """The digest of the store's articles published in ``[since, until]``."""
    records = {r.id: r for r in store.records().values()
               if r.published is not None and since <= r.published <= until}
    texts = store.article_texts(sorted(records))
    articles = [DigestArticle(id=i, text=texts[i], title=r.title, source=r.source, published=r.published, url=r.url)
                for i, r in records.items() if i in texts]
    return build_digest(articles, since, until, sources)
