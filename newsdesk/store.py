"""The Chroma store: chunks with embeddings, and the full article records that citations are checked against.

Two collections live side by side:

* ``<name>``: one entry per chunk, cosine distance, with the article's metadata and the chunk's offsets.
* ``<name>-articles``: one entry per article holding its full text, fingerprint and a ``state``.

Writes are journalled through the article record's ``state`` so that a run killed at any point can be
finished by the next one: ``pending`` (chunks being replaced), ``ready``, ``deleting``.
"""

from __future__ import annotations

import atexit
import errno
import functools
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
import numpy as np
from chromadb.api.models.Collection import Collection
from chromadb.errors import NotFoundError
from filelock import FileLock
from pydantic import BaseModel

from newsdesk.changes import DELETE, PUT, ChangeLog, version_of
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


#: Substrings of SQLite/Chroma errors that mean the store's files are damaged.
_DAMAGED = ("file is not a database", "database disk image is malformed", "malformed", "corrupt",
            "no such table")
_READONLY = ("readonly database", "read-only file system", "attempt to write a readonly")
_DISK_FULL = ("database or disk is full", "no space left on device", "disk full", "disk i/o error")


def damaged_message(where: object, what: str) -> str:
    """The one line shown for a damaged embedded store."""
    return (f"the store at {where} is damaged: {what}; re-ingest into a new dir (--data-dir NEW) or restore "
            f"{where} from a backup")


def describe_store_error(error: BaseException, settings: Settings | None = None, need: int = 0) -> str | None:
    """A one-line, actionable message for a storage failure, or None when ``error`` is not one.

    Covers a full disk, a damaged or read-only embedded store, and a Chroma server that is down, stopped
    answering or was killed mid-run. The journal (``pending`` records) makes a rerun finish a write that
    such a failure cut short, so each message says what to do and that nothing stored earlier was lost.
    ``need`` is about how many bytes the failed write would have added (see :func:`write_bytes`): a storage
    error of an embedded store with less than that free is a full disk, whatever step Chroma names.
    """
    import httpx

    text = " ".join(str(error).split()).lower()
    where = (settings.chroma_url or settings.chroma_path) if settings else "the data dir"
    # Chroma reports a full disk as whatever step failed ("Error in compaction: Failed to apply logs to
    # the metadata segment"): for a storage error, the free space of the embedded store's disk decides.
    storage_error = isinstance(error, OSError | sqlite3.Error) or type(error).__module__.startswith("chromadb")
    if ((isinstance(error, OSError) and error.errno == errno.ENOSPC) or any(m in text for m in _DISK_FULL)
            or (storage_error and settings is not None and not settings.chroma_url
                and disk_nearly_full(settings.data_dir, need))):
        disk = settings.data_dir if settings else "the store"
        return (f"the disk holding {disk} is full; nothing was lost: free space and run the command again "
                "(an interrupted ingest is finished by the next one)")
    if isinstance(error, OSError) and error.errno == errno.EROFS or any(m in text for m in _READONLY):
        return f"the store at {where} is read-only: reading works, but ingest and remove need write access"
    if any(m in text for m in _DAMAGED):
        return damaged_message(where, " ".join(str(error).split())[:200])
    if isinstance(error, httpx.TimeoutException):
        timeout = settings.chroma_timeout if settings else "?"
        return (f"the Chroma server at {where} did not answer within {timeout} s (NEWSDESK_CHROMA_TIMEOUT); "
                "check that it is healthy and run the command again")
    if isinstance(error, httpx.TransportError):
        return (f"lost the connection to the Chroma server at {where} ({type(error).__name__}); nothing "
                "stored earlier was lost: start the server again and rerun the command (an interrupted "
                "ingest is finished by the next one)")
    return None


def disk_nearly_full(directory: Path, need: int = 0, reserve: int = 16 * 1024 * 1024) -> bool:
    """Whether the disk holding ``directory`` (or its nearest existing parent) has too little free.

    Too little is under ``need`` bytes, or under ``reserve`` (at most a tenth of the disk).
    """
    path = Path(directory)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return False
    return usage.free < max(need, min(reserve, usage.total // 10))


def write_bytes(items: Sequence[tuple[Article, list[Chunk]]]) -> int:
    """About how many bytes writing ``items`` adds to an embedded store.

    Measured on chromadb 1.5: 600 chunks of 300 short articles (0.4 MB of text) took 9.6 MB of
    ``chroma.sqlite3``: each chunk's row, metadata and queued vector cost about 10 kB, and each text
    byte about four more (the document, its full-text index, the article record's copy).
    """
    text = sum(len(article.text.encode()) + sum(len(c.text.encode()) for c in chunks) for article, chunks in items)
    return 10_000 * sum(len(chunks) + 1 for _, chunks in items) + 4 * text


def _check_embedded_files(path: Path) -> None:
    """Refuse a store directory whose SQLite file is gone or empty while its index segments remain."""
    database = path / "chroma.sqlite3"
    try:
        segments = [entry for entry in path.iterdir() if entry.is_dir()]
        size = database.stat().st_size if database.exists() else None
    except OSError:
        return  # unreadable: opening reports it
    if not segments:
        return
    if size is None:
        raise StoreUnavailable(damaged_message(path, "chroma.sqlite3 is missing but its index files remain"))
    if size == 0:
        raise StoreUnavailable(damaged_message(path, "chroma.sqlite3 is empty (truncated)"))


def connect(settings: Settings, *, create: bool = True, read_only: bool = False) -> chromadb.ClientAPI:
    """Open the configured Chroma client: HTTP when ``chroma_url`` is set, else embedded.

    Args:
        settings: Supplies the URL or data dir and the server timeouts.
        create: Make the embedded store when the data dir holds none; when False, a missing store is
            refused (a mistyped ``--data-dir`` must not silently become an empty store).
        read_only: The caller only reads: a store on a read-only disk or directory is then read through a
            private copy (Chroma writes to its SQLite file even to read).

    Raises:
        StoreUnavailable: the server cannot be reached or does not answer in time, or the directory is
            missing, damaged or cannot be opened.

    """
    if settings.chroma_url:
        return _connect_http(settings)
    path = Path(settings.chroma_path)
    if not create and not (path / "chroma.sqlite3").exists() and not path.is_dir():
        raise StoreUnavailable(
            f"there is no store at {settings.data_dir}: check --data-dir / NEWSDESK_DATA_DIR, or ingest "
            "articles there first with `newsdesk ingest PATH`"
        )
    _check_embedded_files(path) if path.is_dir() else None
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return _open_persistent(path)
    except StoreUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001
        message = describe_store_error(exc, settings)
        if message and "read-only" in message and read_only:
            return _open_snapshot(path)
        raise StoreUnavailable(message or f"cannot open the store at {path}: {exc}") from None


def _open_persistent(path: Path) -> chromadb.ClientAPI:
    try:
        return chromadb.PersistentClient(path=str(path), settings=chromadb.Settings(anonymized_telemetry=False))
    except Exception:
        # chromadb caches one System per directory even when starting it failed; a later open in this
        # process (the bot, a test) would get that broken one ("no attribute 'bindings'")
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient._identifier_to_system.pop(str(path), None)
        SharedSystemClient._identifier_to_refcount.pop(str(path), None)
        raise


def _open_snapshot(path: Path) -> chromadb.ClientAPI:
    """Open a read-only store through a private temporary copy (Chroma writes even when only reading).

    The copy is removed when the process exits; nothing is ever written back.
    """
    copy = Path(tempfile.mkdtemp(prefix="newsdesk-readonly-"))
    atexit.register(shutil.rmtree, copy, True)
    try:
        shutil.copytree(path, copy / "chroma", dirs_exist_ok=True)
        os.chmod(copy / "chroma", 0o700)
        for root, dirs, files in os.walk(copy / "chroma"):
            for name in dirs + files:
                os.chmod(os.path.join(root, name), 0o700 if name in dirs else 0o600)
        return _open_persistent(copy / "chroma")
    except Exception as exc:  # noqa: BLE001
        raise StoreUnavailable(f"the store at {path} is read-only and could not be read from a copy: "
                               f"{' '.join(str(exc).split())}") from None


def _connect_http(settings: Settings) -> chromadb.ClientAPI:
    """An HTTP client with connect and request timeouts (chromadb's own client has none)."""
    import httpx

    assert settings.chroma_url
    url = urlparse(settings.chroma_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise StoreUnavailable(f"NEWSDESK_CHROMA_URL={settings.chroma_url!r} is not an http(s) URL")
    base = settings.chroma_url.rstrip("/")
    timeout = httpx.Timeout(settings.chroma_timeout, connect=settings.chroma_connect_timeout)
    hint = "start it with `chroma run` or unset NEWSDESK_CHROMA_URL to use the embedded store"
    try:  # a bounded probe first: constructing chromadb's client already sends requests without a timeout
        httpx.get(f"{base}/api/v2/heartbeat", timeout=timeout).raise_for_status()
    except httpx.TimeoutException:
        raise StoreUnavailable(
            f"the Chroma server at {settings.chroma_url} accepted the connection but did not answer within "
            f"{settings.chroma_timeout:g} s (NEWSDESK_CHROMA_TIMEOUT); is that address a Chroma server?"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any connection failure reads the same to a user
        raise StoreUnavailable(
            f"cannot reach the Chroma server at {settings.chroma_url} ({type(exc).__name__}); {hint}"
        ) from None
    try:
        client = chromadb.HttpClient(
            host=url.hostname,
            port=url.port or (443 if url.scheme == "https" else 80),
            ssl=url.scheme == "https",
            settings=chromadb.Settings(anonymized_telemetry=False),
        )
        # chromadb creates its httpx session with timeout=None; every later request gets ours
        session = getattr(getattr(client, "_server", None), "_session", None)
        if session is not None:
            session.timeout = timeout
        client.heartbeat()
    except Exception as exc:  # noqa: BLE001
        raise StoreUnavailable(
            describe_store_error(exc, settings)
            or f"cannot reach the Chroma server at {settings.chroma_url} ({type(exc).__name__}); {hint}"
        ) from None
    return client


class _Watched:
    """A Chroma client or collection whose failed calls are reported to ``on_failure``.

    What its calls return that is a collection is watched too. Everything else passes through.
    """

    def __init__(self, target: Any, on_failure: Callable[[BaseException], None]) -> None:
        self._target = target
        self._on_failure = on_failure

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = value(*args, **kwargs)
            except Exception as exc:
                self._on_failure(exc)
                raise
            return _Watched(result, self._on_failure) if isinstance(result, Collection) else result

        return call


class Store:
    """Article and chunk storage over a Chroma client.

    An embedded client whose call failed is replaced before the next call: chromadb 1.5 can leave its
    in-process state locked by a write that failed (a full disk), and every later call of the process
    then waits forever, holding the GIL (the bot, ``watch``, a test opening the store again).

    Args:
        client: an embedded or HTTP Chroma client.
        name: the chunk collection's name; articles go to ``<name>-articles``.
        settings: name the data dir or server in storage errors (a full disk is told by its free space).

    """

    def __init__(self, client: chromadb.ClientAPI, name: str = "newsdesk", *, settings: Settings | None = None) -> None:
        self.name = name
        self.settings = settings
        self._attach(client)

    def _attach(self, client: chromadb.ClientAPI) -> None:
        self._raw = client
        self._stale = False
        watched = _Watched(client, self._failed)
        try:
            self._client = watched
            self._chunks = watched.get_or_create_collection(
                self.name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
            )
            self._articles = watched.get_or_create_collection(f"{self.name}-articles", embedding_function=None)
            self._changes = ChangeLog(watched, self.name)
            self.max_batch = int(watched.get_max_batch_size())
        except Exception as exc:  # noqa: BLE001
            raise StoreUnavailable(
                describe_store_error(exc) or f"cannot open collection {self.name!r}: {exc}"
            ) from None

    def _failed(self, error: BaseException) -> None:
        """Forget an embedded client after a failed call (see the class docstring); reopened on next use."""
        if self._stale or isinstance(error, NotFoundError) or not self._raw.get_settings().is_persistent:
            return
        from chromadb.api.shared_system_client import SharedSystemClient

        identifier = getattr(self._raw, "_identifier", None)
        SharedSystemClient._identifier_to_system.pop(identifier, None)
        SharedSystemClient._identifier_to_refcount.pop(identifier, None)
        self._stale = True

    def _fresh(self) -> None:
        if self._stale:
            self._attach(_open_persistent(Path(self._raw.get_settings().persist_directory)))

    @property
    def client(self) -> chromadb.ClientAPI:
        """The Chroma client (watched: see the class docstring)."""
        self._fresh()
        return self._client

    @property
    def chunks(self) -> Collection:
        """The chunk collection."""
        self._fresh()
        return self._chunks

    @property
    def articles(self) -> Collection:
        """The article collection (full texts and records)."""
        self._fresh()
        return self._articles

    @property
    def changes(self) -> ChangeLog:
        """The change feed (see :mod:`newsdesk.changes`)."""
        self._fresh()
        return self._changes

    @contextmanager
    def _writing(self, need: int = 0) -> Iterator[None]:
        """Turn a storage failure of a write into StoreUnavailable with its one-line message.

        ``need``: about how many bytes the write adds (a full disk is told by the free space).
        """
        try:
            yield
        except StoreUnavailable:
            raise
        except Exception as exc:
            message = describe_store_error(exc, self.settings, need)
            if message is None:
                raise
            raise StoreUnavailable(message) from exc

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = True, read_only: bool = False) -> Store:
        """Connect as configured and open the collections (``create``, ``read_only``: see :func:`connect`)."""
        path = Path(settings.chroma_path)
        if create and not settings.chroma_url and not (path / "chroma.sqlite3").exists():
            # Two ingests creating the same new store would race on Chroma's schema and collections
            # ("table collections already exists", "database is locked"): they take turns.
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create the store at {path}: {exc.strerror or exc}") from None
            with FileLock(str(path.parent / ".store-create.lock"), timeout=300):
                return cls._open(connect(settings, create=True), settings)
        client = connect(settings, create=create, read_only=read_only)
        if not create and not settings.chroma_url:
            names = {c.name if hasattr(c, "name") else str(c) for c in client.list_collections()}
            if settings.collection not in names:
                raise StoreUnavailable(
                    f"there is no collection {settings.collection!r} in the store at {settings.data_dir}: "
                    "check --data-dir / NEWSDESK_COLLECTION, or ingest articles first with `newsdesk ingest`"
                )
        return cls._open(client, settings)

    @classmethod
    def _open(cls, client: chromadb.ClientAPI, settings: Settings) -> Store:
        try:
            return cls(client, settings.collection, settings=settings)
        except StoreUnavailable:
            if not settings.chroma_url and disk_nearly_full(settings.data_dir):
                raise StoreUnavailable(describe_store_error(OSError(errno.ENOSPC, "disk full"), settings)) from None
            raise

    # --- collection metadata ---------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return dict(self.client.get_collection(self.name, embedding_function=None).metadata or {})

    def metadata(self) -> dict[str, Any]:
        """The collection's metadata: the embedding model and dimension it was built with, the generation."""
        return self._meta()

    def generation(self) -> int:
        """Return a counter bumped around every write, so caches derived from the store know to rebuild."""
        return int(self._meta().get("generation", 0))

    def bump_generation(self) -> int:
        """Increment and return the generation."""
        with self._writing():
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
                with self._writing():
                    self.chunks.modify(metadata=meta)
        elif stored != model_name or dimension not in (None, int(meta.get("dimension", dimension))):
            raise StoreUnavailable(
                f"collection {self.name!r} was built with embedding model {stored!r}, not {model_name!r}; "
                "set NEWSDESK_EMBEDDING_MODEL back or use another NEWSDESK_COLLECTION"
            )

    # --- articles --------------------------------------------------------------------------------
    def records(self) -> dict[str, ArticleRecord]:
        """Every article record, by id (reads the whole archive: for listings and `--prune`)."""
        return self.records_where(None)

    def records_of(self, article_ids: Iterable[str]) -> dict[str, ArticleRecord]:
        """The records of these articles (those stored), by id: costs what is asked, not the archive."""
        wanted = list(dict.fromkeys(article_ids))
        out: dict[str, ArticleRecord] = {}
        for start in range(0, len(wanted), self.max_batch):
            got = self.articles.get(ids=wanted[start : start + self.max_batch], include=["metadatas"])
            for article_id, meta in zip(got["ids"], got["metadatas"], strict=True):
                out[article_id] = _record(article_id, meta)
        return out

    def records_where(self, where: dict[str, Any] | None) -> dict[str, ArticleRecord]:
        """The records matching a Chroma ``where`` filter on their metadata (None: all of them), by id."""
        out: dict[str, ArticleRecord] = {}
        for ids, metas, _ in self._pages(self.articles, ["metadatas"], where=where):
            for article_id, meta in zip(ids, metas, strict=True):
                out[article_id] = _record(article_id, meta)
        return out

    def records_with_text(self, content_hashes: Iterable[str]) -> dict[str, ArticleRecord]:
        """The records whose text has one of these content hashes (duplicates are told by them), by id."""
        hashes = sorted(set(content_hashes))
        out: dict[str, ArticleRecord] = {}
        for start in range(0, len(hashes), self.max_batch):
            out |= self.records_where({"content_hash": {"$in": hashes[start : start + self.max_batch]}})
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
        with self._writing(write_bytes(items)):
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
        with self._writing():
            self._log_changes([(article_id, DELETE, "")])
            meta = dict(got["metadatas"][0])
            meta["state"] = DELETING
            self.articles.update(ids=[article_id], metadatas=[meta])
            self.chunks.delete(where={"article_id": article_id})
            self.articles.delete(ids=[article_id])
            self.changes.bump()
        return True

    def _log_changes(self, changes: list[tuple[str, str, str]]) -> None:
        """Log the articles a write is about to touch (see :mod:`newsdesk.changes`), before it touches them."""
        self.changes.log(changes, self.max_batch)

    def recover(self) -> list[str]:
        """Finish deletions that an interrupted run left behind; return their ids."""
        done = sorted(self.records_where({"state": DELETING}))
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

    def _pages(
        self, collection: Any, include: list[str], size: int = 5000, where: dict[str, Any] | None = None
    ) -> Iterator[tuple]:
        offset = 0
        while True:
            got = collection.get(include=include, limit=size, offset=offset, where=where)
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
