"""Incremental ingest: load, compare with the store, embed only what changed, prune what vanished."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ingest.chunking import chunk_article, chunking_key
from newsdesk.embedding import Embedder
from newsdesk.models import Article, Chunk, IngestFailure, IngestReport
from newsdesk.sentence_vectors import FILE_NAME as SENTENCES_FILE
from newsdesk.sentence_vectors import SentenceVectors
from newsdesk.settings import Settings
from newsdesk.store import PENDING, READY, Store

#: Articles embedded and written together; bounds memory and the work lost to an interruption.
BATCH_ARTICLES = 256
#: A batch also ends at this many chunks (long articles), so one write never holds too much.
BATCH_CHUNKS = 1024

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def ingest(
    inputs: Sequence[str],
    settings: Settings,
    store: Store,
    embedder: Embedder,
    *,
    prune: bool = False,
    progress: Progress | None = None,
) -> IngestReport:
    """Load ``inputs`` (paths, directories, URLs, feeds) and bring the store up to date with them.

    Unchanged articles cost nothing; changed ones are replaced whole; exact duplicates of stored text
    under another id are reported and not stored again; with ``prune``, stored articles under the
    given roots whose source has vanished are removed. One bad input never stops the rest.
    """
    from ingest.loaders import load_sources

    started = time.perf_counter()
    on_load = (lambda source: progress("load", 0, 0)) if progress else None
    loaded = load_sources(list(inputs), settings, progress=on_load)
    report = IngestReport(failed=list(loaded.failures), warnings=list(loaded.warnings))
    # a store made before sentence vectors existed (or with them off) gets all of them once
    backfill = settings.precompute_sentences and not (Path(settings.data_dir) / SENTENCES_FILE).exists()
    sync_articles(loaded.articles, store, embedder, settings, report, progress=progress)
    if backfill and store.count_chunks():
        backfill_sentences(store, embedder, settings, report, progress=progress)
    if prune:
        failed_origins = {_origin_of(f) for f in loaded.failures}
        loaded_ids = {a.id for a in loaded.articles}
        for article_id in vanished(store, loaded.roots, loaded_ids, failed_origins):
            if store.delete_article(article_id):
                report.removed.append(article_id)
        if report.removed:
            store.bump_generation()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def sync_articles(
    articles: Iterable[Article],
    store: Store,
    embedder: Embedder,
    settings: Settings,
    report: IngestReport,
    *,
    progress: Progress | None = None,
) -> None:
    """Write the new and changed ``articles`` to ``store``, recording each outcome in ``report``.

    Also finishes what an interrupted earlier run left half done: deletions are completed, and
    articles left ``pending`` are rewritten from their stored text even when not given this time.
    """
    store.check_model(embedder.name)  # the name alone: refusing a mismatch needs no loaded model
    store.recover()
    chunking = chunking_key(settings.chunk_size, settings.chunk_overlap)
    loaded: dict[str, Article] = {}
    for article in articles:
        if article.id in loaded:
            report.failed.append(IngestFailure(
                source=article.origin or article.id,
                error=f"id {article.id!r} appears twice in this run; kept the first"))
        else:
            loaded[article.id] = article
    # Only the records this run is about are read (the loaded ids, the stored texts equal to a loaded
    # one, the writes left pending): ingesting k articles costs O(k) however large the archive.
    records = store.records_of(loaded)
    # Stored texts that stay stored after this run: the originals duplicates are measured against.
    # An article whose text changes in this run no longer holds its old text, whatever the order.
    by_hash: dict[str, str] = {}
    same_text = store.records_with_text(a.content_hash for a in loaded.values())
    for rid, rec in sorted(same_text.items()):
        if rec.state == READY and (rid not in loaded or loaded[rid].content_hash == rec.content_hash):
            by_hash.setdefault(rec.content_hash, rid)
    todo: list[tuple[Article, list[Chunk]]] = []
    for article in loaded.values():
        record = records.get(article.id)
        if (record and record.state == READY and record.fingerprint == article.fingerprint()
                and record.chunking == chunking):
            report.unchanged.append(article.id)
            continue
        twin = by_hash.setdefault(article.content_hash, article.id)
        if twin != article.id:
            report.duplicates.append(article.id)
            report.warnings.append(f"{article.id}: same text as {twin}; stored once")
            if record:  # its earlier, different text is gone from the source
                store.delete_article(article.id)
                store.bump_generation()
            continue
        (report.updated if record else report.added).append(article.id)
        todo.append((article, chunk_article(article, settings.chunk_size, settings.chunk_overlap)))
    for rid in sorted(store.records_where({"state": PENDING})):
        if rid not in loaded and (article := store.get_article(rid)) is not None:
            report.updated.append(rid)
            report.warnings.append(f"{rid}: finished writing it (an earlier run was interrupted)")
            todo.append((article, chunk_article(article, settings.chunk_size, settings.chunk_overlap)))
    if not todo:
        return
    store.check_model(embedder.name, embedder.dimension)
    store.bump_generation()
    total = sum(len(chunks) for _, chunks in todo)
    done = 0
    # One batch is encoded, then written. Writing it on a thread while the next batch is encoded was
    # measured slower on 2 cores (the encoder already keeps both busy; benchmarks/ingest_throughput.py).
    sentences = (
        SentenceVectors.for_embedder(settings.data_dir, embedder) if settings.precompute_sentences else None
    )
    for batch in batches(todo):
        texts = [chunk.text for _, chunks in batch for chunk in chunks]
        vectors = embedder.encode(texts)
        store.write_articles(batch, vectors, chunking)
        if sentences is not None:
            report.sentences_embedded += _precompute(sentences, texts, embedder, report, vectors)
        done += len(texts)
        report.chunks_embedded += len(texts)
        if progress:
            progress("embed", done, total)
    store.bump_generation()


def backfill_sentences(
    store: Store, embedder: Embedder, settings: Settings, report: IngestReport, *, progress: Progress | None = None
) -> None:
    """Embed the answer sentences of every stored chunk that has none stored (see :mod:`newsdesk.sentence_vectors`)."""
    sentences = SentenceVectors.for_embedder(settings.data_dir, embedder)
    total, done, texts = store.count_chunks(), 0, []
    for _, text, _ in store.iter_chunks():
        texts.append(text)
        if len(texts) == BATCH_CHUNKS:
            report.sentences_embedded += _precompute(sentences, texts, embedder, report)
            done, texts = done + len(texts), []
            if progress:
                progress("sentences", done, total)
    if texts:
        report.sentences_embedded += _precompute(sentences, texts, embedder, report)
        if progress:
            progress("sentences", total, total)


def _precompute(
    sentences: SentenceVectors, texts: list[str], embedder: Embedder, report: IngestReport,
    vectors: np.ndarray | None = None,
) -> int:
    """Embed the answer sentences of ``texts`` for the answerer; a cache that cannot be written is a warning.

    ``vectors``: the chunks' own, which a sentence that is a whole chunk reuses.
    """
    try:
        return sentences.add_chunks(texts, embedder, vectors)
    except (sqlite3.Error, OSError) as exc:
        warning = f"sentence vectors not stored ({exc}): answers will embed their sentences (slower)"
        if warning not in report.warnings:
            report.warnings.append(warning)
        return 0


def batches(todo: list[tuple[Article, list[Chunk]]]) -> Iterator[list[tuple[Article, list[Chunk]]]]:
    """Consecutive groups of at most :data:`BATCH_ARTICLES` articles and (unless one alone) :data:`BATCH_CHUNKS` chunks.

    The encoder sorts each group's chunks by length, so a group spanning many articles keeps its
    forward passes full of texts of one length.
    """
    batch: list[tuple[Article, list[Chunk]]] = []
    size = 0
    for article, chunks in todo:
        if batch and (len(batch) >= BATCH_ARTICLES or size + len(chunks) > BATCH_CHUNKS):
            yield batch
            batch, size = [], 0
        batch.append((article, chunks))
        size += len(chunks)
    if batch:
        yield batch


def vanished(
    store: Store, roots: Sequence[str], loaded_ids: set[str], failed_origins: set[str]
) -> list[str]:
    """List the stored articles that came from under ``roots`` but were not loaded this time.

    An article whose source failed to load this run is kept: it is unreadable, not gone. That
    includes everything under a directory that could not be listed.
    """
    out = []
    for article_id, record in store.records().items():
        if article_id in loaded_ids or not record.origin:
            continue
        if any(_under(record.origin, failed) for failed in failed_origins):
            continue
        if any(_under(record.origin, root) for root in roots):
            out.append(article_id)
    return sorted(out)


def _under(origin: str, root: str) -> bool:
    if origin == root:
        return True
    if "://" in root:
        return False
    return origin.startswith(root.rstrip(os.sep) + os.sep)


def _origin_of(failure: IngestFailure) -> str:
    source = failure.source
    if "://" in source:
        return source
    path, _, line = source.rpartition(":")
    if path and line.isdigit():  # "file.jsonl:17" names one line of a file that still exists
        source = path
    return os.path.abspath(source)
