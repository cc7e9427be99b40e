"""Hybrid search: dense (Chroma) and BM25 over the same chunks, fused by reciprocal rank."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.embedding import Embedder
from ingest.store import PENDING, Store, passage_from, published_ord
from newsdesk.models import Passage
from newsdesk.settings import Settings
from retrieval.answer_types import answer_support, expected_type, stated_answers
from retrieval.base import SearchFilters
from retrieval.fusion import reciprocal_rank_fusion
from retrieval.lexical import BM25Index, index_key, tokenize
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


@dataclass
class LexicalSnapshot:
    """BM25 over every chunk in the store at one generation, with arrays for filtering."""

    generation: int
    count: int
    ids: list[str]
    texts: list[str]
    metas: list[dict[str, Any]]
    index: BM25Index
    article_ids: np.ndarray
    sources: np.ndarray
    published: np.ndarray

    @classmethod
    def build(cls, store: Store) -> LexicalSnapshot:
        """Read every chunk from the store and index it."""
        generation = store.generation()
        ids, texts, metas = [], [], []
        for chunk_id, text, meta in store.iter_chunks():
            ids.append(chunk_id)
            texts.append(text)
            metas.append(meta)
        return cls._assemble(generation, ids, texts, metas, BM25Index(texts))

    @classmethod
    def _assemble(
        cls, generation: int, ids: list[str], texts: list[str], metas: list[dict[str, Any]], index: BM25Index
    ) -> LexicalSnapshot:
        return cls(
            generation=generation,
            count=len(ids),
            ids=ids,
            texts=texts,
            metas=metas,
            index=index,
            article_ids=np.array([m["article_id"] for m in metas], dtype=object),
            sources=np.array([m.get("source", "") for m in metas], dtype=object),
            published=np.array([int(m.get("published_ord", 0)) for m in metas], dtype=np.int64),
        )

    def save(self, directory: Path) -> None:
        """Write the snapshot under ``directory`` (JSON and ``.npy`` files: nothing is pickled)."""
        directory.mkdir(parents=True, exist_ok=True)
        chunks = {"generation": self.generation, "ids": self.ids, "texts": self.texts, "metas": self.metas}
        (directory / "chunks.json").write_text(json.dumps(chunks, ensure_ascii=False), encoding="utf-8")
        self.index.save(directory / "index")

    @classmethod
    def load(cls, directory: Path) -> LexicalSnapshot:
        """Read a snapshot written by :meth:`save`."""
        chunks = json.loads((directory / "chunks.json").read_text(encoding="utf-8"))
        index = BM25Index.load(directory / "index")
        if index.size != len(chunks["ids"]):
            listed = len(chunks["ids"])
            raise ValueError(f"{directory}: the index holds {index.size} chunks, the list {listed}")
        return cls._assemble(chunks["generation"], chunks["ids"], chunks["texts"], chunks["metas"], index)

    def mask(self, filters: SearchFilters | None) -> np.ndarray | None:
        """Boolean mask of chunks passing ``filters`` (None when unfiltered)."""
        if filters is None or filters.is_empty():
            return None
        keep = np.ones(self.count, dtype=bool)
        if filters.sources:
            keep &= np.isin(self.sources, list(filters.sources))
        if filters.article_ids:
            keep &= np.isin(self.article_ids, list(filters.article_ids))
        if filters.since:
            keep &= self.published >= published_ord(filters.since)
        if filters.until:
            keep &= self.published <= published_ord(filters.until)
        return keep


class HybridSearcher:
    """Dense plus BM25 search over the store's chunks, fused, diversified and optionally reranked.

    The BM25 index is derived from what Chroma holds and rebuilt whenever the store's generation or
    chunk count changes, whichever process wrote it. Building it means reading and tokenizing every
    chunk (seconds on a large store), so a snapshot taken of a store at rest is also saved under
    ``<data_dir>/lexical/`` and the next process (a cold ``newsdesk ask``) loads it instead.

    Args:
        store: the chunk store.
        embedder: the model the store was built with.
        settings: candidates, rrf_k, per_article_cap, top_k, reranker.
        reranker: an optional loaded ``CrossEncoder`` (overrides ``settings.reranker``).
    """

    #: how much a passage gains for containing the numbers and years the query names
    constraint_weight = 1.0
    #: how much a passage gains, as a share of its score, for stating the answer the best passages agree on
    answer_weight = 0.25
    #: how many of the best passages vote on the answer
    answer_pool = 20
    #: share of the pool's articles that must state one answer before agreement reorders the pool
    answer_quorum = 0.5

    def __init__(self, store: Store, embedder: Embedder, settings: Settings, reranker: Any = None) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.reranker = reranker
        if reranker is None and settings.reranker:
            self.reranker = load_cross_encoder(settings.reranker)
        self._snapshot: LexicalSnapshot | None = None
        self._lock = threading.Lock()
        self.last_timings: dict[str, float] = {}

    def lexical_snapshot(self) -> LexicalSnapshot:
        """Return the BM25 snapshot, rebuilt (or loaded from disk) if the store changed since it was taken."""
        generation, count = self.store.generation(), self.store.count_chunks()
        with self._lock:
            snap = self._snapshot
            if snap is None or snap.generation != generation or snap.count != count:
                snap = self._snapshot = self._load_or_build(generation, count)
            return snap

    def idf(self, token: str) -> float:
        """IDF of a tokenized term in the snapshot the latest search used (no new freshness check)."""
        return (self._snapshot or self.lexical_snapshot()).index.idf(token)

    # --- the snapshot saved on disk ------------------------------------------------------------------
    def _cache_root(self) -> Path:
        return Path(self.settings.data_dir) / "lexical"

    def _cache_name(self, generation: int, count: int) -> str:
        # the collection's id changes when it is deleted and created again, which restarts the generation
        return f"{self.store.chunks.id}-g{generation}-n{count}-{index_key()}"

    def _load_or_build(self, generation: int, count: int) -> LexicalSnapshot:
        directory = self._cache_root() / self._cache_name(generation, count)
        if directory.is_dir():
            try:
                snap = LexicalSnapshot.load(directory)
                if snap.generation == generation and snap.count == count:
                    return snap
            except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt, never fatal
                log.warning("ignoring the saved BM25 snapshot %s: %s", directory, exc)
        snap = LexicalSnapshot.build(self.store)
        if (snap.generation, snap.count) == (generation, count) and self._at_rest(generation, count):
            self._save(snap, directory)
        return snap

    def _at_rest(self, generation: int, count: int) -> bool:
        """Whether no write is under way: only such a snapshot may be reused by another process.

        A snapshot taken in the middle of an ingest can share its (generation, count) with a later
        state of the same ingest, so it is kept in memory only (the ingest's last bump replaces it).
        """
        if any(record.state == PENDING for record in self.store.records().values()):
            return False
        return (self.store.generation(), self.store.count_chunks()) == (generation, count)

    def _save(self, snap: LexicalSnapshot, directory: Path) -> None:
        """Write ``snap`` atomically (a temporary directory renamed) and drop older snapshots."""
        root = directory.parent
        try:
            root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
            try:
                snap.save(staging)
                os.rename(staging, directory)
            except Exception:
                shutil.rmtree(staging, ignore_errors=True)
                if not directory.is_dir():  # another process saving the same snapshot first is fine
                    raise
            self._prune(root, snap.generation, keep=directory)
        except Exception as exc:  # noqa: BLE001 - e.g. a read-only data dir: costs cold-start time, no more
            log.warning("cannot save the BM25 snapshot under %s: %s", root, exc)

    def _prune(self, root: Path, generation: int, keep: Path) -> None:
        """Remove this collection's snapshots up to ``generation`` (but ``keep``) and abandoned staging."""
        name = re.compile(rf"{re.escape(str(self.store.chunks.id))}-g(\d+)-")
        for path in root.iterdir():
            if path == keep:
                continue
            found = name.match(path.name)
            try:
                abandoned = path.name.startswith(".tmp-") and time.time() - path.stat().st_mtime > 3600
            except OSError:  # removed meanwhile by another process
                continue
            if (found and int(found.group(1)) <= generation) or abandoned:
                shutil.rmtree(path, ignore_errors=True)

    def dense(self, query: str, n: int, filters: SearchFilters | None = None) -> list[Passage]:
        """The ``n`` chunks nearest to ``query`` by embedding."""
        return self.store.dense_search(self.embedder.embed_query_array(query), n, filters_to_where(filters))

    def lexical(self, query: str, n: int, filters: SearchFilters | None = None) -> list[Passage]:
        """The ``n`` best chunks for ``query`` by BM25."""
        snap = self.lexical_snapshot()
        return [
            passage_from(snap.ids[i], snap.texts[i], snap.metas[i], score)
            for i, score in snap.index.search(query, n, snap.mask(filters))
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
        articles = len({p.article_id for p in pool})
        if max(map(len, backers.values()), default=0) < max(2, self.answer_quorum * articles):
            return ranked  # the pool does not agree on an answer (a story one article tells): the order stays
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
