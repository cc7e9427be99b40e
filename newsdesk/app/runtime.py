"""Wiring: build the store, model, searcher and answerer once per entry point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from newsdesk.settings import Settings


@dataclass
class Services:
    """The collaborators every front end (CLI, bot, evals) needs, built from one Settings."""

    settings: Settings
    store: Any
    embedder: Any
    searcher: Any
    answerer: Any

    @classmethod
    def from_settings(cls, settings: Settings, *, embedder: Any = None, store: Any = None) -> Services:
        """Open the store, load the model (unless given) and build the configured answerer."""
        from newsdesk.embedding import Embedder
        from newsdesk.store import Store
        from retrieval.answer import build_answerer
        from retrieval.search import HybridSearcher

        store = store or Store.from_settings(settings)
        embedder = embedder or Embedder.from_settings(settings)
        searcher = HybridSearcher(store, embedder, settings)
        return cls(settings, store, embedder, searcher, build_answerer(settings, searcher, store))
