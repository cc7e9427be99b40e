"""The Chroma store, embedded and real: layout, metadata, cosine search, model guard, journal states.

Vectors here are seeded random unit vectors: the store is under test, not the model (see test_sync).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from ingest.chunking import chunk_article, chunking_key
from newsdesk.errors import StoreUnavailable
from newsdesk.models import Article, text_hash
from newsdesk.store import DELETING, PENDING, READY, Store, published_ord

DIM = 8
KEY = chunking_key(200, 40)


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def article(article_id: str, sentences: int = 12, **fields) -> Article:
    text = " ".join(f"{article_id} sentence {i} reports a plain fact about it." for i in range(sentences))
    return Article(id=article_id, text=text, **fields)


def write(store: Store, *articles: Article, seed: int = 0) -> dict[str, list]:
    items = [(a, chunk_article(a, 200, 40)) for a in articles]
    total = sum(len(chunks) for _, chunks in items)
    store.write_articles(items, unit_vectors(total, seed), KEY)
    return {a.id: chunks for a, chunks in items}


@pytest.fixture
def store(settings) -> Store:
    opened = Store.from_settings(settings)
    opened.check_model("test-model", DIM)
    return opened


def test_collection_uses_cosine_and_scores_are_cosine_similarity(store: Store) -> None:
    assert store.chunks.configuration["hnsw"]["space"] == "cosine"
    chunks = write(store, article("a"), article("b"))
    vectors = unit_vectors(sum(len(c) for c in chunks.values()))
    query = unit_vectors(1, seed=99)[0]
    hits = store.dense_search(query, 5)
    assert len(hits) == 5
    stored = dict(zip([c.id for cs in chunks.values() for c in cs], vectors, strict=True))
    for hit in hits:
        assert hit.score == pytest.approx(float(stored[hit.chunk_id] @ query), abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_chunk_embeddings_returns_the_stored_vectors_of_the_chunks_still_there(store: Store) -> None:
    chunks = write(store, article("a"), article("b"))
    ids = [c.id for cs in chunks.values() for c in cs]
    stored = dict(zip(ids, unit_vectors(len(ids)), strict=True))
    got = store.chunk_embeddings([ids[3], "gone-chunk", ids[0], ids[3]])
    assert sorted(got) == sorted([ids[0], ids[3]])
    for cid, vector in got.items():
        assert vector.dtype == np.float32
        np.testing.assert_allclose(vector, stored[cid], atol=1e-6)
    assert store.chunk_embeddings([]) == {}


def test_chunks_have_deterministic_ids_and_full_metadata(store: Store) -> None:
    a = article("rgb-001", title="Title", source="Reuters", url="https://example.org/a",
                published=date(2024, 10, 31), origin="/corpus/a.txt")
    chunks = write(store, a)["rgb-001"]
    assert len(chunks) >= 3
    got = store.chunks.get(where={"article_id": "rgb-001"}, include=["documents", "metadatas"])
    assert sorted(got["ids"]) == sorted(f"rgb-001::{i}" for i in range(len(chunks)))
    for chunk_id, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
        index = int(chunk_id.rsplit("::", 1)[1])
        assert meta == {
            "article_id": "rgb-001", "title": "Title", "source": "Reuters", "url": "https://example.org/a",
            "published": "2024-10-31", "published_ord": 20241031, "chunk_index": index,
            "char_start": chunks[index].char_start, "char_end": chunks[index].char_end,
            "content_hash": text_hash(a.text),
        }
        assert a.text[meta["char_start"] : meta["char_end"]] == text


def test_published_ord_sorts_and_filters(store: Store) -> None:
    assert published_ord(None) == 0
    assert published_ord(date(2023, 12, 31)) < published_ord(date(2024, 1, 1)) == 20240101
    write(store, article("old", published=date(2019, 5, 1)), article("new", published=date(2024, 2, 29)),
          article("undated"))
    hits = store.dense_search(unit_vectors(1, 5)[0], 50, where={"published_ord": {"$gte": 20240101}})
    assert hits and {h.article_id for h in hits} == {"new"}
    assert all(h.published == date(2024, 2, 29) for h in hits)


def test_article_text_and_record_are_kept(store: Store) -> None:
    a = article("kept", title="T", author="A. Writer", origin="/x/kept.txt", published=date(2024, 1, 2))
    write(store, a)
    assert store.get_article("kept") == a
    assert store.article_texts(["kept", "missing", "kept"]) == {"kept": a.text}
    record = store.records()["kept"]
    assert (record.state, record.fingerprint, record.content_hash, record.chunking) == (
        READY, a.fingerprint(), a.content_hash, KEY)
    assert record.chunks == store.count_chunks()
    assert store.get_article("missing") is None


def test_rewrite_shorter_leaves_no_stale_chunk(store: Store) -> None:
    write(store, article("a", sentences=20), article("b", sentences=20))
    before_b = store.chunks.get(where={"article_id": "b"})["ids"]
    shorter = write(store, article("a", sentences=3), seed=1)["a"]
    ids = store.chunks.get(where={"article_id": "a"})["ids"]
    assert sorted(ids) == sorted(c.id for c in shorter)
    assert store.chunks.get(where={"article_id": "b"})["ids"] == before_b
    assert store.records()["a"].chunks == len(shorter)


def test_another_model_is_refused(store: Store) -> None:
    store.check_model("test-model", DIM)  # the same model again is fine
    with pytest.raises(StoreUnavailable, match="built with embedding model 'test-model'"):
        store.check_model("other-model", DIM)
    with pytest.raises(StoreUnavailable):
        store.check_model("test-model", DIM * 2)


def test_model_and_generation_survive_reopening(settings, store: Store) -> None:
    write(store, article("a"))
    first = store.bump_generation()
    reopened = Store.from_settings(settings)
    assert reopened.generation() == first
    assert reopened.bump_generation() == first + 1
    with pytest.raises(StoreUnavailable):
        reopened.check_model("other-model", DIM)
    assert reopened.count_articles() == 1


def test_delete_article_removes_record_and_chunks(store: Store) -> None:
    write(store, article("a"), article("b"))
    assert store.delete_article("a") is True
    assert store.delete_article("a") is False
    assert set(store.records()) == {"b"}
    assert {meta["article_id"] for _, _, meta in store.iter_chunks()} == {"b"}


def test_recover_finishes_an_interrupted_delete(store: Store) -> None:
    write(store, article("a"), article("b"))
    meta = store.articles.get(ids=["a"], include=["metadatas"])["metadatas"][0]
    store.articles.update(ids=["a"], metadatas=[{**meta, "state": DELETING}])
    assert store.recover() == ["a"]
    assert set(store.records()) == {"b"}
    assert store.chunks.get(where={"article_id": "a"})["ids"] == []


def test_pending_record_is_written_first(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real_add = store.chunks.add

    def add(**kwargs):
        seen.append(store.records()["a"].state)
        return real_add(**kwargs)

    monkeypatch.setattr(store.chunks, "add", add)
    write(store, article("a"))
    assert seen == [PENDING]
    assert store.records()["a"].state == READY


def test_paging_reads_everything(store: Store) -> None:
    write(store, *(article(f"p{i}", sentences=4) for i in range(9)))
    pages = list(store._pages(store.chunks, ["metadatas", "documents"], size=4))
    ids = [chunk_id for page_ids, _, _ in pages for chunk_id in page_ids]
    assert len(pages) > 2 and len(ids) == len(set(ids)) == store.count_chunks()
    assert len(list(store.iter_chunks())) == store.count_chunks()


def test_unreachable_server_is_one_actionable_line(settings) -> None:
    from tests.chroma_server import free_port

    closed = settings.model_copy(update={"chroma_url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(StoreUnavailable) as caught:
        Store.from_settings(closed)
    message = str(caught.value)
    assert "\n" not in message and "cannot reach the Chroma server" in message and "chroma run" in message
    bad = settings.model_copy(update={"chroma_url": "localhost:8000"})
    with pytest.raises(StoreUnavailable, match="not an http"):
        Store.from_settings(bad)


def test_unopenable_directory_is_store_unavailable(tmp_path, settings) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable, match="cannot (open|create) the store"):
        Store.from_settings(settings.model_copy(update={"data_dir": blocker}))


def test_dense_search_skips_chunks_another_process_deleted(settings, store: Store) -> None:
    import subprocess
    import sys

    write(store, article("keep"), article("gone"))
    query = store.chunks.get(ids=["gone::0"], include=["embeddings"])["embeddings"][0]
    assert store.dense_search(query, 1)[0].article_id == "gone"
    script = ("import sys; from newsdesk.store import Store; from newsdesk.settings import Settings; "
              "assert Store.from_settings(Settings(data_dir=sys.argv[1])).delete_article('gone')")
    subprocess.run([sys.executable, "-c", script, str(settings.data_dir)], check=True, timeout=120)
    # this process's embedded client still holds the old vector index: the deleted chunks come back
    # from it without text or metadata, and must be left out rather than crash the search
    hits = store.dense_search(query, 50)
    assert hits and {h.article_id for h in hits} == {"keep"}
