"""Sentence vectors computed at ingest (newsdesk/sentence_vectors.py): stored, reused, backfilled, never required."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ingest.sync import ingest
from newsdesk.app.runtime import Services
from newsdesk.sentence_vectors import FILE_NAME, SentenceVectors
from newsdesk.sentences import answer_sentences
from newsdesk.store import Store

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
KARACHI = "How many Chinese engineers were killed in the Karachi airport bombing?"


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to encode."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.encoded: list[str] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def encode(self, texts: list[str], **kwargs) -> np.ndarray:
        self.encoded.extend(texts)
        return self.inner.encode(texts, **kwargs)

    def embed_query_array(self, text: str) -> np.ndarray:
        return self.inner.embed_query_array(text)


def test_answer_sentences_join_fragments_and_drop_scraps() -> None:
    text = "Oct 19, 2021 ... The dam opened on Monday. Ok. It will power two million homes. Yes."
    spans = [text[s:e] for s, e in answer_sentences(text)]
    # a dateline or a short word joins the sentence after it; a scrap left at the end is dropped
    assert spans == ["Oct 19, 2021 ... The dam opened on Monday.", "Ok. It will power two million homes."]


def test_get_many_returns_what_was_put_and_ignores_other_models(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    vectors = SentenceVectors(path, "model-a", 3)
    vectors.put_many(["one", "two"], np.eye(3, dtype=np.float32)[:2])
    got = vectors.get_many(["two", "three", "one"])
    assert set(got) == {"one", "two"} and np.allclose(got["two"], [0, 1, 0])
    assert SentenceVectors(path, "model-b", 3, read_only=True).get_many(["one"]) == {}
    assert SentenceVectors(tmp_path / "none.sqlite3", "model-a", read_only=True).get_many(["one"]) == {}
    assert not (tmp_path / "none.sqlite3").exists()  # reading never creates the file


def test_a_damaged_cache_reads_as_empty(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    path.write_bytes(b"not a database at all" * 100)
    assert SentenceVectors(path, "m", read_only=True).get_many(["a sentence"]) == {}


@pytest.mark.slow
def test_ingest_stores_every_answer_sentence_and_answering_embeds_none(settings, embedder) -> None:
    store = Store.from_settings(settings)
    report = ingest([str(SAMPLE)], settings, store, embedder)
    assert report.sentences_embedded > 0 and not report.failed
    texts = [text for _, text, _ in store.iter_chunks()]
    sentences = {t[s:e] for t in texts for s, e in answer_sentences(t)}
    stored = SentenceVectors.for_embedder(settings.data_dir, embedder, read_only=True).get_many(sentences)
    assert set(stored) == sentences
    # the stored vector is the one the model gives for the sentence
    some = sorted(sentences)[:5]
    assert np.allclose(np.stack([stored[s] for s in some]), embedder.encode(some), atol=1e-5)

    counting = CountingEmbedder(embedder)
    services = Services.from_settings(settings, embedder=counting, store=store)
    answer = services.answerer.answer(KARACHI)
    assert not answer.abstained and "two Chinese engineers" in answer.text
    assert counting.encoded == []  # every sentence scored came from the store

    # re-ingesting the same articles embeds nothing again
    again = ingest([str(SAMPLE)], settings, store, embedder)
    assert again.sentences_embedded == 0 and again.chunks_embedded == 0


@pytest.mark.slow
def test_a_one_sentence_article_is_encoded_once(settings, embedder, tmp_path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    brief = "The Orlen footbridge reopened to walkers on Monday after two years of repairs."
    (corpus / "brief.txt").write_text(brief + "\n", encoding="utf-8")
    (corpus / "long.txt").write_text("The dam opened on Monday. It will power two million homes.", encoding="utf-8")
    counting = CountingEmbedder(embedder)
    report = ingest([str(corpus)], settings, Store.from_settings(settings), counting)
    assert not report.failed and report.chunks_embedded == 2
    # the brief's one sentence is its whole chunk: its chunk vector serves as its sentence vector
    assert counting.encoded.count(brief) == 1 and report.sentences_embedded == 2
    stored = SentenceVectors.for_embedder(settings.data_dir, embedder, read_only=True).get_many([brief])
    assert np.allclose(stored[brief], embedder.encode([brief])[0], atol=1e-5)


@pytest.mark.slow
def test_a_store_without_vectors_is_backfilled_once_and_answers_the_same(settings, embedder, tmp_path) -> None:
    plain = settings.model_copy(update={"precompute_sentences": False})
    store = Store.from_settings(plain)
    assert ingest([str(SAMPLE)], plain, store, embedder).sentences_embedded == 0
    assert not (Path(settings.data_dir) / FILE_NAME).exists()
    before = Services.from_settings(plain, embedder=embedder, store=store).answerer.answer(KARACHI)

    report = ingest([str(SAMPLE)], settings, store, embedder)  # nothing changed: only the backfill runs
    assert report.chunks_embedded == 0 and report.sentences_embedded > 0
    assert ingest([str(SAMPLE)], settings, store, embedder).sentences_embedded == 0
    after = Services.from_settings(settings, embedder=embedder, store=store).answerer.answer(KARACHI)
    assert after.text == before.text and after.metadata["features"] == before.metadata["features"]


@pytest.mark.slow
def test_a_cache_that_cannot_be_written_is_a_warning_and_ingest_goes_on(settings, embedder, tmp_path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLE, corpus)
    (Path(settings.data_dir) / FILE_NAME).mkdir(parents=True)  # a directory where the file should be
    store = Store.from_settings(settings)
    report = ingest([str(corpus)], settings, store, embedder)
    assert not report.failed and report.chunks_embedded > 0 and report.sentences_embedded == 0
    assert any(w.startswith("sentence vectors not stored") for w in report.warnings)
    answer = Services.from_settings(settings, embedder=embedder, store=store).answerer.answer(KARACHI)
    assert not answer.abstained
