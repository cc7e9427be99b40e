"""BM25 over chunk texts, with the tokenizer shared by queries and documents.

:class:`LexicalIndex` is the store's index (SQLite FTS5 on disk, updated from the change feed);
:class:`BM25Index` (bm25s, in memory) serves fixed document lists such as the BEIR benchmarks.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import Stemmer

from newsdesk.changes import LOOKBACK, PUT, version_of
from newsdesk.store import READY

_TOKEN = re.compile(r"\w+", re.UNICODE)
# Small on purpose: question words matter less than in prose, but "not", "no" and numbers stay.
STOPWORDS = frozenset(
    """a an and are as at be been being but by can could did do does for from had has have he her his how i
    if in into is it its itself me my of on or our she should so than that the their them then there these
    they this those to too was we were what when where which while who whom why will with would you your
    about also just said says""".split()
)


# Irregular past forms the stemmer leaves alone, so "won" matches "wins" and "bought" matches "buys".
IRREGULAR = {
    "won": "win", "began": "begin", "begun": "begin", "became": "become", "bought": "buy", "brought": "bring",
    "built": "build", "chose": "choose", "chosen": "choose", "fell": "fall", "fallen": "fall", "found": "find",
    "gave": "give", "given": "give", "held": "hold", "kept": "keep", "led": "lead", "left": "leave",
    "lost": "lose", "made": "make", "met": "meet", "paid": "pay", "ran": "run", "sold": "sell",
    "sent": "send", "spent": "spend", "stood": "stand", "struck": "strike", "taken": "take", "took": "take",
    "told": "tell", "went": "go", "gone": "go", "wrote": "write", "written": "write", "killed": "kill",
}


#: Bump when the saved layout of :class:`BM25Index` changes (tokenizer changes are detected by themselves).
INDEX_VERSION = 1
_PROBE = "The 2 ministers met in 2021; Beijing's engineers were killed, sources said, and talks began."


@lru_cache(maxsize=1)
def index_key() -> str:
    """Name the tokenizer and index layout; part of the name under which a saved index is kept.

    It changes with the stop words, the irregular forms, the code of :func:`tokenize` and what it
    makes of a probe sentence (a new stemmer), so an index saved by an older tokenizer is never loaded.
    """
    parts = [str(INDEX_VERSION), " ".join(sorted(STOPWORDS)), json.dumps(IRREGULAR, sort_keys=True),
             _TOKEN.pattern, inspect.getsource(tokenize), " ".join(tokenize(_PROBE))]
    return f"bm25-v{INDEX_VERSION}-{hashlib.sha256(chr(31).join(parts).encode()).hexdigest()[:10]}"


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-word-free, stemmed word tokens; numbers are kept whole ("2021", "100")."""
    words = [IRREGULAR.get(w, w) for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS]
    return _stemmer().stemWords(words)


class BM25Index:
    """An in-memory BM25 index over a fixed list of texts.

    Args:
        texts: the documents, addressed by position.
        k1: term-frequency saturation.
        b: length normalisation.
    """

    def __init__(self, texts: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.size = len(texts)
        self._bm25 = bm25s.BM25(k1=k1, b=b)
        tokenized = [tokenize(t) for t in texts]
        self.doc_freq: Counter[str] = Counter(tok for toks in tokenized for tok in set(toks))
        if self.size:
            self._bm25.index([toks or [""] for toks in tokenized], show_progress=False)

    def save(self, directory: Path) -> None:
        """Write the index under ``directory`` (JSON and ``.npy`` files: nothing is pickled)."""
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"size": self.size, "k1": self._bm25.k1, "b": self._bm25.b, "doc_freq": self.doc_freq}
        (directory / "lexical.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        if self.size:
            self._bm25.save(str(directory / "bm25"), show_progress=False)

    @classmethod
    def load(cls, directory: Path) -> BM25Index:
        """Read an index written by :meth:`save`."""
        meta = json.loads((directory / "lexical.json").read_text(encoding="utf-8"))
        index = cls.__new__(cls)
        index.size = int(meta["size"])
        index.doc_freq = Counter(meta["doc_freq"])
        if index.size:
            index._bm25 = bm25s.BM25.load(str(directory / "bm25"), show_progress=False)
            if index._bm25.scores["num_docs"] != index.size:
                held = index._bm25.scores["num_docs"]
                raise ValueError(f"{directory}: the BM25 matrix holds {held} documents, not {index.size}")
        else:
            index._bm25 = bm25s.BM25(k1=meta["k1"], b=meta["b"])
        return index

    def idf(self, token: str) -> float:
        """Inverse document frequency of a (tokenized) term; unseen terms get the highest value."""
        return math.log(1.0 + (self.size - self.doc_freq.get(token, 0) + 0.5) / (self.doc_freq.get(token, 0) + 0.5))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (zeros when nothing matches)."""
        tokens = [t for t in tokenize(query) if t in self._bm25.vocab_dict] if self.size else []
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return self._bm25.get_scores(tokens)

    def search(self, query: str, n: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top ``n`` (position, score) pairs with a positive score, best first.

        Args:
            query: the query text.
            n: how many to return at most.
            mask: optional boolean array; documents where it is False are left out.
        """
        scores = self.scores(query)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        positive = np.flatnonzero(scores > 0)
        if positive.size == 0 or n <= 0:
            return []
        top = positive[np.argsort(-scores[positive], kind="stable")[:n]]
        return [(int(i), float(scores[i])) for i in top]


# --- the store's BM25 index: SQLite FTS5 on disk, caught up from the store's change feed -------------------
#: Bump when the layout of the SQLite index changes (tokenizer changes are detected by :func:`index_key`).
FTS_VERSION = 2
#: Seconds between looks at articles still being written when the store's change feed is unchanged
#: (a writer killed mid-write leaves its articles waiting until the next run finishes them).
PENDING_POLL = 5.0
#: Articles whose current state is fetched from Chroma in one request.
FETCH_BATCH = 200
_PLAIN = re.compile(r"[a-z0-9]+")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY, chunk_id TEXT UNIQUE NOT NULL, article_id TEXT NOT NULL, source TEXT NOT NULL,
    published_ord INTEGER NOT NULL, text TEXT NOT NULL, meta TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(tokens, tokenize='ascii');
CREATE VIRTUAL TABLE IF NOT EXISTS vocab USING fts5vocab(fts, 'row');
CREATE TABLE IF NOT EXISTS terms(term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending(article_id TEXT PRIMARY KEY, op TEXT NOT NULL, version TEXT NOT NULL,
    seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen(entry_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""
CHECK = "check"  # a pending op: index the article once its record is ready, whatever its version


def fts_term(token: str) -> str:
    """A token as FTS5's ``ascii`` tokenizer keeps it whole: plain ``[a-z0-9]+``, anything else hex-coded."""
    return token if _PLAIN.fullmatch(token) else "zq" + token.encode("utf-8").hex()


def fts_match(query: str) -> str:
    """An FTS5 query matching documents that share any token with ``query`` ("" when it has none)."""
    return " OR ".join(f'"{t}"' for t in dict.fromkeys(fts_term(t) for t in tokenize(query)))


def fts_key() -> str:
    """Name of the SQLite index file's layout and tokenizer (a new tokenizer gets a new file)."""
    return f"fts-v{FTS_VERSION}-{index_key().rsplit('-', 1)[1]}"


# --- the top k without scoring every match ---------------------------------------------------------------
#: FTS5's ``bm25()`` parameters (SQLite's own; the index calls ``bm25()`` without weights).
K1, B = 1.2, 0.75
#: Postings the first pass of :func:`top_bm25` reads at most: the query's rarest terms, as many as fit.
#: Below this many matches in all, every match is scored (as cheap). Its cost, not the archive's size,
#: sets the time of a query. 5% of a million chunks: at that share SciFact keeps hybrid nDCG@10 0.7306
#: (0.7315 exhaustive; 0.7295 at 2%; ``benchmarks/lexical_quality.py``).
PRUNE_POSTINGS = 50_000
#: Rows the first pass rescores with every term, per result asked for (at least :data:`PRUNE_MIN_DEPTH`).
PRUNE_DEPTH = 25
PRUNE_MIN_DEPTH = 200
#: When fewer rows than asked for hold the rare terms, the next rarest terms join them while the postings
#: read stay under this many times :data:`PRUNE_POSTINGS`; past that every match is scored.
PRUNE_WIDEN = 4
#: How :func:`top_bm25` answered: ``exact`` (pruned, and proven to be the exhaustive top k), ``rare-first``
#: (pruned, not proven: the best of the rows holding the rarest terms, scored with every term),
#: ``exhaustive`` (every match scored) or ``empty`` (no query term is in the index).
PASSES = ("exact", "rare-first", "exhaustive", "empty")


def fts_totals(db: sqlite3.Connection, table: str = "fts") -> tuple[int, float]:
    """Rows and mean tokens per row of an FTS5 table, read from its averages record as ``bm25()`` reads them.

    FTS5 keeps the totals in the record with id 1 of ``<table>_data``: SQLite varints, the row count
    first, then each column's token total (this index has one column).
    """
    row = db.execute(f"SELECT block FROM {table}_data WHERE id = 1").fetchone()  # noqa: S608 - fixed names
    block = bytes(row[0]) if row and row[0] else b""
    values, at = [], 0
    while at < len(block) and len(values) < 2:
        value = 0
        for i in range(9):
            byte = block[at]
            at += 1
            if i == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        values.append(value)
    rows, tokens = (values + [0, 0])[:2]
    return rows, (tokens / rows if rows else 0.0)


def fts_idf(rows: int, df: int) -> float:
    """IDF as FTS5's ``bm25()`` computes it (a term in more than half the rows counts 1e-6)."""
    return max(math.log(max(rows - df + 0.5, 1e-9) / (df + 0.5)), 1e-6)


def top_bm25(db: sqlite3.Connection, terms: Sequence[str], doc_freq: dict[str, int], n: int, where: str = "",
             params: Sequence[Any] = (), *, postings: int | None = None) -> tuple[list[tuple[int, float]], str]:
    """The ``n`` best rows of ``fts`` for ``terms`` by FTS5's ``bm25()``, without scoring every match.

    The exhaustive query, ``SELECT rowid, -bm25(fts) ... WHERE fts MATCH <any term> ORDER BY score DESC,
    rowid``, scores every row holding any term, so its time grows with the archive. Instead:

    1. The query's rarest terms R (as many as fit in ``postings``) go to FTS5, which scores the rows
       holding any of them and keeps the best ``m`` (:data:`PRUNE_DEPTH` per result) by their R part.
    2. The other terms' part is added to those ``m`` in Python from the rows' tokens (the same formula,
       IDF and lengths as ``bm25()``), giving their full scores; the best ``n`` are the answer.
    3. It is provably the exhaustive answer (``exact``) when the ``n``-th full score reaches what a row
       left out could score: at most the ``m``-th R part (nothing if fewer than ``m`` rows hold an R
       term) plus ``idf * (k1 + 1)`` for each other term. Otherwise it is ``rare-first``: a row that
       holds only common terms, or little of the rare ones, may be missing from the tail.
    4. When fewer than ``n`` rows hold an R term, the next rarest terms join R (up to
       :data:`PRUNE_WIDEN` times ``postings``); then every match is scored (``exhaustive``).

    Args:
        db: a connection holding the ``fts`` table (rowid, ``tokens``), joined to ``chunks c`` for ``where``.
        terms: the query's distinct FTS terms (:func:`fts_term`).
        doc_freq: rows holding each term (terms missing count 0 and match nothing).
        n: how many rows at most.
        where: extra SQL conditions on ``chunks c``, with ``?`` placeholders.
        params: their values.
        postings: the first pass's budget (default :data:`PRUNE_POSTINGS`).

    Returns:
        (rowid, score) pairs best first (scores equal to ``-bm25()`` up to float rounding), and which pass
        answered (one of :data:`PASSES`).
    """
    present = sorted((t for t in dict.fromkeys(terms) if doc_freq.get(t, 0) > 0), key=lambda t: (doc_freq[t], t))
    if not present or n <= 0:
        return [], "empty"
    budget = PRUNE_POSTINGS if postings is None else postings
    split, read = 1, doc_freq[present[0]]
    while split < len(present) and read + doc_freq[present[split]] <= budget:
        read += doc_freq[present[split]]
        split += 1
    rows, avgdl = fts_totals(db) if split < len(present) else (0, 0.0)
    if rows <= 0 or avgdl <= 0:  # no totals to bound with (an uncommitted table): score every match
        split = len(present)
    if split < len(present):
        idf = {t: fts_idf(rows, doc_freq[t]) for t in present}
        depth = max(PRUNE_DEPTH * n, PRUNE_MIN_DEPTH)
    while split < len(present):
        found, proven = _pruned_pass(db, present[:split], present[split:], idf, avgdl, n, depth, where, params)
        if proven or len(found) >= n:
            return found, "exact" if proven else "rare-first"
        read += doc_freq[present[split]]
        split += 1
        if read > PRUNE_WIDEN * budget:
            break
    return _fts_query(db, present, n, where, params), "exhaustive"


def _fts_query(db: sqlite3.Connection, terms: Sequence[str], limit: int, where: str,
               params: Sequence[Any]) -> list[tuple[int, float]]:
    match = " OR ".join(f'"{t}"' for t in terms)
    if where:
        sql = ("SELECT fts.rowid, -bm25(fts) AS score FROM fts JOIN chunks c ON c.id = fts.rowid "
               f"WHERE fts MATCH ? AND {where} ORDER BY score DESC, fts.rowid LIMIT ?")
    else:
        sql = "SELECT rowid, -bm25(fts) AS score FROM fts WHERE fts MATCH ? ORDER BY score DESC, rowid LIMIT ?"
    return [(int(r), float(s)) for r, s in db.execute(sql, (match, *params, limit))]


def _pruned_pass(db: sqlite3.Connection, rare: Sequence[str], common: Sequence[str], idf: dict[str, float],
                 avgdl: float, n: int, depth: int, where: str,
                 params: Sequence[Any]) -> tuple[list[tuple[int, float]], bool]:
    """One pruned pass (see :func:`top_bm25`): its top ``n``, and whether they are provably the exact top ``n``."""
    partial = _fts_query(db, rare, depth, where, params)
    marks = ",".join("?" * len(partial))
    tokens = dict(db.execute(f"SELECT rowid, tokens FROM fts WHERE rowid IN ({marks})",  # noqa: S608
                             [rowid for rowid, _ in partial]))
    scored = []
    for rowid, score in partial:
        words = tokens.get(rowid, "").split()
        norm = K1 * (1 - B + B * len(words) / avgdl)
        for term in common:
            if tf := words.count(term):
                score += idf[term] * tf * (K1 + 1) / (tf + norm)
        scored.append((rowid, score))
    scored.sort(key=lambda row: (-row[1], row[0]))
    # a row not in ``partial`` holds no rare term, or scores at most the last kept rare part, plus less
    # than idf * (k1 + 1) per common term
    bound = sum(idf[t] for t in common) * (K1 + 1) + (partial[-1][1] if len(partial) == depth else 0.0)
    return scored[:n], len(scored) >= n and scored[n - 1][1] >= bound * (1 + 1e-9)


class LexicalIndex:
    """BM25 over every chunk of a store, in SQLite FTS5 on disk, brought up to date from the change feed.

    The index lives in one SQLite file (``<data_dir>/lexical/<collection>-<key>.sqlite3``) holding each
    chunk's tokens (made by :func:`tokenize`, so stems, stop words and irregular forms are the ones
    queries get), text and metadata. Nothing grows in memory with the archive. Before each search,
    :meth:`refresh` reads the store's change sequence (one small request); when it moved, the entries
    since the last applied one name the articles to fetch from Chroma and re-index, in one SQLite
    transaction together with the new cursor: k changed articles cost O(k), and a process killed in
    the middle leaves the previous, consistent index. An article is indexed only when its record is
    ``ready`` and its stored chunks agree with the record (count and content hash), so a half-written
    article is never indexed; until then its previous version stays.

    Several processes may share the file (WAL; one catches up at a time, the others read meanwhile);
    processes with a data dir each keep their own file and converge the same way. A missing file, a
    file made for another collection (or a collection deleted and made again) is rebuilt from
    everything Chroma holds, once.

    Scores are FTS5's ``bm25()`` (k1 = 1.2, b = 0.75), negated so that higher is better. The top ``n`` is
    found by :func:`top_bm25`, which reads the postings of the rarest query terms first rather than
    scoring every chunk that shares a word with the query; a ``terms`` table kept in the same
    transactions holds each term's document frequency.

    Args:
        path: the SQLite file; None for a private temporary one.
        store: the store whose chunks are indexed.
    """

    def __init__(self, path: Path | None, store: Any) -> None:
        self.path = path
        self.store = store
        self._db = sqlite3.connect(str(path) if path else "", timeout=600, isolation_level=None,
                                   check_same_thread=False)
        self._lock = threading.RLock()
        with self._lock:
            if path:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        self._head = -1
        self._polled = 0.0
        self._pending = 0
        self._idf: dict[str, float] = {}
        self._df_delta: Counter[str] = Counter()
        #: the first-pass budget of :func:`top_bm25`, and how the latest search was answered
        self.prune_postings = PRUNE_POSTINGS
        self.last_pass = ""

    def close(self) -> None:
        """Close the SQLite connection."""
        with self._lock:
            self._db.close()

    # --- reading ---------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Chunks indexed (FTS5's own row count: no scan)."""
        with self._lock:
            return fts_totals(self._db)[0]

    @property
    def cursor(self) -> int:
        """The change sequence number the index is up to date with."""
        return int(self._get_meta("cursor", "0"))

    def pending(self) -> dict[str, str]:
        """Articles logged as changing whose new state is not indexed yet, with the logged op."""
        with self._lock:
            return dict(self._db.execute("SELECT article_id, op FROM pending").fetchall())

    def idf(self, token: str) -> float:
        """Inverse document frequency of a (tokenized) term, as BM25 (Lucene) defines it; unseen terms rank highest."""
        value = self._idf.get(token)
        if value is None:
            df = self.doc_freq([fts_term(token)]).get(fts_term(token), 0)
            value = self._idf[token] = math.log(1.0 + (self.count - df + 0.5) / (df + 0.5))
        return value

    def doc_freq(self, terms: Sequence[str]) -> dict[str, int]:
        """Chunks holding each FTS term (:func:`fts_term`), from the ``terms`` table kept beside the index.

        FTS5's own ``fts5vocab`` counts a term by reading its whole posting list, which at a million
        chunks costs tens of milliseconds for a common word; the table is kept in the same transactions.
        """
        terms = list(dict.fromkeys(terms))
        with self._lock:
            found = dict(self._db.execute(f"SELECT term, df FROM terms WHERE term IN ({','.join('?' * len(terms))})",  # noqa: S608
                                          terms))
        return {t: int(found.get(t, 0)) for t in terms}

    def search(
        self, query: str, n: int, where: str = "", params: Sequence[Any] = ()
    ) -> list[tuple[str, str, dict[str, Any], float]]:
        """Top ``n`` chunks for ``query`` as (chunk id, text, metadata, score), best first.

        Args:
            query: the query text (tokenized here).
            n: how many at most.
            where: extra SQL conditions on the ``chunks`` table aliased ``c`` (``source``, ``article_id``,
                ``published_ord``), with ``?`` placeholders; see :func:`filter_sql`.
            params: the values for ``where``'s placeholders.
        """
        terms = list(dict.fromkeys(fts_term(t) for t in tokenize(query)))
        if not terms or n <= 0:
            return []
        # scores first (the chunk rows, with their texts, are read for the top n only), all from one snapshot
        # of the file: another process catching up meanwhile changes none of what this search reads
        with self._lock:
            self._db.execute("BEGIN")
            try:
                top, self.last_pass = top_bm25(self._db, terms, self.doc_freq(terms), n, where, params,
                                               postings=self.prune_postings)
                marks = ",".join("?" * len(top))
                rows = {row[0]: row[1:] for row in self._db.execute(
                    f"SELECT id, chunk_id, text, meta FROM chunks WHERE id IN ({marks})",  # noqa: S608 - placeholders
                    [rowid for rowid, _ in top])}
            finally:
                self._db.execute("COMMIT")
        return [(rows[r][0], rows[r][1], json.loads(rows[r][2]), float(score)) for r, score in top if r in rows]

    # --- catching up -----------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Apply what changed in the store since the last look; True when the index changed.

        Costs one small Chroma request when nothing did.
        """
        head = self.store.changes.head()
        waiting = self._pending and time.monotonic() - self._polled >= PENDING_POLL
        if head == self._head and not waiting:
            return False
        with self._lock:
            changed = self._catch_up(head)
            self._head = head
        return changed

    def _catch_up(self, head: int) -> bool:
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # one process catches up at a time; the others still read
        self._df_delta.clear()
        try:
            identity = f"{self.store.chunks.id}/{self.store.changes.collection.id}"
            cursor = int(self._get_meta("cursor", "-1"))
            rebuilt = self._get_meta("identity", "") != identity or cursor > head
            if rebuilt:
                cursor = self._rebuild(head)
                self._set_meta("identity", identity)
            changes = self.store.changes.since(max(0, cursor - LOOKBACK)) if head > cursor - LOOKBACK else []
            for change in changes:
                if db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (change.entry_id, change.seq)).rowcount:
                    db.execute(
                        "INSERT INTO pending VALUES (?, ?, ?, ?) ON CONFLICT(article_id) DO UPDATE SET "
                        "op = excluded.op, version = excluded.version, seq = excluded.seq "
                        "WHERE excluded.seq >= pending.seq",
                        (change.article_id, change.op, change.version, change.seq),
                    )
            cursor = max([cursor, head, *(c.seq for c in changes)])
            db.execute("DELETE FROM seen WHERE seq <= ?", (cursor - LOOKBACK,))
            self._set_meta("cursor", str(cursor))
            touched = self._resolve_pending()
            self._pending = int(db.execute("SELECT count(*) FROM pending").fetchone()[0])
            self._flush_doc_freq()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            self._df_delta.clear()
        self._polled = time.monotonic()
        self._idf.clear()  # also when another process sharing the file applied the changes
        return rebuilt or touched

    def _flush_doc_freq(self) -> None:
        """Add the transaction's document-frequency changes to ``terms`` (inside it)."""
        changed = [(term, delta) for term, delta in self._df_delta.items() if delta]
        self._db.executemany("INSERT INTO terms VALUES (?, ?) ON CONFLICT(term) DO UPDATE SET df = df + excluded.df",
                             changed)
        self._db.executemany("DELETE FROM terms WHERE term = ? AND df <= 0", [(term,) for term, _ in changed])
        self._df_delta.clear()

    def _resolve_pending(self) -> bool:
        """Index the pending articles whose new state is complete in Chroma; True when any row changed."""
        waiting = self._db.execute("SELECT article_id, op, version FROM pending").fetchall()
        touched = False
        for start in range(0, len(waiting), FETCH_BATCH):
            batch = waiting[start : start + FETCH_BATCH]
            ids = [article_id for article_id, _, _ in batch]
            records = self.store.articles.get(ids=ids, include=["metadatas"])
            by_id = dict(zip(records["ids"], records["metadatas"], strict=True))
            chunks = _chunks_by_article(self.store.chunks.get(where={"article_id": {"$in": ids}},
                                                              include=["documents", "metadatas"]))
            for article_id, op, version in batch:
                record = by_id.get(article_id)
                if record is None:  # gone (or, for a put, not created yet: wait for it)
                    touched |= self._remove(article_id)
                    done = op != PUT
                elif record.get("state", READY) != READY or not _complete(record, chunks.get(article_id, [])):
                    continue  # being written or deleted: the previous version stays until it is done
                else:
                    touched |= self._replace(article_id, chunks.get(article_id, []))
                    done = op != PUT or version_of(record.get("fingerprint", ""), record.get("chunking", "")) == version
                if done:
                    self._db.execute("DELETE FROM pending WHERE article_id = ?", (article_id,))
        return touched

    def _remove(self, article_id: str) -> bool:
        rows = self._db.execute("SELECT id FROM chunks WHERE article_id = ?", (article_id,)).fetchall()
        if rows:
            for (tokens,) in self._db.execute(
                f"SELECT tokens FROM fts WHERE rowid IN ({','.join('?' * len(rows))})",  # noqa: S608 - placeholders
                [rowid for (rowid,) in rows],
            ):
                self._df_delta.subtract(set(tokens.split()))
            self._db.executemany("DELETE FROM fts WHERE rowid = ?", rows)
            self._db.execute("DELETE FROM chunks WHERE article_id = ?", (article_id,))
        return bool(rows)

    def _replace(self, article_id: str, chunks: list[tuple[str, str, dict[str, Any]]]) -> bool:
        self._remove(article_id)
        self._insert(chunks)
        return True

    def _insert(self, chunks: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        db = self._db
        for chunk_id, text, meta in chunks:
            rowid = db.execute(
                "INSERT INTO chunks(chunk_id, article_id, source, published_ord, text, meta) VALUES (?,?,?,?,?,?)",
                (chunk_id, meta["article_id"], meta.get("source", ""), int(meta.get("published_ord", 0)), text,
                 json.dumps(meta, ensure_ascii=False)),
            ).lastrowid
            terms = [fts_term(t) for t in tokenize(text)]
            db.execute("INSERT INTO fts(rowid, tokens) VALUES (?, ?)", (rowid, " ".join(terms)))
            self._df_delta.update(set(terms))

    def _rebuild(self, head: int) -> int:
        """Index everything the store holds now (inside the open transaction); return the cursor to resume at.

        Articles not ``ready``, or whose chunks disagree with their record, are left pending.
        """
        db = self._db
        for table in ("chunks", "fts", "pending", "seen", "terms"):
            db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
        records = {rid: meta for ids, metas, _ in self.store._pages(self.store.articles, ["metadatas"])
                   for rid, meta in zip(ids, metas, strict=True)}
        counts: dict[str, int] = {}
        for ids, metas, docs in self.store._pages(self.store.chunks, ["metadatas", "documents"]):
            rows = []
            for chunk_id, meta, text in zip(ids, metas, docs, strict=True):
                record = records.get(meta["article_id"])
                if (record is not None and record.get("state", READY) == READY
                        and meta.get("content_hash") == record.get("content_hash")):
                    rows.append((chunk_id, text, meta))
                    counts[meta["article_id"]] = counts.get(meta["article_id"], 0) + 1
            self._insert(rows)
        for article_id, record in records.items():
            if record.get("state", READY) != READY or counts.get(article_id, 0) != int(record.get("chunks", 0)):
                self._remove(article_id)
                db.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, '', ?)", (article_id, CHECK, head))
        return max(0, head - LOOKBACK)

    def _get_meta(self, key: str, default: str) -> str:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


class FtsBM25:
    """FTS5's ``bm25()`` over a fixed list of texts, with :class:`BM25Index`'s ``scores``: for benchmarks.

    Scores exactly as :class:`LexicalIndex` does (same tokens, same SQLite function), in a private
    temporary database: every match when ``postings`` is None, else the top ``depth`` by
    :func:`top_bm25` with that first-pass budget (``passes`` counts how each query was answered).
    """

    def __init__(self, texts: Sequence[str], postings: int | None = None, depth: int = 100) -> None:
        self.size = len(texts)
        self.postings = postings
        self.depth = depth
        self.passes: Counter[str] = Counter()
        self._db = sqlite3.connect("")
        self._db.execute("CREATE VIRTUAL TABLE fts USING fts5(tokens, tokenize='ascii')")
        tokenized = [[fts_term(t) for t in tokenize(text)] for text in texts]
        self.doc_freq: Counter[str] = Counter(t for terms in tokenized for t in set(terms))
        self._db.executemany("INSERT INTO fts(rowid, tokens) VALUES (?, ?)",
                             ((i, " ".join(terms)) for i, terms in enumerate(tokenized)))
        self._db.commit()  # FTS5 writes the totals that bm25() and fts_totals() read on commit

    def scores(self, query: str) -> np.ndarray:
        """Score of every document for ``query`` (zeros where nothing matches, or outside the pruned top)."""
        out = np.zeros(self.size, dtype=np.float32)
        if self.postings is not None:
            terms = [fts_term(t) for t in tokenize(query)]
            top, how = top_bm25(self._db, terms, self.doc_freq, self.depth, postings=self.postings)
            self.passes[how] += 1
            for rowid, score in top:
                out[rowid] = score
        elif match := fts_match(query):
            for rowid, score in self._db.execute("SELECT rowid, -bm25(fts) FROM fts WHERE fts MATCH ?", (match,)):
                out[rowid] = score
        return out


def filter_sql(sources: Sequence[str] = (), article_ids: Sequence[str] = (), since: int | None = None,
               until: int | None = None) -> tuple[str, list[Any]]:
    """SQL conditions (on the ``chunks`` table aliased ``c``) and their values for :meth:`LexicalIndex.search`."""
    clauses: list[str] = []
    params: list[Any] = []
    if sources:
        clauses.append(f"c.source IN ({','.join('?' * len(sources))})")
        params += list(sources)
    if article_ids:
        clauses.append(f"c.article_id IN ({','.join('?' * len(article_ids))})")
        params += list(article_ids)
    if since is not None:
        clauses.append("c.published_ord >= ?")
        params.append(since)
    if until is not None:
        clauses.append("c.published_ord <= ?")
        params.append(until)
    return " AND ".join(clauses), params


def _chunks_by_article(got: dict[str, Any]) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    out: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for chunk_id, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
        if text is not None and meta is not None:
            out.setdefault(meta["article_id"], []).append((chunk_id, text, meta))
    for rows in out.values():
        rows.sort(key=lambda row: int(row[2].get("chunk_index", 0)))
    return out


def _complete(record: dict[str, Any], chunks: list[tuple[str, str, dict[str, Any]]]) -> bool:
    """Whether the stored chunks are exactly the record's version: as many as it says, all of its text."""
    return len(chunks) == int(record.get("chunks", 0)) and all(
        meta.get("content_hash") == record.get("content_hash") for _, _, meta in chunks
    )
