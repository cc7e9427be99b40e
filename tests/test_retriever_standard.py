"""`NewsRetriever` against LangChain's standard retriever suite, over the real sample store."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests

from retrieval.base import SearchFilters
from retrieval.retriever import NewsRetriever
from retrieval.search import HybridSearcher

pytestmark = pytest.mark.slow

QUERY = "Who did the Punjab home secretary meet to discuss security?"


class TestNewsRetrieverStandard(RetrieversIntegrationTests):
    """The suite's parameters are properties, which cannot take fixtures: a class-scoped autouse
    fixture puts a searcher over the session's sample store on the class first."""

    searcher: HybridSearcher

    @pytest.fixture(autouse=True, scope="class")
    def _searcher(self, request: pytest.FixtureRequest, sample_store, embedder, sample_settings) -> None:
        request.cls.searcher = HybridSearcher(sample_store, embedder, sample_settings)

    @property
    def retriever_constructor(self) -> type[NewsRetriever]:
        return NewsRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"searcher": self.searcher}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


@pytest.fixture
def searcher(sample_store, embedder, sample_settings) -> HybridSearcher:
    return HybridSearcher(sample_store, embedder, sample_settings)


def test_documents_carry_the_passage_and_its_verifiable_offsets(searcher, sample_store) -> None:
    docs = NewsRetriever(searcher=searcher, k=4).invoke(QUERY)
    assert len(docs) == 4 and all(isinstance(d, Document) for d in docs)
    assert docs[0].metadata["article_id"] == "000_70bec7e4b0fc20fc.txt"
    assert "Zhao Shiren" in docs[0].page_content
    texts = sample_store.article_texts([d.metadata["article_id"] for d in docs])
    for doc in docs:
        meta = doc.metadata
        assert doc.id == f"{meta['article_id']}::{doc.id.rsplit('::', 1)[1]}"
        assert texts[meta["article_id"]][meta["char_start"] : meta["char_end"]] == doc.page_content
        assert set(meta) == {
            "article_id", "title", "source", "url", "published", "char_start", "char_end", "score"
        }
    assert [d.id for d in docs] == [p.chunk_id for p in searcher.search(QUERY, k=4)]


def test_invoke_k_overrides_the_constructor_k_for_one_call(searcher) -> None:
    retriever = NewsRetriever(searcher=searcher, k=2)
    assert len(retriever.invoke(QUERY, k=5)) == 5
    assert len(retriever.invoke(QUERY)) == 2
    assert retriever.k == 2


def test_filters_reach_the_searcher(searcher) -> None:
    retriever = NewsRetriever(searcher=searcher, k=5, filters=SearchFilters(sources=["Reuters"]))
    docs = retriever.invoke(QUERY)
    assert docs and {d.metadata["source"] for d in docs} == {"Reuters"}
    assert {d.metadata["article_id"] for d in docs} == {"004_ad935d4100d70209.txt"}


async def test_ainvoke_matches_invoke(searcher) -> None:
    retriever = NewsRetriever(searcher=searcher, k=3)
    assert [d.id for d in await retriever.ainvoke(QUERY)] == [d.id for d in retriever.invoke(QUERY)]
