"""Sentence vectors computed at ingest, so that answering a question embeds no sentence of a stored chunk.

The answerer scores every sentence of the retrieved passages by its similarity to the question; embedding
those sentences was most of an answer's time. Ingest now splits each chunk into the sentences the answerer
will score (:func:`~newsdesk.sentences.answer_sentences`) and stores their vectors here.

The store is a content-addressed cache in SQLite (``<data_dir>/sentences.sqlite3``): the key is a hash of
the model's name and the sentence text, the value the float32 vector. Being a cache, it needs no part in
the ingest journal: a crash leaves some vectors written and others not, and a missing vector is computed
at question time as before. Vectors of deleted articles stay (they are keyed by text, and an article
ingested again finds them); ``newsdesk`` never reads a vector for a text it did not ask about.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from newsdesk.sentences import answer_sentences

if TYPE_CHECKING:
    from newsdesk.embedding import Embedder

log = logging.getLogger(__name__)

FILE_NAME = "sentences.sqlite3"
#: SQLite binds at most this many parameters in one statement (999 before 3.32); stay under it
_CHUNK = 500


class SentenceVectors:
    """Vectors of sentence texts under one model, in ``<data_dir>/sentences.sqlite3``.

    Args:
        path: the SQLite file.
        model: the embedding model's name (part of every key: another model never reads these vectors).
        dimension: the vectors' length, when known; a stored vector of another length is ignored.
        read_only: open for reading only (an answering process); a missing file then reads as empty.
    """

    def __init__(self, path: Path, model: str, dimension: int | None = None, *, read_only: bool = False) -> None:
        self.path = path
        self.model = model
        self.dimension = dimension
        self.read_only = read_only
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    @classmethod
    def for_embedder(cls, data_dir: Path, embedder: Embedder, *, read_only: bool = False) -> SentenceVectors:
        """The store beside the index in ``data_dir``, for ``embedder``'s model (not loaded by this)."""
        return cls(Path(data_dir) / FILE_NAME, embedder.name, read_only=read_only)

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is not None:
            return self._db
        if self.read_only:
            if not self.path.is_file():
                return None
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=5)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID")
            db.commit()
        self._db = db
        return db

    def _key(self, text: str) -> bytes:
        return hashlib.blake2b(f"{self.model}\x00{text}".encode(), digest_size=16).digest()

    def get_many(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vectors of ``texts`` (those not stored are left out; any failure reads as none stored)."""
        wanted = {self._key(t): t for t in dict.fromkeys(texts)}
        found: dict[str, np.ndarray] = {}
        if not wanted:
            return found
        try:
            with self._lock:
                db = self._connect()
                if db is None:
                    return found
                keys = list(wanted)
                for i in range(0, len(keys), _CHUNK):
                    part = keys[i : i + _CHUNK]
                    rows = db.execute(
                        f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})", part
                    ).fetchall()
                    for key, blob in rows:
                        vector = np.frombuffer(blob, dtype=np.float32)
                        if self.dimension is None or vector.shape[0] == self.dimension:
                            found[wanted[key]] = vector
        except sqlite3.Error as exc:  # a cache that cannot be read costs time, never an answer
            log.debug("sentence vectors unreadable (%s): computing them", exc)
        return found

    def put_many(self, texts: list[str], vectors: np.ndarray) -> None:
        """Store ``vectors`` (one row per text) in one transaction."""
        rows = [(self._key(t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors, strict=True)]
        with self._lock:
            db = self._connect()
            if db is None:
                return
            with db:
                db.executemany("INSERT OR IGNORE INTO vectors (key, vector) VALUES (?, ?)", rows)

    def add_chunks(self, chunk_texts: list[str], embedder: Embedder, chunk_vectors: np.ndarray | None = None) -> int:
        """Embed and store the answer sentences of ``chunk_texts`` not stored yet; how many were embedded.

        ``chunk_vectors`` (one row per chunk, from the same embedder): a sentence that is a whole chunk
        takes its chunk's vector instead of being encoded again (a short article is often one sentence).
        """
        sentences = list(dict.fromkeys(t[s:e] for t in chunk_texts for s, e in answer_sentences(t)))
        stored = self.get_many(sentences)
        todo = [s for s in sentences if s not in stored]
        whole = {} if chunk_vectors is None else {t.strip(): v for t, v in zip(chunk_texts, chunk_vectors, strict=True)}
        known = [s for s in todo if s in whole]
        if known:
            self.put_many(known, np.stack([whole[s] for s in known]))
        todo = [s for s in todo if s not in whole]
        if todo:
            self.put_many(todo, embedder.encode(todo))
        return len(todo)

    def count(self) -> int:
        """How many vectors are stored (all models)."""
        with self._lock:
            db = self._connect()
            return 0 if db is None else int(db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        """Close the connection (it reopens on the next use)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
