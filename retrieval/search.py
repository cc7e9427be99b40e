"""Hybrid search: dense (Chroma) and BM25 over the same chunks, fused by reciprocal rank."""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from newsdesk.embedding import Embedder
from newsdesk.models import Passage
from newsdesk.settings import Settings
from newsdesk.store import Store, passage_from, published_ord
from retrieval.answer_types import answer_support, expected_type, stated_answers
from retrieval.base import SearchFilters
from retrieval.fusion import reciprocal_rank_fusion
from retrieval.lexical import LexicalIndex, filter_sql, fts_key, tokenize
from retrieval.question import Question

log = logging.getLogger(__name__)

_CONSTRAINT = re.compile(r"\b(?:\d[\d,.]*(?:st|nd|rd|th|s)?|q[1-4]|h[12])\b", re.I)
_ORDINALS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
    "fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
).split()
_SUFFIX = {1: "st", 2: "nd", 3: "rd"}
# Spelled-out editions and periods in a passage, as the digits a question uses ("the eleventh season"
# answers "season 11", "the second quarter" answers "Q2").
_SPELLED = {
    **{word: f"{n}{_SUFFIX.get(n if n < 20 else n % 10, 'th')}" for n, word in enumerate(_ORDINALS, start=1)},
    **{f"{word} quarter": f"q{n}" for n, word in enumerate(_ORDINALS[:4], start=1)},
    **{f"{word} half": f"h{n}" for n, word in enumerate(_ORDINALS[:2], start=1)},
}
_SPELLED_RE = re.compile(rf"(?<![-‐])\b({'|'.join(sorted(_SPELLED, key=len, reverse=True))})\b", re.I)


def constraints(query: str) -> set[str]:
    """Tokens a relevant passage must share with the query: numbers, years, ordinals, quarters."""
    return {m.group(0).lower().rstrip(".,") for m in _CONSTRAINT.finditer(query)}


def _number(token: str) -> str:
    """An ordinal's number ("11th" -> "11"), so "season 11" and "the 11th season" name one edition."""
    return re.sub(r"(?<=\d)(st|nd|rd|th)$", "", token)


def constraint_share(wanted: set[str], text: str) -> float:
    """Share of ``wanted`` tokens that occur in ``text`` (1.0 when nothing is wanted)."""
    if not wanted:
        return 1.0
    spelled = {_SPELLED[m.group(0).lower()] for m in _SPELLED_RE.finditer(text)}
    found = {_number(t) for t in constraints(text) | spelled}
    return sum(1 for w in wanted if _number(w) in found) / len(wanted)


def filters_to_where(filters: SearchFilters | None) -> dict[str, Any] | None:
    """Translate filters into a Chroma ``where`` dict (structured, never a string)."""
    if filters is None or filters.is_empty():
        return None
    clauses: list[dict[str, Any]] = []
    if filters.sources:
        clauses.append({"source": {"$in": list(filters.sources)}})
    if filters.article_ids:
        clauses.append({"article_id": {"$in": list(filters.article_ids)}})
    if filters.since:
        clauses.append({"published_ord": {"$gte": published_ord(filters.since)}})
    if filters.until:
        clauses.append({"published_ord": {"$lte": published_ord(filters.until)}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def filters_to_sql(filters: SearchFilters | None) -> tuple[str, list[Any]]:
    """Translate filters into SQL conditions on the lexical index's chunk table, with their values."""
    if filters is None or filters.is_empty():
        return "", []
    return filter_sql(
        sources=list(filters.sources or ()),
        article_ids=list(filters.article_ids or ()),
        since=published_ord(filters.since) if filters.since else None,
        until=published_ord(filters.until) if filters.until else None,
    )


class HybridSearcher:
    """Dense plus BM25 search over the store's chunks, fused, diversified and optionally reranked.

    The BM25 side is a :class:`~retrieval.lexical.LexicalIndex`: SQLite FTS5 under ``<data_dir>/lexical/``,
    derived from what Chroma holds and brought up to date before each search from the store's change
    feed, whichever process wrote to the store. Catching up costs what changed; only a data dir without
    the index (or one made for another collection) reads every chunk, once.

    Args:
        store: the chunk store.
        embedder: the model the store was built with.
        settings: candidates, rrf_k, per_article_cap, top_k, reranker.
        reranker: an optional loaded ``CrossEncoder`` (overrides ``settings.reranker``).
    """

    #: how much a passage gains for containing the numbers and years the query names
    constraint_weight = 1.0
    #: how much a passage gains, as a share of its score, for stating the answer the best passages agree on
    answer_weight = 0.15
    #: how many of the best passages vote on the answer
    answer_pool = 20

    def __init__(self, store: Store, embedder: Embedder, settings: Settings, reranker: Any = None) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.reranker = reranker
        if reranker is None and settings.reranker:
            self.reranker = load_cross_encoder(settings.reranker)
        self._index: LexicalIndex | None = None
        self._lock = threading.Lock()
        self.last_timings: dict[str, float] = {}

    def lexical_snapshot(self) -> LexicalIndex:
        """Return the BM25 index, first brought up to date with the store (one small request when unchanged)."""
        index = self._lexical_index()
        index.refresh()
        return index

    def idf(self, token: str) -> float:
        """IDF of a tokenized term in the BM25 index as the latest search left it (no new freshness check)."""
        return (self._index or self.lexical_snapshot()).idf(token)

    def _lexical_index(self) -> LexicalIndex:
        with self._lock:
            if self._index is None:
                root = Path(self.settings.data_dir) / "lexical"
                path = root / f"{self.settings.collection}-{fts_key()}.sqlite3"
                try:
                    root.mkdir(parents=True, exist_ok=True)
                    try:
                        self._index = LexicalIndex(path, self.store)
                    except sqlite3.DatabaseError as exc:  # damaged: it is derived data, made again
                        if isinstance(exc, sqlite3.OperationalError):  # a full disk or a lock, not damage
                            raise
                        log.warning("rebuilding the damaged BM25 index %s: %s", path, exc)
                        for damaged in (path, *path.parent.glob(path.name + "-*")):
                            damaged.unlink(missing_ok=True)
                        self._index = LexicalIndex(path, self.store)
                except (OSError, sqlite3.Error) as exc:  # e.g. a read-only data dir: costs a rebuild per process
                    log.warning("cannot keep the BM25 index at %s (%s); using a temporary one", path, exc)
                    self._index = LexicalIndex(None, self.store)
            return self._index

    def dense(self, query: str, n: int, filters: SearchFilters | None = None) -> list[Passage]:
        """The ``n`` chunks nearest to ``query`` by embedding."""
        return self.store.dense_search(self.embedder.embed_query_array(query), n, filters_to_where(filters))

    def lexical(self, query: str, n: int, filters: SearchFilters | None = None) -> list[Passage]:
        """The ``n`` best chunks for ``query`` by BM25."""
        where, params = filters_to_sql(filters)
        return [
            passage_from(chunk_id, text, meta, score)
            for chunk_id, text, meta, score in self.lexical_snapshot().search(query, n, where, params)
        ]

    def search(
        self,
        query: str,
        k: int | None = None,
        filters: SearchFilters | None = None,
        *,
        question: Question | None = None,
    ) -> list[Passage]:
        """The ``k`` best passages for ``query``: fused, at most ``per_article_cap`` per article first.

        ``question``, when the caller analysed it already, gives the kind of answer asked for.
        """
        k = k or self.settings.top_k
        n = max(self.settings.candidates, k)
        started = time.perf_counter()
        dense = self.dense(query, n, filters)
        after_dense = time.perf_counter()
        lexical = self.lexical(query, n, filters)
        after_lexical = time.perf_counter()
        by_id = {p.chunk_id: p for p in [*lexical, *dense]}
        fused = reciprocal_rank_fusion(
            [[p.chunk_id for p in dense], [p.chunk_id for p in lexical]], k=self.settings.rrf_k
        )
        wanted = constraints(query)
        ranked = [
            by_id[cid].model_copy(
                update={"score": score * (1.0 + self.constraint_weight * constraint_share(wanted, by_id[cid].text))}
            )
            for cid, score in fused
        ]
        if wanted:  # a passage naming the year or number asked about outranks one about another
            ranked.sort(key=lambda p: -p.score)
        if (kind := question.kind if question is not None else expected_type(query)) is not None:
            ranked = self._by_answer_support(query, kind, ranked)
        if self.reranker is not None and ranked:
            ranked = self._rerank(query, ranked[: max(2 * k, 20)])
        result = diversify(ranked, k, self.settings.per_article_cap)
        self.last_timings = {
            "dense_ms": (after_dense - started) * 1000,
            "lexical_ms": (after_lexical - after_dense) * 1000,
            "search_ms": (time.perf_counter() - started) * 1000,
        }
        return result

    def _by_answer_support(self, query: str, kind: str, ranked: list[Passage]) -> list[Passage]:
        """Raise the passages that state the answer the best passages agree on (answer redundancy).

        For a question asking for a name, date, amount or place, the ``answer_pool`` best passages
        propose candidate answers (:func:`~retrieval.answer_types.stated_answers`); a passage gains
        ``answer_weight`` times the support of the best-supported candidate it states. Distractors
        about another edition or a related event seldom agree with each other on one answer. When no
        candidate is stated by two articles there is no agreement to use and the order stays.
        """
        pool = ranked[: self.answer_pool]
        stated = stated_answers([p.text for p in pool], kind, set(tokenize(query)))
        backers: dict[str, set[str]] = defaultdict(set)
        for p, keys in zip(pool, stated, strict=True):
            for key in keys:
                backers[key].add(p.article_id)
        if max(map(len, backers.values()), default=0) < 2:
            return ranked  # no answer stated by two articles (a story one article tells): the order stays
        support = answer_support(stated, [p.article_id for p in pool], [p.score for p in pool])
        boosted = [
            p.model_copy(update={
                "score": p.score * (1.0 + self.answer_weight * max((support[key] for key in keys), default=0.0))
            })
            for p, keys in zip(pool, stated, strict=True)
        ]
        return sorted(boosted, key=lambda p: -p.score) + ranked[len(pool) :]

    def _rerank(self, query: str, passages: list[Passage]) -> list[Passage]:
        scores = self.reranker.predict([(query, p.text) for p in passages], show_progress_bar=False)
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        return [passages[i].model_copy(update={"score": float(scores[i])}) for i in order]


def diversify(ranked: list[Passage], k: int, cap: int) -> list[Passage]:
    """Take ``ranked`` in order with at most ``cap`` passages per article, then fill up to ``k``."""
    chosen: list[Passage] = []
    per_article: dict[str, int] = {}
    rest: list[Passage] = []
    for passage in ranked:
        if per_article.get(passage.article_id, 0) < cap:
            chosen.append(passage)
            per_article[passage.article_id] = per_article.get(passage.article_id, 0) + 1
        else:
            rest.append(passage)
        if len(chosen) == k:
            return chosen
    return (chosen + rest)[:k]


def load_cross_encoder(name: str) -> Any:
    """Load a sentence-transformers CrossEncoder offline (a local path or a cached name)."""
    import os
    from pathlib import Path

    from newsdesk.errors import ModelUnavailable

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import CrossEncoder

    try:
        path = Path(name).expanduser()
        return CrossEncoder(str(path) if path.is_dir() else name, device="cpu", local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelUnavailable(
            f"cannot load reranker {name!r} offline ({type(exc).__name__}); set NEWSDESK_RERANKER to a local "
            "cross-encoder directory or unset it"
        ) from exc
