"""Shared fixtures: real settings in tmp dirs, the real bundled model, a real store over the sample corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import SAMPLE_DIR

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's own model cache: the ONNX export of the bundled model is made (and checked) afresh."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_cache: Path) -> None:
    """No test reads the developer's .env or NEWSDESK_* variables, or their model cache."""
    for key in list(os.environ):
        if key.startswith("NEWSDESK_") or key == "DISCORD_TOKEN":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NEWSDESK_MODEL_CACHE", str(model_cache))  # also for `newsdesk` subprocesses
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings(tmp_path: Path):
    """Settings with a fresh data dir."""
    from newsdesk.settings import Settings

    return Settings(data_dir=tmp_path / "data")


@pytest.fixture(scope="session")
def embedder(model_cache: Path):
    """The real bundled all-MiniLM-L6-v2, loaded once per session (on ONNX Runtime, exported first)."""
    from newsdesk.embedding import Embedder
    from newsdesk.settings import Settings

    return Embedder.from_settings(Settings(model_cache=model_cache))


@pytest.fixture(scope="session")
def sample_settings(tmp_path_factory: pytest.TempPathFactory):
    """Settings whose data dir holds the sample corpus, ingested once per session."""
    from newsdesk.settings import Settings

    return Settings(data_dir=tmp_path_factory.mktemp("sample-data"))


@pytest.fixture(scope="session")
def sample_store(sample_settings, embedder):
    """A real embedded Chroma store holding the two sample articles."""
    from ingest.sync import ingest
    from newsdesk.store import Store

    store = Store.from_settings(sample_settings)
    report = ingest([str(SAMPLE_DIR)], sample_settings, store, embedder)
    assert not report.failed, report.failed
    return store


@pytest.fixture(scope="session")
def answerer(sample_settings, sample_store, embedder):
    """The real offline answerer over the sample corpus."""
    from newsdesk.app.runtime import Services

    return Services.from_settings(sample_settings, embedder=embedder, store=sample_store).answerer
