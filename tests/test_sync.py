"""Incremental sync with the real model and a real embedded store."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from chromadb.api.models.Collection import Collection

from ingest.chunking import chunk_article, chunking_key
from ingest.sync import ingest, sync_articles, vanished
from newsdesk.embedding import Embedder
from newsdesk.errors import StoreUnavailable
from newsdesk.models import Article, IngestReport
from newsdesk.store import PENDING, READY, Store

pytestmark = pytest.mark.slow


class CountingEmbedder(Embedder):
    """The real model; remembers every text it was asked to encode."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__(inner.model, inner.name, inner.batch_size)
        self.encoded: list[str] = []

    def encode(self, texts, **kwargs):
        self.encoded.extend(texts)
        return super().encode(texts, **kwargs)


@pytest.fixture
def counting(embedder: Embedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


@pytest.fixture
def store(settings) -> Store:
    return Store.from_settings(settings)


def story(article_id: str, sentences: int, topic: str = "the harbour", **fields) -> Article:
    text = " ".join(f"Report {i} on {topic} notes a separate detail number {i}." for i in range(sentences))
    return Article(id=article_id, text=text, **fields)


def run(articles, store, embedder, settings) -> IngestReport:
    report = IngestReport()
    sync_articles(articles, store, embedder, settings, report)
    return report


def chunk_rows(store: Store, article_id: str) -> dict[str, tuple[str, int, int]]:
    got = store.chunks.get(where={"article_id": article_id}, include=["documents", "metadatas"])
    return {cid: (doc, m["char_start"], m["char_end"])
            for cid, doc, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)}


def test_unchanged_article_embeds_nothing(store, counting, settings) -> None:
    articles = [story("a", 30), story("b", 4, topic="the election")]
    first = run(articles, store, counting, settings)
    assert first.added == ["a", "b"] and first.chunks_embedded > 2
    # the chunks, then their answer sentences for the answerer (newsdesk/sentence_vectors.py)
    assert first.chunks_embedded + first.sentences_embedded == len(counting.encoded)
    generation, snapshot = store.generation(), chunk_rows(store, "a")
    counting.encoded.clear()
    again = run([story("a", 30), story("b", 4, topic="the election")], store, counting, settings)
    assert again.unchanged == ["a", "b"] and not (again.added or again.updated or again.duplicates)
    assert counting.encoded == [] and again.chunks_embedded == 0
    assert store.generation() == generation and chunk_rows(store, "a") == snapshot


def test_changed_longer_to_shorter_replaces_all_chunks(store, counting, settings) -> None:
    run([story("a", 60), story("z", 3)], store, counting, settings)
    old = chunk_rows(store, "a")
    assert len(old) >= 5
    shorter = story("a", 6, topic="the airport")
    counting.encoded.clear()
    report = run([shorter], store, counting, settings)
    assert report.updated == ["a"]
    expected = chunk_article(shorter, settings.chunk_size, settings.chunk_overlap)
    assert chunk_rows(store, "a") == {c.id: (c.text, c.char_start, c.char_end) for c in expected}
    texts = [c.text for c in expected]
    assert counting.encoded[: len(texts)] == texts  # the new chunks; the rest are answer sentences not seen yet
    assert all(t not in texts for t in counting.encoded[len(texts) :])
    record = store.records()["a"]
    assert (record.state, record.chunks, record.fingerprint) == (READY, len(expected), shorter.fingerprint())
    assert store.get_article("a").text == shorter.text
    assert len(chunk_rows(store, "z")) == 1, "another article was touched"


def test_metadata_change_updates_chunk_metadata(store, counting, settings) -> None:
    run([story("a", 3, title="Old title")], store, counting, settings)
    report = run([story("a", 3, title="New title", published=date(2024, 3, 1))], store, counting, settings)
    assert report.updated == ["a"]
    metas = store.chunks.get(where={"article_id": "a"}, include=["metadatas"])["metadatas"]
    assert {(m["title"], m["published_ord"]) for m in metas} == {("New title", 20240301)}


def test_duplicate_content_is_stored_once(store, counting, settings) -> None:
    first = run([story("a", 5), story("copy-of-a", 5)], store, counting, settings)
    assert first.added == ["a"] and first.duplicates == ["copy-of-a"]
    assert any("copy-of-a" in w and "same text as a" in w for w in first.warnings)
    later = run([story("again-a", 5)], store, counting, settings)
    assert later.duplicates == ["again-a"] and later.chunks_embedded == 0
    assert set(store.records()) == {"a"}


def test_duplicate_check_sees_this_runs_changes_in_any_order(store, counting, settings) -> None:
    # "a" moves away from text X in the same run that "b" arrives with X: X must stay stored.
    run([story("a", 5)], store, counting, settings)
    report = run([story("b", 5), story("a", 7, topic="the mine")], store, counting, settings)
    assert report.added == ["b"] and report.updated == ["a"] and report.duplicates == []
    assert store.get_article("b").text == story("b", 5).text


def test_article_that_becomes_a_duplicate_loses_its_old_text(store, counting, settings) -> None:
    run([story("a", 5), story("b", 5, topic="the port")], store, counting, settings)
    report = run([story("b", 5)], store, counting, settings)  # b now carries a's text
    assert report.duplicates == ["b"]
    assert set(store.records()) == {"a"} and chunk_rows(store, "b") == {}


def test_a_small_ingest_reads_only_the_records_it_is_about(store, counting, settings, monkeypatch) -> None:
    # Reading every record made a 10-article ingest into a million-chunk archive take ten minutes.
    run([story(f"old-{i}", 3, topic=f"the quay {i}") for i in range(6)], store, counting, settings)
    interrupted = story("old-5", 2, topic="the ferry")
    store._upsert_records([(interrupted, chunk_article(interrupted, 800, 150), PENDING)], chunking_key(800, 150))
    monkeypatch.setattr(Store, "records", lambda self: pytest.fail("a small ingest read every record"))
    reads: list[dict] = []
    real_get = Collection.get

    def get(self, *args, **kwargs):
        if self.name == f"{store.name}-articles":
            reads.append(kwargs)
        return real_get(self, *args, **kwargs)

    monkeypatch.setattr(Collection, "get", get)
    report = run([story("old-1", 3, topic="the quay 1"), story("copy", 3, topic="the quay 2"),
                  story("new", 3, topic="the tram")], store, counting, settings)
    assert report.unchanged == ["old-1"] and report.duplicates == ["copy"] and report.added == ["new"]
    assert report.updated == ["old-5"] and store.get_article("old-5").text == interrupted.text
    # every read of the article records names ids or a filter: none pages through them all
    assert reads and all(kw.get("ids") or kw.get("where") for kw in reads)


def test_same_id_twice_in_one_run_is_a_failure(store, counting, settings) -> None:
    report = run([story("a", 3), story("a", 4, topic="the dam")], store, counting, settings)
    assert report.added == ["a"] and len(report.failed) == 1 and "appears twice" in report.failed[0].error
    assert store.get_article("a").text == story("a", 3).text


def test_new_chunk_settings_rechunk_everything(store, counting, settings) -> None:
    run([story("a", 30)], store, counting, settings)
    smaller = settings.model_copy(update={"chunk_size": 300, "chunk_overlap": 0})
    report = run([story("a", 30)], store, counting, smaller)
    assert report.updated == ["a"]
    assert store.records()["a"].chunking == chunking_key(300, 0)
    assert all(len(doc) <= 300 for doc, _, _ in chunk_rows(store, "a").values())


def test_interrupted_write_is_finished_even_when_not_given_again(store, counting, settings) -> None:
    long = story("a", 30)
    run([long], store, counting, settings)
    # what a run killed mid-write leaves: the new version's record pending, the old chunks still there
    short = story("a", 3, topic="the square")
    store._upsert_records([(short, chunk_article(short, 800, 150), PENDING)], chunking_key(800, 150))
    report = run([story("other", 2, topic="the bridge")], store, counting, settings)
    assert "a" in report.updated and any("interrupted" in w for w in report.warnings)
    expected = chunk_article(short, settings.chunk_size, settings.chunk_overlap)
    assert chunk_rows(store, "a") == {c.id: (c.text, c.char_start, c.char_end) for c in expected}
    assert store.records()["a"].state == READY


def test_store_built_with_another_model_refuses_to_sync(store, embedder, settings) -> None:
    run([story("a", 3)], store, embedder, settings)
    other = Embedder(embedder.model, "another-model", embedder.batch_size)
    with pytest.raises(StoreUnavailable, match="another-model"):
        run([story("b", 3)], store, other, settings)
    assert set(store.records()) == {"a"}


# --- ingest() through the real loaders: prune --------------------------------------------------------
def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_prune_removes_vanished_keeps_failed_and_other_roots(tmp_path, store, counting, settings) -> None:
    news, other = tmp_path / "news", tmp_path / "other"
    _write(news / "gone.txt", "This article will be deleted from disk before the next run.")
    _write(news / "broken.txt", "This article will become an empty file, which fails to load.")
    _write(news / "stays.txt", "This article stays exactly as it is.")
    _write(news / "feed.jsonl", '{"id": "j1", "text": "First line article."}\n'
                                '{"id": "j2", "text": "Second line article, soon a bad line."}\n')
    _write(other / "elsewhere.txt", "This one lives under another root.")
    first = ingest([str(news), str(other)], settings, store, counting)
    assert sorted(first.added) == ["broken.txt", "elsewhere.txt", "gone.txt", "j1", "j2", "stays.txt"]
    (news / "gone.txt").unlink()
    (news / "broken.txt").write_text("", encoding="utf-8")
    _write(news / "feed.jsonl", '{"id": "j1", "text": "First line article."}\n{"id": "j2", "text": oops}\n')

    report = ingest([str(news)], settings, store, counting, prune=True)
    assert report.removed == ["gone.txt"]
    assert {f.source.rsplit("/", 1)[-1] for f in report.failed} == {"broken.txt", "feed.jsonl:2"}
    assert sorted(store.records()) == ["broken.txt", "elsewhere.txt", "j1", "j2", "stays.txt"]
    assert chunk_rows(store, "gone.txt") == {}

    without = ingest([str(news)], settings, store, counting)  # no --prune: nothing removed
    assert without.removed == []


def test_vanished_keeps_everything_under_a_failed_directory(store, embedder, settings) -> None:
    root = os.path.abspath("corpus")
    articles = [Article(id=name, text=f"Text of {name}.", origin=os.path.join(root, *name.split("/")))
                for name in ("a.txt", "locked/b.txt", "locked/deeper/c.txt")]
    run(articles, store, embedder, settings)
    assert vanished(store, [root], set(), {os.path.join(root, "locked")}) == ["a.txt"]
    assert vanished(store, [root], {"a.txt"}, set()) == ["locked/b.txt", "locked/deeper/c.txt"]
    assert vanished(store, [os.path.join(root, "loc")], set(), set()) == []  # a prefix is not a parent


# --- batching ------------------------------------------------------------------------------------------------
def _article(i: int, sentences: int) -> Article:
    text = " ".join(f"Sentence {j} of article {i} says something about item {j}." for j in range(sentences))
    return Article(id=f"b{i:03d}", source="Wire", text=text)


def test_batches_end_at_the_article_or_chunk_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.sync

    monkeypatch.setattr(ingest.sync, "BATCH_ARTICLES", 3)
    monkeypatch.setattr(ingest.sync, "BATCH_CHUNKS", 5)
    todo = [(_article(i, 1), [None] * n) for i, n in enumerate([1, 1, 1, 1, 4, 9, 2, 2])]
    sizes = [[len(chunks) for _, chunks in batch] for batch in ingest.sync.batches(todo)]
    assert sizes == [[1, 1, 1], [1, 4], [9], [2, 2]]  # an article alone over the chunk limit stays whole
    assert [a for batch in ingest.sync.batches(todo) for a, _ in batch] == [a for a, _ in todo]


def test_writes_keep_their_order_and_a_failed_write_stops_the_run(
    counting: CountingEmbedder, store: Store, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.sync

    monkeypatch.setattr(ingest.sync, "BATCH_ARTICLES", 2)
    articles = [_article(i, 3) for i in range(7)]
    written: list[list[str]] = []
    original = store.write_articles

    def recording(items, vectors, chunking=""):
        written.append([a.id for a, _ in items])
        assert len(vectors) == sum(len(c) for _, c in items)
        return original(items, vectors, chunking)

    monkeypatch.setattr(store, "write_articles", recording)
    seen: list[tuple[int, int]] = []
    report = IngestReport()
    sync_articles(articles, store, counting, settings, report, progress=lambda _, d, t: seen.append((d, t)))
    assert written == [["b000", "b001"], ["b002", "b003"], ["b004", "b005"], ["b006"]]
    assert report.chunks_embedded == store.count_chunks() == seen[-1][0] == seen[-1][1]
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) == 4
    assert all(rec.state == READY for rec in store.records().values())

    def failing(items, vectors, chunking=""):
        raise StoreUnavailable("the server went away")

    monkeypatch.setattr(store, "write_articles", failing)
    changed = [a.model_copy(update={"text": a.text + " Updated."}) for a in articles]
    with pytest.raises(StoreUnavailable):
        sync_articles(changed, store, counting, settings, IngestReport())
