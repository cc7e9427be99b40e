"""The LangChain face of the hybrid search: a ``BaseRetriever`` returning ``Document``s.

Kept apart from :mod:`retrieval.search` so that answering a question never imports LangChain's
runnable and tracing machinery, which a cold ``newsdesk ask`` would pay for on every start.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from retrieval.base import SearchFilters


class NewsRetriever(BaseRetriever):
    """LangChain retriever over :class:`HybridSearcher` (passes LangChain's standard retriever tests).

    ``invoke(query, k=3)`` overrides the constructor's ``k`` for one call.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: Any
    k: int = 5
    filters: SearchFilters | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        passages = self.searcher.search(query, k=k or self.k, filters=self.filters)
        return [
            Document(
                page_content=p.text,
                id=p.chunk_id,
                metadata={
                    "article_id": p.article_id, "title": p.title, "source": p.source, "url": p.url,
                    "published": p.published.isoformat() if p.published else "",
                    "char_start": p.char_start, "char_end": p.char_end, "score": p.score,
                },
            )
            for p in passages
        ]
