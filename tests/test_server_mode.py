"""Server mode: the same commands against a real `chroma run` server via NEWSDESK_CHROMA_URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsdesk.app import cli
from newsdesk.settings import Settings
from newsdesk.store import Store
from tests.chroma_server import chroma_server

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory: pytest.TempPathFactory):
    """A `chroma run` server on a free port for the whole session; killed on teardown."""
    with chroma_server(tmp_path_factory.mktemp("chroma-server") / "db", timeout=60) as url:
        yield url


def invoke(*args: str, url: str, collection: str):
    env = {"NEWSDESK_CHROMA_URL": url, "NEWSDESK_COLLECTION": collection}
    return CliRunner().invoke(cli.app, list(args), env=env)


def test_ingest_reingest_sources_and_remove_against_a_server(chroma_url: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in SAMPLE.glob("*.txt"):
        (corpus / path.name).write_bytes(path.read_bytes())
    data = ["--data-dir", str(tmp_path / "data")]
    first = invoke("ingest", str(corpus), "--json", *data, url=chroma_url, collection="server-a")
    assert first.exit_code == 0, first.stderr
    report = json.loads(first.stdout)
    assert len(report["added"]) == 2 and report["chunks_embedded"] >= 6
    assert not (tmp_path / "data" / "chroma").exists(), "server mode must not write the embedded store"

    again = json.loads(invoke("ingest", str(corpus), "--json", *data, url=chroma_url,
                              collection="server-a").stdout)
    assert sorted(again["unchanged"]) == sorted(report["added"]) and again["chunks_embedded"] == 0

    # a shorter version replaces all of the article's chunks on the server too
    (corpus / "004_ad935d4100d70209.txt").write_text("Only one short sentence remains.\n", encoding="utf-8")
    changed = json.loads(invoke("ingest", str(corpus), "--json", *data, url=chroma_url,
                                collection="server-a").stdout)
    assert changed["updated"] == ["004_ad935d4100d70209.txt"]

    listed = invoke("sources", "--json", *data, url=chroma_url, collection="server-a")
    records = {r["id"]: r for r in json.loads(listed.stdout)}
    assert set(records) == set(report["added"])
    assert records["004_ad935d4100d70209.txt"]["chunks"] == 1

    settings = Settings(chroma_url=chroma_url, collection="server-a")
    store = Store.from_settings(settings)
    assert store.chunks.configuration["hnsw"]["space"] == "cosine"
    ids = store.chunks.get(where={"article_id": "004_ad935d4100d70209.txt"})["ids"]
    assert ids == ["004_ad935d4100d70209.txt::0"]
    assert store.count_chunks() == sum(r["chunks"] for r in records.values())

    stats = json.loads(invoke("stats", "--json", *data, url=chroma_url, collection="server-a").stdout)
    assert stats["store"] == chroma_url and stats["articles"] == 2

    removed = invoke("remove", "000_70bec7e4b0fc20fc.txt", *data, url=chroma_url, collection="server-a")
    assert removed.exit_code == 0
    assert store.count_articles() == 1 and store.count_chunks() == 1


def test_server_store_matches_the_embedded_store(chroma_url: str, tmp_path: Path, embedder) -> None:
    from ingest.sync import ingest

    embedded_settings = Settings(data_dir=tmp_path / "embedded")
    server_settings = Settings(data_dir=tmp_path / "unused", chroma_url=chroma_url, collection="server-b")
    states = []
    for settings in (embedded_settings, server_settings):
        store = Store.from_settings(settings)
        report = ingest([str(SAMPLE)], settings, store, embedder)
        assert len(report.added) == 2
        got = store.chunks.get(include=["documents", "metadatas"])
        rows = sorted(zip(got["ids"], got["documents"], got["metadatas"], strict=True))
        states.append((store.records(), rows))
        hits = store.dense_search(embedder.embed_query_array("security of Chinese nationals"), 3)
        assert len(hits) == 3 and 0 < hits[-1].score <= hits[0].score <= 1
    assert states[0] == states[1]
