"""Hybrid search: dense and BM25 lists, fusion and its fallback, diversity, filters, snapshots, reranking."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from ingest.sync import sync_articles
from newsdesk.errors import ModelUnavailable
from newsdesk.models import Article, IngestReport, Passage
from newsdesk.settings import Settings
from newsdesk.store import Store
from retrieval.base import SearchFilters
from retrieval.fusion import reciprocal_rank_fusion
from retrieval.lexical import BM25Index, LexicalIndex, tokenize
from retrieval.search import (
    HybridSearcher,
    constraint_share,
    constraints,
    diversify,
    filters_to_where,
)
from tests.support import CUP

LIGHTHOUSE = " ".join(
    f"Part {i}: volunteers repaired lighthouse section {i} and painted the lighthouse lantern room, "
    f"stair {i} and gallery rail."
    for i in range(40)
)
CORPUS = [
    Article(id="strike-2021", source="Harbour Gazette", published=date(2021, 3, 10), title="Dock strike",
            text="Dock workers at the harbour went on strike over pay. The harbour strike halted cargo ships "
            "and the dock strike spread to the grain terminal. Union leaders said the harbour strike in 2021 "
            "would continue until wages rose."),
    Article(id="strike-2023", source="Harbour Gazette", published=date(2023, 6, 1), title="Port walkout",
            text="Crane operators walked out in 2023 and the port was closed for a week. Shipping firms "
            "diverted vessels to other ports while talks went on."),
    Article(id="dam", source="Wire", published=date(2022, 1, 15), title="Dam opens",
            text="The new hydroelectric dam opened on Monday after six years of building. Officials praised "
            "the engineers who built the dam across the river gorge."),
    Article(id="election", source="Wire", published=date(2024, 5, 20), title="Mayor elected",
            text="Voters elected a new mayor on Sunday. Turnout was the highest in a decade, the election "
            "commission said."),
    Article(id="cape", source="Blog", title="Lighthouse",
            text="The old lighthouse on the cape was restored by volunteers. The lighthouse keeper's cottage "
            "is now a museum."),
    Article(id="lighthouse-diary", source="Coast News", published=date(2022, 8, 1), title="Lighthouse diary",
            text=LIGHTHOUSE),
]
BY_ID = {a.id: a for a in CORPUS}


def ingest_articles(articles: list[Article], store: Store, embedder, settings: Settings) -> IngestReport:
    report = IngestReport()
    sync_articles(articles, store, embedder, settings, report)
    assert not report.failed, report.failed
    return report


def passage(chunk_id: str, article_id: str, score: float = 0.0, text: str = "text") -> Passage:
    return Passage(chunk_id=chunk_id, article_id=article_id, text=text, char_start=0, char_end=len(text),
                   score=score)


# === fast: pure functions =============================================================================
def test_rrf_sums_reciprocal_ranks_with_k_60() -> None:
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]]))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert [key for key, _ in reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]])] == ["a", "c", "b"]


def test_rrf_falls_back_to_the_side_that_is_not_empty() -> None:
    assert [key for key, _ in reciprocal_rank_fusion([["x", "y", "z"], []])] == ["x", "y", "z"]
    assert [key for key, _ in reciprocal_rank_fusion([[], ["q", "p"]])] == ["q", "p"]
    assert reciprocal_rank_fusion([[], []]) == []


def test_rrf_weights_and_ties_keep_first_seen_order() -> None:
    fused = reciprocal_rank_fusion([["a"], ["b"]], k=10, weights=[1.0, 2.0])
    assert fused == [("b", pytest.approx(2 / 11)), ("a", pytest.approx(1 / 11))]
    assert [key for key, _ in reciprocal_rank_fusion([["a", "b"], ["b", "a"]])] == ["a", "b"]
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0])


def test_diversify_caps_each_article_then_fills_up_to_k() -> None:
    ranked = [passage(f"a::{i}", "a") for i in range(4)] + [passage("b::0", "b"), passage("c::0", "c")]
    assert [p.chunk_id for p in diversify(ranked, 4, cap=2)] == ["a::0", "a::1", "b::0", "c::0"]
    # not enough other articles: the capped passages fill the rest, in rank order
    assert [p.chunk_id for p in diversify(ranked, 5, cap=2)] == ["a::0", "a::1", "b::0", "c::0", "a::2"]
    assert [p.chunk_id for p in diversify(ranked, 3, cap=1)] == ["a::0", "b::0", "c::0"]
    assert len(diversify(ranked, 50, cap=1)) == len(ranked)
    assert diversify([], 3, cap=2) == []


def test_constraints_pick_numbers_years_ordinals_and_quarters() -> None:
    assert constraints("Who won the 2018 Winter Olympics?") == {"2018"}
    wanted = constraints("Sales in Q3 of the 1990s, the 2nd time 1,000 people came.")
    assert wanted == {"q3", "1990s", "2nd", "1,000"}
    assert constraints("What did the minister say?") == set()
    assert constraint_share({"2021"}, "The strike in 2021.") == 1.0
    assert constraint_share({"2021", "q2"}, "The strike in 2021.") == 0.5
    assert constraint_share({"2023"}, "The strike in 2021.") == 0.0
    assert constraint_share(set(), "anything") == 1.0
    # a passage may spell out the edition or period a question gives in digits
    assert constraint_share(constraints("Season 11 premiere date"), "The eleventh and final season") == 1.0
    assert constraint_share(constraints("Tesla revenue Q2 2020"), "in the second quarter of 2020") == 1.0
    assert constraint_share(constraints("the 92nd Academy Awards"), "at the 92 Academy Awards") == 1.0
    assert constraint_share({"1st"}, "in the twenty-first century") == 0.0
    assert constraints("the eleventh season") == set()  # only passages are read this way


def test_filters_become_structured_where_dicts() -> None:
    assert filters_to_where(None) is None
    assert filters_to_where(SearchFilters()) is None
    assert filters_to_where(SearchFilters(sources=["Wire"])) == {"source": {"$in": ["Wire"]}}
    everything = SearchFilters(sources=["Wire", "Blog"], article_ids=["dam"], since=date(2022, 1, 1),
                               until=date(2023, 12, 31))
    assert filters_to_where(everything) == {"$and": [
        {"source": {"$in": ["Wire", "Blog"]}},
        {"article_id": {"$in": ["dam"]}},
        {"published_ord": {"$gte": 20220101}},
        {"published_ord": {"$lte": 20231231}},
    ]}
    # user input stays a value: nothing is parsed out of it
    tricky = 'Wire" OR 1=1 --'
    assert filters_to_where(SearchFilters(sources=[tricky])) == {"source": {"$in": [tricky]}}


def test_tokenize_stems_drops_stop_words_keeps_numbers() -> None:
    assert tokenize("What were the strikes in 2021 about?") == ["strike", "2021"]
    assert tokenize("Not 100 workers, no!") == ["not", "100", "worker", "no"]


def test_bm25_returns_only_matching_documents_best_first_and_honours_the_mask() -> None:
    index = BM25Index(["the harbour strike", "a strike at the harbour harbour harbour", "the dam opened", ""])
    hits = index.search("harbour strike", 10)
    assert [i for i, _ in hits] == [1, 0]
    assert all(score > 0 for _, score in hits)
    masked = index.search("harbour strike", 10, mask=np.array([True, False, True, True]))
    assert masked == [(0, pytest.approx(hits[1][1]))]
    assert index.search("volcano", 10) == []
    assert index.search("harbour", 0) == []
    assert index.idf("volcano") > index.idf("harbour") > 0
    assert BM25Index([]).search("harbour", 5) == []


# === fast: a real store with stand-in vectors (no model) ===============================================
DIM = 8


def write_plain(store: Store, articles: list[Article]) -> None:
    from ingest.chunking import chunk_article, chunking_key

    items = [(a, chunk_article(a, 200, 40)) for a in articles]
    total = sum(len(chunks) for _, chunks in items)
    vectors = np.random.default_rng(0).normal(size=(total, DIM)).astype(np.float32)
    store.check_model("stand-in", DIM)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.write_articles(items, vectors, chunking_key(200, 40))


EVERY_ARTICLE = "harbour crane dam mayor lighthouse"  # one word of each article of CORPUS


def test_lexical_filters_match_the_chunk_metadata(settings) -> None:
    store = Store.from_settings(settings)
    write_plain(store, CORPUS)
    searcher = HybridSearcher(store, None, settings)
    index = searcher.lexical_snapshot()
    assert index.count == store.count_chunks() and index.pending() == {}

    def kept(filters: SearchFilters | None) -> set[str]:
        return articles_of(searcher.lexical(EVERY_ARTICLE, 100, filters))

    assert kept(None) == kept(SearchFilters()) == set(BY_ID)
    assert kept(SearchFilters(sources=["Wire"])) == {"dam", "election"}
    assert kept(SearchFilters(sources=["Wire", "Blog"])) == {"dam", "election", "cape"}
    assert kept(SearchFilters(article_ids=["cape", "dam"])) == {"cape", "dam"}
    assert kept(SearchFilters(since=date(2022, 8, 1))) == {"lighthouse-diary", "election", "strike-2023"}
    assert kept(SearchFilters(until=date(2021, 12, 31))) == {"strike-2021", "cape"}  # undated counts as 0
    assert kept(SearchFilters(since=date(2022, 1, 1), until=date(2022, 12, 31), sources=["Wire"])) == {"dam"}
    assert kept(SearchFilters(sources=["Nobody"])) == set()
    for found in searcher.lexical(EVERY_ARTICLE, 100):  # each chunk carries its article's metadata
        assert found.published == BY_ID[found.article_id].published
        assert found.text == BY_ID[found.article_id].text[found.char_start : found.char_end]


def test_lexical_index_scores_like_bm25_and_ranks_rare_terms_higher(settings) -> None:
    store = Store.from_settings(settings)
    write_plain(store, CORPUS)
    searcher = HybridSearcher(store, None, settings)
    hits = searcher.lexical("harbour strike", 10)
    assert [p.article_id for p in hits[:1]] == ["strike-2021"] and all(p.score > 0 for p in hits)
    assert [p.score for p in hits] == sorted((p.score for p in hits), reverse=True)
    assert articles_of(hits) == {"strike-2021"}  # only chunks sharing a term
    assert searcher.lexical("volcano", 5) == [] and searcher.lexical("the of and", 5) == []
    assert searcher.idf("volcano") > searcher.idf("harbour") > searcher.idf("lighthous") > 0
    count = store.count_chunks()
    assert searcher.idf("volcano") == pytest.approx(np.log(1 + (count + 0.5) / 0.5))
    # stems, irregular forms and non-ASCII words are indexed as the query tokenizer makes them
    odd = Article(id="odd", source="Wire", text="The Zürich_team won the naïve façade prize in 2021.")
    write_plain(store, [odd])
    assert [p.article_id for p in searcher.lexical("zürich_team wins a facade", 5)] == ["odd"]
    assert [p.article_id for p in searcher.lexical("naïve", 5)] == ["odd"]
    assert searcher.lexical("naive", 5) == []


def test_a_failed_catch_up_leaves_the_previous_index(settings, monkeypatch) -> None:
    store = Store.from_settings(settings)
    write_plain(store, CORPUS[:3])
    searcher = HybridSearcher(store, None, settings)
    before = searcher.lexical_snapshot()
    cursor, count = before.cursor, before.count
    write_plain(store, CORPUS[3:])
    calls = {"n": 0}
    original = LexicalIndex._insert

    def dies_midway(self, chunks):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return original(self, chunks)

    monkeypatch.setattr(LexicalIndex, "_insert", dies_midway)
    with pytest.raises(RuntimeError):
        searcher.lexical("lighthouse", 5)
    assert calls["n"] == 2 and (before.cursor, before.count) == (cursor, count)  # nothing half-applied
    monkeypatch.undo()
    assert {"cape", "lighthouse-diary"} <= articles_of(searcher.lexical("lighthouse", 50))
    assert searcher.lexical_snapshot().count == store.count_chunks()


def test_searchers_sharing_a_data_dir_share_one_index_file(settings) -> None:
    store = Store.from_settings(settings)
    write_plain(store, CORPUS[:3])
    first = HybridSearcher(store, None, settings)
    second = HybridSearcher(Store.from_settings(settings), None, settings)
    assert first.lexical_snapshot().count == second.lexical_snapshot().count == store.count_chunks()
    assert first.lexical_snapshot().path == second.lexical_snapshot().path
    rare = second.idf("lighthous")
    write_plain(store, CORPUS[3:])
    assert {"cape", "lighthouse-diary"} <= articles_of(first.lexical("lighthouse", 50))  # applied by the first
    assert {"cape", "lighthouse-diary"} <= articles_of(second.lexical("lighthouse", 50))  # seen by the second
    assert second.lexical_snapshot().count == store.count_chunks() and second.idf("lighthous") < rare


# === slow: the real model over a real store ===========================================================
@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, embedder) -> tuple[Store, Settings]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("search-corpus"))
    store = Store.from_settings(settings)
    ingest_articles(CORPUS, store, embedder, settings)
    return store, settings


@pytest.fixture(scope="module")
def searcher(corpus, embedder) -> HybridSearcher:
    """Diversity off (cap 50), so fused order is visible as it is."""
    store, settings = corpus
    return HybridSearcher(store, embedder, settings.model_copy(update={"per_article_cap": 50}))


def ids(passages: list[Passage]) -> list[str]:
    return [p.chunk_id for p in passages]


def articles_of(passages: list[Passage]) -> set[str]:
    return {p.article_id for p in passages}


@pytest.mark.slow
def test_dense_ranks_by_cosine_and_finds_paraphrases(searcher: HybridSearcher) -> None:
    hits = searcher.dense("When did the hydroelectric power station start operating?", 5)
    assert len(hits) == 5
    assert hits[0].article_id == "dam"
    assert [p.score for p in hits] == sorted((p.score for p in hits), reverse=True)
    assert -1.0 <= hits[-1].score < hits[0].score <= 1.0
    text = BY_ID["dam"].text
    assert text[hits[0].char_start : hits[0].char_end] == hits[0].text  # offsets point into the article
    assert (hits[0].source, hits[0].published, hits[0].title) == ("Wire", date(2022, 1, 15), "Dam opens")


@pytest.mark.slow
def test_lexical_returns_only_term_matches_best_first(searcher: HybridSearcher) -> None:
    hits = searcher.lexical("dock strike", 10)
    assert ids(hits) == ["strike-2021::0"]  # the only chunk with either word
    assert hits[0].score > 0 and hits[0].source == "Harbour Gazette"
    lighthouse = searcher.lexical("lighthouse museum", 40)
    assert lighthouse[0].article_id == "cape"  # the only chunk with both words
    assert articles_of(lighthouse) == {"cape", "lighthouse-diary"}
    assert [p.score for p in lighthouse] == sorted((p.score for p in lighthouse), reverse=True)


@pytest.mark.slow
def test_search_is_the_rrf_of_the_dense_and_lexical_lists(searcher: HybridSearcher) -> None:
    query = "volunteers restored the lighthouse keeper cottage"
    n = searcher.settings.candidates
    dense, lexical = searcher.dense(query, n), searcher.lexical(query, n)
    assert dense and lexical and ids(dense) != ids(lexical)
    fused = reciprocal_rank_fusion([ids(dense), ids(lexical)], k=60)
    found = searcher.search(query, k=6)
    assert ids(found) == [cid for cid, _ in fused[:6]]
    # no numbers in the query: every passage gets the same constraint factor (2), the order is RRF's
    assert [p.score for p in found] == pytest.approx([2 * score for _, score in fused[:6]])
    assert set(searcher.last_timings) == {"dense_ms", "lexical_ms", "search_ms"}


@pytest.mark.slow
def test_search_falls_back_to_dense_when_nothing_matches_lexically(searcher: HybridSearcher) -> None:
    query = "reservoir inauguration ceremony"  # no word of it occurs in any article
    assert searcher.lexical(query, 40) == []
    dense = searcher.dense(query, 40)
    found = searcher.search(query, k=4)
    assert ids(found) == ids(dense)[:4]
    assert found[0].article_id == "dam"


@pytest.mark.slow
def test_search_caps_passages_per_article(corpus, embedder) -> None:
    store, settings = corpus
    capped = HybridSearcher(store, embedder, settings.model_copy(update={"per_article_cap": 2}))
    uncapped = HybridSearcher(store, embedder, settings.model_copy(update={"per_article_cap": 50}))
    query = "lighthouse lantern room painted by volunteers"
    assert Counter(p.article_id for p in uncapped.search(query, k=4))["lighthouse-diary"] >= 3
    found = capped.search(query, k=4)
    per_article = Counter(p.article_id for p in found)
    assert len(found) == 4 and per_article["lighthouse-diary"] == 2 and len(per_article) == 3
    assert "cape" in per_article
    # asking for more than the other articles can give fills up with the capped article, in rank order
    many = capped.search(query, k=10)
    assert len(many) == 10 and Counter(p.article_id for p in many)["lighthouse-diary"] >= 5


FILTER_CASES = [
    (SearchFilters(sources=["Wire"]), {"dam", "election"}),
    (SearchFilters(sources=["Harbour Gazette", "Blog"]), {"strike-2021", "strike-2023", "cape"}),
    (SearchFilters(since=date(2022, 8, 1)), {"lighthouse-diary", "election", "strike-2023"}),
    (SearchFilters(until=date(2022, 1, 15)), {"strike-2021", "dam", "cape"}),
    (SearchFilters(since=date(2022, 1, 1), until=date(2022, 12, 31)), {"dam", "lighthouse-diary"}),
    (SearchFilters(article_ids=["strike-2023", "cape"]), {"strike-2023", "cape"}),
    (SearchFilters(sources=["Wire"], since=date(2023, 1, 1)), {"election"}),
]


@pytest.mark.slow
@pytest.mark.parametrize(("filters", "allowed"), FILTER_CASES)
def test_filters_apply_to_dense_lexical_and_fused(searcher: HybridSearcher, filters, allowed) -> None:
    # words from every article, so unfiltered both sides reach everything
    query = "strike port dam mayor election lighthouse volunteers 2021 2023 workers"
    assert articles_of(searcher.dense(query, 40)) == set(BY_ID)
    assert articles_of(searcher.lexical(query, 40)) == set(BY_ID)
    assert articles_of(searcher.dense(query, 40, filters)) == allowed
    assert articles_of(searcher.lexical(query, 40, filters)) == allowed
    assert articles_of(searcher.search(query, k=20, filters=filters)) == allowed


@pytest.mark.slow
def test_filter_that_matches_nothing_returns_nothing(searcher: HybridSearcher) -> None:
    filters = SearchFilters(sources=["Nobody"])
    assert searcher.dense("dam", 5, filters) == []
    assert searcher.lexical("dam", 5, filters) == []
    assert searcher.search("dam", k=5, filters=filters) == []


@pytest.mark.slow
def test_a_passage_with_the_year_asked_about_outranks_another_year(searcher: HybridSearcher) -> None:
    query = "harbour strike 2023"
    n = searcher.settings.candidates
    # on words alone the 2021 strike wins both lists (it says "harbour strike" three times) ...
    assert searcher.dense(query, n)[0].article_id == "strike-2021"
    assert searcher.lexical(query, n)[0].article_id == "strike-2021"
    fused = reciprocal_rank_fusion([ids(searcher.dense(query, n)), ids(searcher.lexical(query, n))])
    assert fused[0][0] == "strike-2021::0"
    # ... but only the 2023 one names the year asked about
    found = searcher.search(query, k=3)
    assert [p.article_id for p in found[:2]] == ["strike-2023", "strike-2021"]
    assert found[0].score > found[1].score
    # and without a year in the question the 2021 strike stays first
    assert searcher.search("harbour strike", k=3)[0].article_id == "strike-2021"


@pytest.mark.slow
def test_passages_stating_the_answer_the_articles_agree_on_rank_first(settings, embedder) -> None:
    store = Store.from_settings(settings)
    ingest_articles([Article(id=i, text=t, source="Test Wire") for i, t in CUP], store, embedder, settings)
    searcher = HybridSearcher(store, embedder, settings)
    question = "Who won the Harbour Cup in 2031?"
    found = searcher.search(question, k=6)
    assert [p.article_id for p in found[:3]] == ["cup-varga-2", "cup-varga-3", "cup-varga-1"]
    assert found[-1].article_id == "cup-2030"  # another year stays last
    # without the vote, passages near the question's wording (a preview, a commentator) came first
    searcher.answer_weight = 0.0
    plain = searcher.search(question, k=6)
    assert {p.article_id for p in plain[:2]} == {"cup-preview", "cup-commentary"}


@pytest.mark.slow
def test_an_empty_store_finds_nothing(settings, embedder) -> None:
    searcher = HybridSearcher(Store.from_settings(settings), embedder, settings)
    assert searcher.search("harbour strike 2023") == []
    assert searcher.lexical("harbour", 5) == [] and searcher.dense("harbour", 5) == []
    assert searcher.lexical_snapshot().count == 0 and searcher.idf("harbour") > 0


# --- the BM25 index follows the store ------------------------------------------------------------------
@pytest.fixture
def small(settings, embedder) -> tuple[Store, HybridSearcher]:
    store = Store.from_settings(settings)
    ingest_articles([BY_ID["dam"], BY_ID["election"]], store, embedder, settings)
    return store, HybridSearcher(store, embedder, settings)


ZEBRA = Article(id="zebra", source="Wire", published=date(2024, 6, 1),
                text="A zebra escaped from the city zoo on Tuesday and was found grazing in a park.")


def index_file(settings: Settings) -> Path:
    (path,) = (Path(settings.data_dir) / "lexical").glob("*.sqlite3")
    return path


def mark(settings: Settings, chunk_id: str, old: str, new: str) -> None:
    """Change a chunk's text in the index file only, so that a rebuild from the store would undo it."""
    import sqlite3

    with sqlite3.connect(index_file(settings)) as db:
        assert db.execute("UPDATE chunks SET text = replace(text, ?, ?) WHERE chunk_id = ?",
                          (old, new, chunk_id)).rowcount == 1


@pytest.mark.slow
def test_an_unchanged_store_is_not_read_again(small) -> None:
    _, searcher = small
    index = searcher.lexical_snapshot()
    searcher.search("dam")
    assert searcher.lexical_snapshot() is index and index.refresh() is False
    assert index.count == 2 and ids(searcher.lexical("dam mayor", 5)) == ["dam::0", "election::0"]


@pytest.mark.slow
def test_the_index_follows_an_ingest_and_a_removal(small, embedder, settings) -> None:
    store, searcher = small
    before = searcher.lexical_snapshot().cursor
    assert searcher.lexical("zebra zoo", 5) == []
    ingest_articles([ZEBRA], store, embedder, settings)
    index = searcher.lexical_snapshot()
    assert index.count == 3 and index.cursor > before and index.pending() == {}
    assert ids(searcher.lexical("zebra zoo", 5)) == ["zebra::0"]
    assert ids(searcher.search("zebra zoo", k=1)) == ["zebra::0"]
    assert articles_of(searcher.lexical("zebra", 5, SearchFilters(sources=["Wire"]))) == {"zebra"}

    assert store.delete_article("zebra")  # logged by the removal itself: no generation bump needed
    assert searcher.lexical("zebra zoo", 5) == []
    assert "zebra" not in articles_of(searcher.search("zebra zoo", k=3))


@pytest.mark.slow
def test_an_update_with_as_many_chunks_replaces_the_old_text(small, embedder, settings) -> None:
    store, searcher = small
    count = searcher.lexical_snapshot().count
    changed = BY_ID["dam"].model_copy(update={"text": BY_ID["dam"].text.replace("gorge", "canyon")})
    report = ingest_articles([changed], store, embedder, settings)
    assert report.updated == ["dam"] and store.count_chunks() == count  # same number of chunks
    assert ids(searcher.lexical("canyon", 5)) == ["dam::0"]
    assert searcher.lexical("gorge", 5) == []


@pytest.mark.slow
def test_the_index_sees_writes_made_through_another_store_object(small, embedder, settings) -> None:
    store, searcher = small
    searcher.lexical_snapshot()
    other = Store.from_settings(settings)  # as another process would open the same directory
    assert other is not store and other.chunks is not store.chunks
    ingest_articles([ZEBRA], other, embedder, settings)
    assert ids(searcher.lexical("zebra zoo", 5)) == ["zebra::0"]
    assert ids(searcher.search("zebra zoo", k=1)) == ["zebra::0"]
    assert other.delete_article("election")
    assert searcher.lexical("mayor election", 5) == []
    assert articles_of(searcher.search("mayor election", k=5)) == {"dam", "zebra"}


@pytest.mark.slow
def test_search_survives_a_removal_by_another_process(small, settings) -> None:
    # an embedded client keeps the vector index it loaded, so the removed chunk still comes back from
    # Chroma's query, without text or metadata: it must be dropped, not crash the search
    import subprocess
    import sys

    _, searcher = small
    assert "dam" in articles_of(searcher.search("hydroelectric dam", k=2))
    newsdesk = Path(sys.executable).with_name("newsdesk")
    done = subprocess.run([str(newsdesk), "remove", "dam", "--data-dir", str(settings.data_dir)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "dam" not in articles_of(searcher.lexical("hydroelectric dam", 5))  # the change feed names it
    assert "dam" not in articles_of(searcher.search("hydroelectric dam", k=2))


# --- the index kept on disk for the next process ----------------------------------------------------------
@pytest.mark.slow
def test_a_new_searcher_uses_the_index_on_disk_and_reads_only_what_changed(small, embedder, settings) -> None:
    store, searcher = small
    built = searcher.lexical_snapshot()
    # mark the kept copy so that using it shows: a rebuild would read "hydroelectric" from the store
    mark(settings, "dam::0", "hydroelectric", "HYDRO")
    fresh = HybridSearcher(Store.from_settings(settings), embedder, settings)
    assert "HYDRO" in fresh.lexical("dam", 1)[0].text
    assert fresh.lexical_snapshot().cursor == built.cursor and fresh.idf("dam") == pytest.approx(built.idf("dam"))
    # another process ingests and removes: the next searcher applies just those articles
    ingest_articles([ZEBRA], store, embedder, settings)
    assert store.delete_article("election")
    later = HybridSearcher(Store.from_settings(settings), embedder, settings)
    assert ids(later.lexical("zebra zoo", 5)) == ["zebra::0"] and later.lexical("mayor election", 5) == []
    assert "HYDRO" in later.lexical("dam", 1)[0].text  # the unchanged article was not read again
    assert later.lexical_snapshot().count == 2


@pytest.mark.slow
def test_a_damaged_index_file_is_rebuilt(small, embedder, settings) -> None:
    _, searcher = small
    searcher.lexical_snapshot()
    searcher.lexical_snapshot().close()
    path = index_file(settings)
    for extra in path.parent.glob(path.name + "-*"):
        extra.unlink()
    path.write_bytes(b"not a database" * 100)
    fresh = HybridSearcher(Store.from_settings(settings), embedder, settings)
    assert ids(fresh.lexical("mayor election", 5)) == ["election::0"]
    assert fresh.lexical_snapshot().count == 2


@pytest.mark.slow
def test_an_index_that_cannot_be_kept_costs_nothing_but_time(settings, embedder, caplog) -> None:
    store = Store.from_settings(settings)
    ingest_articles([BY_ID["dam"]], store, embedder, settings)
    (Path(settings.data_dir) / "lexical").write_text("in the way", encoding="utf-8")  # not a directory
    searcher = HybridSearcher(store, embedder, settings)
    assert ids(searcher.search("hydroelectric dam", k=1)) == ["dam::0"]
    assert "cannot keep the BM25 index" in caplog.text


@pytest.mark.slow
def test_a_half_written_article_keeps_its_previous_version_until_it_is_ready(
    small, embedder, settings, tmp_path
) -> None:
    from ingest.chunking import chunk_article, chunking_key
    from newsdesk.changes import PUT, version_of

    store, searcher = small
    assert ids(searcher.lexical("gorge", 5)) == ["dam::0"]
    # a writer killed after logging its intent, marking the record pending and deleting the old chunks
    changed = BY_ID["dam"].model_copy(update={"text": BY_ID["dam"].text.replace("gorge", "canyon")})
    key = chunking_key(settings.chunk_size, settings.chunk_overlap)
    store._log_changes([("dam", PUT, version_of(changed.fingerprint(), key))])
    store._upsert_records([(changed, chunk_article(changed, settings.chunk_size, settings.chunk_overlap),
                            "pending")], key)
    store._delete_chunks(["dam"])
    assert ids(searcher.lexical("gorge", 5)) == ["dam::0"] and searcher.lexical("canyon", 5) == []
    assert searcher.lexical_snapshot().pending() == {"dam": PUT}
    # an index built from scratch now (another process's) holds neither version of it, and waits for it
    fresh = LexicalIndex(tmp_path / "fresh.sqlite3", Store.from_settings(settings))
    fresh.refresh()
    assert fresh.search("gorge canyon", 5) == [] and "dam" in fresh.pending()
    assert [cid for cid, *_ in fresh.search("mayor", 5)] == ["election::0"]
    # the next run finishes the write: both see the new version, nothing is left waiting
    report = ingest_articles([], store, embedder, settings)
    assert report.updated == ["dam"]
    assert ids(searcher.lexical("canyon", 5)) == ["dam::0"] and searcher.lexical("gorge", 5) == []
    assert fresh.refresh() and [cid for cid, *_ in fresh.search("canyon", 5)] == ["dam::0"]
    assert searcher.lexical_snapshot().pending() == {} == fresh.pending()


# --- the optional cross-encoder reranker -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT cross-encoder saved locally: its scores are arbitrary but fixed."""
    import re

    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-reranker")
    words = Counter(w for a in CORPUS for w in re.findall(r"[a-z]+", a.text.lower()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(w for w, _ in words.most_common(95))
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=1, initializer_range=0.5)
    BertForSequenceClassification(config).save_pretrained(path)
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    return path


@pytest.mark.slow
def test_reranker_reorders_by_its_scores(corpus, embedder, tiny_reranker: Path) -> None:
    store, settings = corpus
    configured = settings.model_copy(update={"per_article_cap": 50, "reranker": str(tiny_reranker)})
    reranking = HybridSearcher(store, embedder, configured)
    assert reranking.reranker is not None
    plain = HybridSearcher(store, embedder, settings.model_copy(update={"per_article_cap": 50}))
    query = "lighthouse volunteers museum"
    candidates = plain.search(query, k=20)  # what the reranker sees: the top max(2k, 20) fused
    scores = reranking.reranker.predict([(query, p.text) for p in candidates], show_progress_bar=False)
    expected = [candidates[i] for i in np.argsort(-np.asarray(scores), kind="stable")]
    assert ids(expected[:4]) != ids(candidates[:4])  # the reranker disagrees with fusion here
    found = reranking.search(query, k=4)
    assert ids(found) == ids(expected[:4])
    assert [p.score for p in found] == pytest.approx(sorted(scores, reverse=True)[:4], abs=1e-5)


@pytest.mark.slow
def test_reranked_results_are_still_diversified(corpus, embedder, tiny_reranker: Path) -> None:
    store, settings = corpus
    searcher = HybridSearcher(store, embedder, settings.model_copy(update={"reranker": str(tiny_reranker)}))
    found = searcher.search("lighthouse lantern room painted by volunteers", k=4)
    assert Counter(p.article_id for p in found)["lighthouse-diary"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["missing-dir", "no/such-model"])
def test_bad_reranker_raises_model_unavailable_in_one_line(corpus, embedder, tmp_path, name: str) -> None:
    store, settings = corpus
    where = str(tmp_path / name) if name == "missing-dir" else name
    with pytest.raises(ModelUnavailable) as caught:
        HybridSearcher(store, embedder, settings.model_copy(update={"reranker": where}))
    message = str(caught.value)
    assert "\n" not in message and where in message and "NEWSDESK_RERANKER" in message
