"""Wiring: build the store, model, searcher and answerer once per entry point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsdesk.settings import Settings

if TYPE_CHECKING:
    from newsdesk.embedding import Embedder
    from newsdesk.store import Store
    from retrieval.base import Answerer
    from retrieval.search import HybridSearcher


@dataclass
class Services:
    """The collaborators every front end (CLI, bot, evals) needs, built from one Settings."""

    settings: Settings
    store: Store
    embedder: Embedder
    searcher: HybridSearcher
    answerer: Answerer

    @classmethod
    def from_settings(cls, settings: Settings, *, embedder: Embedder | None = None,
                      store: Store | None = None) -> Services:
        """Open the store, load the model (unless given) and build the configured answerer."""
        from newsdesk.embedding import Embedder
        from newsdesk.store import Store
        from retrieval.search import HybridSearcher

        store = store or Store.from_settings(settings)
        embedder = embedder or Embedder.from_settings(settings)
        searcher = HybridSearcher(store, embedder, settings)
        return cls(settings, store, embedder, searcher, build_answerer(settings, searcher, store))


def build_answerer(settings: Settings, searcher: HybridSearcher, store: Store) -> Answerer:
    """The configured answerer: the LLM one when ``settings.llm`` is set, else the extractive one."""
    from retrieval.answer import ExtractiveAnswerer

    extractive = ExtractiveAnswerer(searcher, store, settings)
    if not settings.llm:
        return extractive
    from retrieval.llm import LLMAnswerer, chat_model_from_settings

    return LLMAnswerer(chat_model_from_settings(settings), searcher, store, settings, fallback=extractive)
