"""The Chroma store: chunks with embeddings, and the full article records that citations are checked against.

Two collections live side by side:

* ``<name>``: one entry per chunk, cosine distance, with the article's metadata and the chunk's offsets.
* ``<name>-articles``: one entry per article holding its full text, fingerprint and a ``state``.

Writes are journalled through the article record's ``state`` so that a run killed at any point can be
finished by the next one: ``pending`` (chunks being replaced), ``ready``, ``deleting``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
import numpy as np
from pydantic import BaseModel

from ingest.changes import DELETE, PUT, ChangeLog, version_of
from newsdesk.errors import StoreUnavailable
from newsdesk.models import Article, Chunk, Passage
from newsdesk.settings import Settings

READY, PENDING, DELETING = "ready", "pending", "deleting"


class ArticleRecord(BaseModel):
    """What the store knows about an article, without its text."""

    id: str
    title: str = ""
    source: str = ""
    author: str = ""
    published: date | None = None
    url: str = ""
    origin: str = ""
    content_hash: str = ""
    fingerprint: str = ""
    chunking: str = ""  # chunker version and parameters the chunks were made with
    chunks: int = 0
    state: str = READY


def published_ord(value: date | None) -> int:
    """Sortable integer form of a date (YYYYMMDD), 0 when unknown."""
    return value.year * 10000 + value.month * 100 + value.day if value else 0


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


def connect(settings: Settings) -> chromadb.ClientAPI:
    """Open the configured Chroma client: HTTP when ``chroma_url`` is set, else embedded.

    Raises:
        StoreUnavailable: the server cannot be reached or the directory cannot be opened.

    """
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise StoreUnavailable(f"NEWSDESK_CHROMA_URL={settings.chroma_url!r} is not an http(s) URL")
        try:
            client = chromadb.HttpClient(
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 80),
                ssl=url.scheme == "https",
                settings=chromadb.Settings(anonymized_telemetry=False),
            )
            client.heartbeat()
        except Exception as exc:  # noqa: BLE001 - any connection failure reads the same to a user
            raise StoreUnavailable(
                f"cannot reach the Chroma server at {settings.chroma_url} ({type(exc).__name__}); start it "
                "with `chroma run` or unset NEWSDESK_CHROMA_URL to use the embedded store"
            ) from None
        return client
    path = Path(settings.chroma_path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(
            path=str(path), settings=chromadb.Settings(anonymized_telemetry=False)
        )
    except Exception as exc:  # noqa: BLE001
        raise StoreUnavailable(f"cannot open the store at {path}: {exc}") from None


class Store:
    """Article and chunk storage over a Chroma client.

    Args:
        client: an embedded or HTTP Chroma client.
        name: the chunk collection's name; articles go to ``<name>-articles``.

    """

    def __init__(self, client: chromadb.ClientAPI, name: str = "newsdesk") -> None:
        self.client = client
        self.name = name
        try:
            self.chunks = client.get_or_create_collection(
                name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
            )
            self.articles = client.get_or_create_collection(f"{name}-articles", embedding_function=None)
            self.changes = ChangeLog(client, name)
            self.max_batch = int(client.get_max_batch_size())
        except Exception as exc:  # noqa: BLE001
            raise StoreUnavailable(f"cannot open collection {name!r}: {exc}") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """Connect as configured and open the collections."""
        return cls(connect(settings), settings.collection)

    # --- collection metadata ---------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return dict(self.client.get_collection(self.name, embedding_function=None).metadata or {})

    def generation(self) -> int:
        """Return a counter bumped around every write, so caches derived from the store know to rebuild."""
        return int(self._meta().get("generation", 0))

    def bump_generation(self) -> int:
        """Increment and return the generation."""
        meta = self._meta()
        meta["generation"] = int(meta.get("generation", 0)) + 1
        self.chunks.modify(metadata=meta)
        return meta["generation"]

    def check_model(self, model_name: str, dimension: int | None = None) -> None:
        """Record the embedding model on first write; refuse to mix models afterwards.

        Without ``dimension`` only the name is compared (and nothing is recorded), which needs no
        loaded model.

        Raises:
            StoreUnavailable: the collection was built with another model.

        """
        meta = self._meta()
        stored = meta.get("embedding_model")
        if stored is None:
            if dimension is not None:
                meta.update(embedding_model=model_name, dimension=dimension)
                self.chunks.modify(metadata=meta)
        elif stored != model_name or dimension not in (None, int(meta.get("dimension", dimension))):
            raise StoreUnavailable(
                f"collection {self.name!r} was built with embedding model {stored!r}, not {model_name!r}; "
                "set NEWSDESK_EMBEDDING_MODEL back or use another NEWSDESK_COLLECTION"
            )

    # --- articles --------------------------------------------------------------------------------
    def records(self) -> dict[str, ArticleRecord]:
        """Every article record, by id."""
        out: dict[str, ArticleRecord] = {}
        for ids, metas, _ in self._pages(self.articles, ["metadatas"]):
            for article_id, meta in zip(ids, metas, strict=True):
                out[article_id] = _record(article_id, meta)
        return out

    def get_article(self, article_id: str) -> Article | None:
        """Return the stored article (text and metadata), or None."""
        got = self.articles.get(ids=[article_id], include=["documents", "metadatas"])
        if not got["ids"]:
            return None
        record = _record(article_id, got["metadatas"][0])
        return Article(
            text=got["documents"][0], **record.model_dump(include=set(Article.model_fields) - {"text"})
        )

    def article_texts(self, article_ids: Sequence[str]) -> dict[str, str]:
        """Full stored texts of the given articles (missing ids are left out)."""
        if not article_ids:
            return {}
        got = self.articles.get(ids=list(dict.fromkeys(article_ids)), include=["documents"])
        return dict(zip(got["ids"], got["documents"], strict=True))

    def count_articles(self) -> int:
        """Count the article records."""
        return self.articles.count()

    def count_chunks(self) -> int:
        """Count the chunks."""
        return self.chunks.count()

    # --- writes ----------------------------------------------------------------------------------
    def write_articles(
        self, items: Sequence[tuple[Article, list[Chunk]]], embeddings: np.ndarray, chunking: str = ""
    ) -> None:
        """Store articles and their chunks, replacing any older version of them.

        ``embeddings`` holds one row per chunk, in the order of ``items``; ``chunking`` names how the
        chunks were made (see :func:`ingest.chunking.chunking_key`). The records are marked ``pending``
        first, then all old chunks of these articles are deleted and the new ones added, and the records
        are marked ``ready`` last: an interrupted write is redone whole by the next sync.
        """
        if not items:
            return
        self._log_changes([(article.id, PUT, version_of(article.fingerprint(), chunking)) for article, _ in items])
        self._upsert_records([(article, chunks, PENDING) for article, chunks in items], chunking)
        # Old chunks go first and the new ones are added: replacing vectors in place (upsert) costs
        # Chroma's HNSW index ten times as much as deleting them and adding the new ones.
        self._delete_chunks([article.id for article, _ in items])
        ids, docs, metas = [], [], []
        for article, chunks in items:
            for chunk in chunks:
                ids.append(chunk.id)
                docs.append(chunk.text)
                metas.append(_chunk_meta(article, chunk))
        for start in range(0, len(ids), self.max_batch):
            stop = start + self.max_batch
            self.chunks.add(
                ids=ids[start:stop], documents=docs[start:stop], metadatas=metas[start:stop],
                embeddings=embeddings[start:stop],
            )
        # metadata only: the text went in with the pending record and need not be indexed twice
        for start in range(0, len(items), self.max_batch):
            batch = items[start : start + self.max_batch]
            self.articles.update(
                ids=[article.id for article, _ in batch],
                metadatas=[_article_meta(article, len(chunks), READY, chunking) for article, chunks in batch],
            )
        self.changes.bump()  # done: readers waiting for these records to be ready look again

    def _delete_chunks(self, article_ids: list[str]) -> None:
        """Delete every stored chunk of these articles (an older version's, or an interrupted run's)."""
        for start in range(0, len(article_ids), self.max_batch):
            where = {"article_id": {"$in": article_ids[start : start + self.max_batch]}}
            stale = self.chunks.get(where=where, include=[])["ids"]
            for begin in range(0, len(stale), self.max_batch):
                self.chunks.delete(ids=stale[begin : begin + self.max_batch])

    def _upsert_records(self, items: Sequence[tuple[Article, list[Chunk], str]], chunking: str) -> None:
        for start in range(0, len(items), self.max_batch):
            batch = items[start : start + self.max_batch]
            self.articles.upsert(
                ids=[article.id for article, _, _ in batch],
                documents=[article.text for article, _, _ in batch],
                metadatas=[_article_meta(a, len(chunks), state, chunking) for a, chunks, state in batch],
                embeddings=[[1.0]] * len(batch),
            )

    def delete_article(self, article_id: str) -> bool:
        """Remove an article and its chunks; True when it existed."""
        got = self.articles.get(ids=[article_id], include=["metadatas"])
        if not got["ids"]:
            return False
        self._log_changes([(article_id, DELETE, "")])
        meta = dict(got["metadatas"][0])
        meta["state"] = DELETING
        self.articles.update(ids=[article_id], metadatas=[meta])
        self.chunks.delete(where={"article_id": article_id})
        self.articles.delete(ids=[article_id])
        self.changes.bump()
        return True

    def _log_changes(self, changes: list[tuple[str, str, str]]) -> None:
        """Log the articles a write is about to touch (see :mod:`ingest.changes`), before it touches them."""
        self.changes.log(changes, self.max_batch)

    def recover(self) -> list[str]:
        """Finish deletions that an interrupted run left behind; return their ids."""
        done = [rid for rid, rec in self.records().items() if rec.state == DELETING]
        for article_id in done:
            self.delete_article(article_id)
        return done

    # --- reads for retrieval ---------------------------------------------------------------------
    def iter_chunks(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Every chunk as (id, text, metadata)."""
        for ids, metas, docs in self._pages(self.chunks, ["metadatas", "documents"]):
            yield from zip(ids, docs, metas, strict=True)

    def chunk_embeddings(self, chunk_ids: list[str]) -> dict[str, np.ndarray]:
        """The stored vectors of these chunks (those still there), by id."""
        if not chunk_ids:
            return {}
        got = self.chunks.get(ids=list(dict.fromkeys(chunk_ids)), include=["embeddings"])
        vectors = zip(got["ids"], got["embeddings"], strict=True)
        return {cid: np.asarray(vec, dtype=np.float32) for cid, vec in vectors}

    def dense_search(
        self, embedding: np.ndarray, n: int, where: dict[str, Any] | None = None
    ) -> list[Passage]:
        """Nearest chunks by cosine similarity, best first (score = 1 - distance).

        An embedded client keeps the vector index it loaded: chunks another process deleted since
        still come back from it, without text or metadata. They are gone, so they are left out.
        """
        if n <= 0:
            return []
        got = self.chunks.query(
            query_embeddings=[np.asarray(embedding, dtype=np.float32)],
            n_results=n,
            where=where or None,
            include=["documents", "metadatas", "distances"],
        )
        return [
            passage_from(chunk_id, doc, meta, 1.0 - float(dist))
            for chunk_id, doc, meta, dist in zip(
                got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0], strict=True
            )
            if doc is not None and meta is not None
        ]

    def _pages(self, collection: Any, include: list[str], size: int = 5000) -> Iterator[tuple]:
        offset = 0
        while True:
            got = collection.get(include=include, limit=size, offset=offset)
            if not got["ids"]:
                return
            yield (
                got["ids"],
                got["metadatas"] if "metadatas" in include else [None] * len(got["ids"]),
                got["documents"] if "documents" in include else [None] * len(got["ids"]),
            )
            if len(got["ids"]) < size:
                return
            offset += size


def passage_from(chunk_id: str, text: str, meta: dict[str, Any], score: float = 0.0) -> Passage:
    """Build a :class:`Passage` from a chunk's stored metadata."""
    return Passage(
        chunk_id=chunk_id,
        article_id=meta["article_id"],
        text=text,
        char_start=int(meta["char_start"]),
        char_end=int(meta["char_end"]),
        title=meta.get("title", ""),
        source=meta.get("source", ""),
        url=meta.get("url", ""),
        published=_date(meta.get("published")),
        score=score,
    )


def _article_meta(article: Article, chunks: int, state: str, chunking: str) -> dict[str, Any]:
    return {
        "title": article.title,
        "source": article.source,
        "author": article.author,
        "published": article.published.isoformat() if article.published else "",
        "published_ord": published_ord(article.published),
        "url": article.url,
        "origin": article.origin,
        "content_hash": article.content_hash,
        "fingerprint": article.fingerprint(),
        "chunking": chunking,
        "chunks": chunks,
        "state": state,
    }


def _chunk_meta(article: Article, chunk: Chunk) -> dict[str, Any]:
    return {
        "article_id": article.id,
        "title": article.title,
        "source": article.source,
        "url": article.url,
        "published": article.published.isoformat() if article.published else "",
        "published_ord": published_ord(article.published),
        "chunk_index": chunk.index,
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "content_hash": article.content_hash,
    }


def _record(article_id: str, meta: dict[str, Any]) -> ArticleRecord:
    return ArticleRecord(
        id=article_id,
        title=meta.get("title", ""),
        source=meta.get("source", ""),
        author=meta.get("author", ""),
        published=_date(meta.get("published")),
        url=meta.get("url", ""),
        origin=meta.get("origin", ""),
        content_hash=meta.get("content_hash", ""),
        fingerprint=meta.get("fingerprint", ""),
        chunking=meta.get("chunking", ""),
        chunks=int(meta.get("chunks", 0)),
        state=meta.get("state", READY),
    )
