"""Incremental ingest: load, compare with the store, embed only what changed, prune what vanished."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ingest.chunking import chunk_article
from ingest.embedding import Embedder
from ingest.store import READY, Store
from newsdesk.models import Article, Chunk, IngestFailure, IngestReport
from newsdesk.settings import Settings

#: Articles embedded and written together; bounds memory and the work lost to an interruption.
BATCH_ARTICLES = 256

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
    sync_articles(loaded.articles, store, embedder, settings, report, progress=progress)
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
    """Write the new and changed ``articles`` to ``store``, recording each outcome in ``report``."""
    store.check_model(embedder.name, embedder.dimension)
    store.recover()
    records = store.records()
    by_hash = {rec.content_hash: rid for rid, rec in records.items() if rec.state == READY}
    todo: list[tuple[Article, list[Chunk]]] = []
    seen: set[str] = set()
    for article in articles:
        if article.id in seen:
            report.failed.append(IngestFailure(source=article.origin or article.id,
                                               error=f"id {article.id!r} appears twice in this run; kept the first"))
            continue
        seen.add(article.id)
        record = records.get(article.id)
        if record and record.state == READY and record.fingerprint == article.fingerprint():
            report.unchanged.append(article.id)
            continue
        twin = by_hash.get(article.content_hash)
        if twin is not None and twin != article.id:
            report.duplicates.append(article.id)
            report.warnings.append(f"{article.id}: same text as {twin}; stored once")
            continue
        by_hash[article.content_hash] = article.id
        (report.updated if record else report.added).append(article.id)
        todo.append((article, chunk_article(article, settings.chunk_size, settings.chunk_overlap)))
    if not todo:
        return
    store.bump_generation()
    total = sum(len(chunks) for _, chunks in todo)
    done = 0
    for start in range(0, len(todo), BATCH_ARTICLES):
        batch = todo[start : start + BATCH_ARTICLES]
        texts = [chunk.text for _, chunks in batch for chunk in chunks]
        store.write_articles(batch, embedder.encode(texts))
        done += len(texts)
        report.chunks_embedded += len(texts)
        if progress:
            progress("embed", done, total)
    store.bump_generation()


def vanished(
    store: Store, roots: Sequence[str], loaded_ids: set[str], failed_origins: set[str]
) -> list[str]:
    """Stored articles that came from under ``roots`` but were not loaded this time.

    An article whose source failed to load this run is kept: it is unreadable, not gone.
    """
    out = []
    for article_id, record in store.records().items():
        if article_id in loaded_ids or not record.origin or record.origin in failed_origins:
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
    return str(Path(source).resolve())
