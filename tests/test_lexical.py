"""The pruned BM25 top k (`retrieval.lexical.top_bm25`) against FTS5's exhaustive `bm25()`, on real SQLite.

A corpus with a Zipf-like vocabulary makes rare and common terms; a tiny first-pass budget forces the
pruned passes at a few hundred rows, as 20,000 postings do at a million chunks.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import date

import pytest

from newsdesk.models import Article
from newsdesk.store import Store
from retrieval.base import SearchFilters
from retrieval.lexical import FtsBM25, LexicalIndex, _fts_query, fts_term, fts_totals, tokenize, top_bm25
from retrieval.search import HybridSearcher
from tests.test_search import CORPUS, write_plain

WORDS = [f"w{i}" for i in range(300)]


def zipf_texts(count: int, seed: int = 3) -> list[str]:
    """Texts of 20-80 words; word i is drawn with weight 1 / (i + 1), so w0 is everywhere and w299 rare."""
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    return [" ".join(rng.choices(WORDS, weights, k=rng.randint(20, 80))) for _ in range(count)]


def exhaustive(index: FtsBM25, terms: list[str], n: int) -> list[tuple[int, float]]:
    return _fts_query(index._db, [t for t in terms if index.doc_freq.get(t)], n, "", ())


def same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> bool:
    return [r for r, _ in got] == [r for r, _ in want] and all(
        g == pytest.approx(w, rel=1e-9) for (_, g), (_, w) in zip(got, want, strict=True)
    )


@pytest.fixture(scope="module")
def zipf() -> FtsBM25:
    return FtsBM25(zipf_texts(600))


def queries(count: int, seed: int = 5) -> list[list[str]]:
    """One to three rare words with two to four common ones, as questions are."""
    rng = random.Random(seed)
    return [rng.sample(WORDS[150:], rng.randint(1, 3)) + rng.sample(WORDS[:30], rng.randint(2, 4))
            for _ in range(count)]


def test_fts_totals_read_the_rows_and_mean_length_bm25_uses(zipf: FtsBM25) -> None:
    texts = zipf_texts(600)
    rows, avgdl = fts_totals(zipf._db)
    assert rows == 600 and avgdl == pytest.approx(sum(len(t.split()) for t in texts) / 600)
    empty = sqlite3.connect("")
    empty.execute("CREATE VIRTUAL TABLE fts USING fts5(tokens, tokenize='ascii')")
    assert fts_totals(empty) == (0, 0.0)


def test_a_pruned_answer_proven_exact_is_the_exhaustive_top_k(zipf: FtsBM25) -> None:
    passes = {}
    for terms in queries(60):
        got, how = top_bm25(zipf._db, terms, zipf.doc_freq, 10, postings=40)
        passes[how] = passes.get(how, 0) + 1
        if how == "exact":
            assert same(got, exhaustive(zipf, terms, 10)), terms
    # the budget forces both pruned outcomes (else this test would prove nothing)
    assert passes.get("exact", 0) >= 10 and passes.get("rare-first", 0) >= 1, passes


def test_an_unproven_pruned_answer_keeps_the_best_rows_of_the_rare_terms(zipf: FtsBM25) -> None:
    overlap, checked = 0.0, 0
    for terms in queries(60):
        got, how = top_bm25(zipf._db, terms, zipf.doc_freq, 10, postings=40)
        if how != "rare-first":
            continue
        want = exhaustive(zipf, terms, 10)
        assert len(got) == 10 and [s for _, s in got] == sorted((s for _, s in got), reverse=True)
        # its scores are full bm25() scores: a row in both lists scores the same in both
        common = dict(want)
        assert all(score == pytest.approx(common[r], rel=1e-9) for r, score in got if r in common)
        overlap += len({r for r, _ in got} & set(common)) / 10
        checked += 1
    # approximate on purpose, and harsher here (40 postings of 600 rows, half the words common) than on
    # questions over a large archive: most of the exhaustive top 10 is still there
    assert checked and overlap / checked >= 0.6


def test_a_large_budget_scores_every_match(zipf: FtsBM25) -> None:
    for terms in queries(10):
        got, how = top_bm25(zipf._db, terms, zipf.doc_freq, 10, postings=10**9)
        assert how == "exhaustive" and same(got, exhaustive(zipf, terms, 10))


def test_too_few_rows_with_the_rare_terms_falls_back_to_every_match() -> None:
    # "needle" is in 3 texts, "hay" in all 200: the rare pass finds 3 rows where 10 are asked for
    texts = [f"hay {'needle ' if i % 70 == 0 else ''}straw {i}" for i in range(200)]
    index = FtsBM25(texts)
    terms = ["needl", "hay"]
    got, how = top_bm25(index._db, terms, index.doc_freq, 10, postings=5)
    assert how == "exhaustive" and same(got, exhaustive(index, terms, 10))
    assert {r for r, _ in got[:3]} == {0, 70, 140}
    # with 3 asked for, the rare rows are enough, and provably the best
    got, how = top_bm25(index._db, terms, index.doc_freq, 3, postings=5)
    assert how == "exact" and same(got, exhaustive(index, terms, 3))
    assert top_bm25(index._db, ["volcano"], index.doc_freq, 3) == ([], "empty")


def test_pruned_scores_of_benchmark_engine_match_the_exhaustive_one() -> None:
    texts = zipf_texts(300, seed=9)
    full, pruned = FtsBM25(texts), FtsBM25(texts, postings=30, depth=10)
    query = "w200 w250 w1 w2 w3"
    top = full.scores(query).argsort()[::-1][:10]
    assert sum(pruned.passes.values()) == 0
    scores = pruned.scores(query)
    assert sum(pruned.passes.values()) == 1 and (scores > 0).sum() == 10
    if pruned.passes["exact"]:
        assert set(scores.nonzero()[0]) == set(top)


# --- the store's index ------------------------------------------------------------------------------------
def vocab_df(index: LexicalIndex) -> dict[str, int]:
    return dict(index._db.execute("SELECT term, doc FROM vocab"))


def test_the_kept_document_frequencies_follow_writes_updates_and_removals(settings) -> None:
    store = Store.from_settings(settings)
    write_plain(store, CORPUS)
    searcher = HybridSearcher(store, None, settings)
    index = searcher.lexical_snapshot()
    kept = dict(index._db.execute("SELECT term, df FROM terms"))
    assert kept == vocab_df(index) and kept[fts_term("lighthous")] >= 2
    changed = CORPUS[2].model_copy(update={"text": "The dam was closed for repairs to the lighthouse crane."})
    write_plain(store, [changed])
    store.delete_article("election")
    index = searcher.lexical_snapshot()
    kept = dict(index._db.execute("SELECT term, df FROM terms"))
    assert kept == vocab_df(index) and fts_term("mayor") not in kept
    assert index.doc_freq(["crane", "volcano"]) == {"crane": 2, "volcano": 0}
    assert index.count == store.count_chunks()


def test_the_store_index_prunes_to_the_same_top_k_with_and_without_filters(settings) -> None:
    store = Store.from_settings(settings)
    rng = random.Random(1)
    articles = [Article(id=f"a{i}", source=["Wire", "Blog"][i % 2], published=date(2020 + i % 4, 1, 1),
                        text=". ".join(" ".join(rng.choices(WORDS[:120], [1 / (j + 1) for j in range(120)], k=12))
                                       for _ in range(3)) + ".")
                for i in range(80)]
    write_plain(store, articles)
    searcher = HybridSearcher(store, None, settings)
    index = searcher.lexical_snapshot()
    filters = [None, SearchFilters(sources=["Wire"]), SearchFilters(since=date(2022, 1, 1))]
    for words in (["w90", "w100", "w0", "w1"], ["w70", "w2", "w3"], ["w110", "w0"]):
        query = " ".join(words)
        for chosen in filters:
            index.prune_postings = 10**9
            full = [(p.chunk_id, p.score) for p in searcher.lexical(query, 5, chosen)]
            assert index.last_pass == "exhaustive"
            index.prune_postings = 3
            pruned = [(p.chunk_id, p.score) for p in searcher.lexical(query, 5, chosen)]
            assert index.last_pass in ("exact", "rare-first", "exhaustive")
            if index.last_pass != "rare-first":
                assert [c for c, _ in pruned] == [c for c, _ in full], (query, chosen, index.last_pass)
            assert pruned[0][1] == pytest.approx(full[0][1], rel=1e-9)
            if chosen is not None and chosen.sources:
                assert all(store.get_article(c.split("::")[0]).source == "Wire" for c, _ in pruned)


def test_tokens_are_what_the_query_tokenizer_makes() -> None:
    assert [fts_term(t) for t in tokenize("Zürich won")] == ["zq7ac3bc72696368", "win"]


def test_a_failed_catch_up_leaves_the_kept_frequencies_as_they_were(settings, monkeypatch) -> None:
    store = Store.from_settings(settings)
    write_plain(store, CORPUS[:3])
    searcher = HybridSearcher(store, None, settings)
    index = searcher.lexical_snapshot()
    before = dict(index._db.execute("SELECT term, df FROM terms"))
    write_plain(store, CORPUS[3:])
    original = LexicalIndex._insert

    def dies_midway(self, chunks):
        original(self, chunks)
        raise RuntimeError("killed")

    monkeypatch.setattr(LexicalIndex, "_insert", dies_midway)
    with pytest.raises(RuntimeError):
        searcher.lexical_snapshot()
    assert dict(index._db.execute("SELECT term, df FROM terms")) == before == vocab_df(index)
    monkeypatch.undo()
    index = searcher.lexical_snapshot()
    assert dict(index._db.execute("SELECT term, df FROM terms")) == vocab_df(index) != before
