"""A run killed at any point (kill -9) and run again ends in the same state as one clean run.

Every crashed run is a real ``newsdesk ingest`` in a subprocess over (a prefix of) 300 RGB articles
with a real embedded Chroma store. Three ways of dying:

* ``os._exit`` just before the N-th write call to Chroma: chosen boundaries of the journal, exactly;
* SIGKILL from this process 20-400 ms after the child starts writing: mostly inside a
  Chroma write, where only Chroma's own durability protects the store;
* SIGKILL of the plain console script with the real model, mid-run.

For speed the first two feed the child the vectors the real model gave in the clean run (the model's
output, replayed; an unseen text fails loudly). The run again happens here with the real model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ingest.sync import ingest
from newsdesk.embedding import Embedder
from newsdesk.sentences import answer_sentences
from newsdesk.settings import Settings
from newsdesk.store import READY, Store
from retrieval.lexical import LexicalIndex
from tests.support import SHARED, needs_shared

RGB = SHARED / "bench" / "rgb" / "articles.jsonl"
pytestmark = [pytest.mark.slow, needs_shared("bench", "rgb", "articles.jsonl")]
NEWSDESK = Path(sys.executable).with_name("newsdesk")
CHILD_BATCH = 64  # articles per write batch in the crashed runs: five batches, many boundaries

DRIVER = r'''
"""Run `newsdesk` with a crash point: exit-at N (os._exit before write N) or announce (print WRITING)."""
import os, sys
import numpy as np

mode, arg, replay, *argv = sys.argv[1:]
import chromadb.api.models.Collection as collection_module

calls = 0
announced = False


def hook(name, original):
    def wrapper(self, *args, **kwargs):
        global calls, announced
        calls += 1
        if mode == "exit-at" and calls == int(arg):
            os._exit(137)
        if mode == "announce" and not announced and name == "upsert":
            announced = True
            print("WRITING", flush=True)
        return original(self, *args, **kwargs)
    return wrapper


for name in ("add", "upsert", "update", "delete", "modify"):
    setattr(collection_module.Collection, name, hook(name, getattr(collection_module.Collection, name)))

import ingest.sync
ingest.sync.BATCH_ARTICLES = int(os.environ["CHILD_BATCH"])

if replay:
    import newsdesk.embedding
    from newsdesk.embedding import Embedder

    saved = np.load(replay)
    table = dict(zip(saved["texts"].tolist(), saved["vectors"]))

    class Replay(Embedder):
        def __init__(self):
            self.name, self.dimension, self.batch_size = "all-MiniLM-L6-v2", saved["vectors"].shape[1], 64

        def encode(self, texts, **kwargs):
            return np.stack([table[t] for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    newsdesk.embedding.LazyEmbedder = lambda name, batch_size, load: Replay()

from newsdesk.app.cli import main

sys.argv = ["newsdesk", *argv]
main()
'''


class Memo(Embedder):
    """The real model, each text encoded once per test session (the reruns repeat texts)."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__(inner.model, inner.name, inner.batch_size)
        self.memo: dict[str, np.ndarray] = {}

    def encode(self, texts, **kwargs):
        missing = list(dict.fromkeys(t for t in texts if t not in self.memo))
        for text, vector in zip(missing, super().encode(missing), strict=True):
            self.memo[text] = vector
        return np.stack([self.memo[t] for t in texts]) if texts else super().encode([])


def snapshot(store: Store) -> dict:
    """Everything a run leaves: records, chunks with texts and metadata, and each chunk's vector."""
    records = {rid: rec.model_dump() for rid, rec in store.records().items()}
    got = store.chunks.get(include=["documents", "metadatas", "embeddings"])
    rows = zip(got["ids"], got["documents"], got["metadatas"], strict=True)
    chunks = {cid: (doc, meta) for cid, doc, meta in rows}
    vectors = dict(zip(got["ids"], np.asarray(got["embeddings"], dtype=np.float32), strict=True))
    texts = store.article_texts(sorted(records))
    return {"records": records, "chunks": chunks, "vectors": vectors, "texts": texts}


def assert_same_state(got: dict, want: dict, store: Store) -> None:
    assert got["records"] == want["records"]
    assert all(rec["state"] == READY for rec in got["records"].values())
    assert got["texts"] == want["texts"]
    assert got["chunks"] == want["chunks"]
    for chunk_id, vector in want["vectors"].items():
        assert float(got["vectors"][chunk_id] @ vector) > 0.9999, f"{chunk_id} carries another text's vector"
    # the vector index agrees with the records: every chunk is found, nothing deleted comes back
    count = store.count_chunks()
    assert count == len(want["chunks"])
    probe = next(iter(want["vectors"].values()))
    found = store.chunks.query(query_embeddings=[probe], n_results=count, include=[])["ids"][0]
    assert sorted(found) == sorted(want["chunks"])
    for chunk_id in list(want["vectors"])[::37]:
        best = store.dense_search(want["vectors"][chunk_id], 1)[0]
        assert best.score > 0.999 and got["chunks"][best.chunk_id][0] == got["chunks"][chunk_id][0]


def indexed(index: LexicalIndex) -> dict[str, tuple[str, str]]:
    """The chunks a BM25 index holds: id -> (text, article id)."""
    rows = index._db.execute("SELECT chunk_id, text, article_id FROM chunks").fetchall()
    return {cid: (text, article_id) for cid, text, article_id in rows}


def assert_index_matches(index: LexicalIndex, store: Store) -> None:
    got = store.chunks.get(include=["documents", "metadatas"])
    want = {cid: (doc, meta["article_id"]) for cid, doc, meta in zip(got["ids"], got["documents"],
                                                                      got["metadatas"], strict=True)}
    assert indexed(index) == want and index.count == len(want)


def assert_index_is_consistent(index: LexicalIndex, store: Store) -> None:
    """After a crash: every indexed article is whole and of one version (the stored text's, or older)."""
    texts = store.article_texts(sorted({article_id for _, article_id in indexed(index).values()}))
    by_article: dict[str, list[str]] = {}
    for text, article_id in indexed(index).values():
        by_article.setdefault(article_id, []).append(text)
    records = store.records()
    for article_id, chunks in by_article.items():
        assert records[article_id].state == READY and len(chunks) == records[article_id].chunks, article_id
        assert all(chunk in texts[article_id] for chunk in chunks), article_id
    assert set(index.pending()) == {rid for rid, rec in records.items() if rec.state != READY}


def expected_subset(state: dict, lines: list[str], origin: Path) -> dict:
    """The clean state of the articles on ``lines`` (a prefix of the corpus) loaded from ``origin``."""
    kept = {json.loads(line)["id"] for line in lines}
    chunks = {cid: row for cid, row in state["chunks"].items() if row[1]["article_id"] in kept}
    return {
        "records": {rid: {**rec, "origin": str(origin)}
                    for rid, rec in state["records"].items() if rid in kept},
        "chunks": chunks,
        "texts": {rid: text for rid, text in state["texts"].items() if rid in kept},
        "vectors": {cid: vector for cid, vector in state["vectors"].items() if cid in chunks},
    }


@pytest.fixture(scope="module")
def memo(embedder: Embedder) -> Memo:
    return Memo(embedder)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 RGB articles (with the duplicates among them) as one JSONL file."""
    path = tmp_path_factory.mktemp("interrupt") / "articles.jsonl"
    lines = RGB.read_text(encoding="utf-8").splitlines()[:300]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, corpus: Path, memo: Memo) -> dict:
    """One uninterrupted run: the state every interrupted run must end in, and the vectors to replay."""
    root = tmp_path_factory.mktemp("clean")
    settings = Settings(data_dir=root / "data")
    store = Store.from_settings(settings)
    report = ingest([str(corpus)], settings, store, memo)
    assert not report.failed and len(report.added) > 250 and report.duplicates
    state = snapshot(store)
    replay = root / "vectors.npz"
    docs = {doc for doc, _ in state["chunks"].values()}
    # the chunks and the answer sentences ingest embeds for the answerer (its sentence cache is no part of
    # the journal: a crash leaves some cached, and the rerun adds the rest)
    texts = sorted(docs | {doc[a:b] for doc in docs for a, b in answer_sentences(doc)})
    np.savez(replay, texts=np.array(texts), vectors=np.stack([memo.memo[t] for t in texts]))
    driver = root / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    return {"state": state, "replay": replay, "driver": driver}


def child(clean: dict, data: Path, corpus: Path, mode: str, arg: str = "", replay: bool = True,
          extra: tuple[str, ...] = ()) -> subprocess.Popen:
    command = [sys.executable, str(clean["driver"]), mode, arg, str(clean["replay"]) if replay else "",
               "ingest", str(corpus), "--json", "--data-dir", str(data), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CHILD_BATCH": str(CHILD_BATCH)})


def rerun(data: Path, corpus: Path, memo: Memo, *, prune: bool = False) -> tuple[Store, dict]:
    settings = Settings(data_dir=data)
    store = Store.from_settings(settings)  # reopening the killed store must itself work
    report = ingest([str(corpus)], settings, store, memo, prune=prune)
    assert not report.failed, report.failed
    return store, snapshot(store)


@pytest.mark.parametrize("crash_at", [4, 6, 7, 8, 15, 31, 33])
def test_exit_before_write_n_then_rerun_matches_clean(crash_at, clean, corpus, memo, tmp_path) -> None:
    # Write calls in a first run: 1 check_model, 2 generation, then for batch k (64 articles each, five
    # batches) 6k-3 the change sequence, 6k-2 the change entries (the intent), 6k-1 pending records, 6k
    # chunks, 6k+1 ready records (no stale chunks to delete in a first run), 6k+2 the change sequence
    # (done), and 33 the last generation bump. Dying before 4: a sequence bumped, nothing logged; 6:
    # records pending, no chunks; 7: chunks written, records still pending; 8: the batch written but its
    # end not logged; 15: two batches done, the third not begun; 31: the last batch's chunks written, its
    # records pending; 33: everything written but the generation.
    # A BM25 index made from the crashed store holds whole articles only, and catching up from there
    # after the rerun (not rebuilding) ends equal to the store. (It is opened after the crash: an
    # embedded client opened before would keep a stale vector index for the rerun, here in one process.)
    data = tmp_path / "data"
    process = child(clean, data, corpus, "exit-at", str(crash_at))
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 137, f"the crash point was never reached: {stderr[-500:]}"
    index = LexicalIndex(tmp_path / "lexical.sqlite3", Store.from_settings(Settings(data_dir=data)))
    index.refresh()
    assert_index_is_consistent(index, Store.from_settings(Settings(data_dir=data)))
    store, state = rerun(data, corpus, memo)
    assert_same_state(state, clean["state"], store)
    index.refresh()
    assert_index_matches(index, store)
    assert index.pending() == {}


# Measured here: the first batch's pending records take ~50 ms, its chunks ~150 ms more; 0.4 s is in
# the second batch. Under load the kills land later, which is as good.
@pytest.mark.parametrize("delay", [0.02, 0.15, 0.4])
def test_sigkill_while_writing_then_rerun_matches_clean(delay, clean, corpus, memo, tmp_path) -> None:
    process = child(clean, tmp_path / "data", corpus, "announce")
    line = process.stdout.readline()
    assert line.strip() == "WRITING", process.stderr.read()[-500:]
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    if process.returncode != -signal.SIGKILL:
        pytest.fail(f"the run finished before the kill at {delay} s; lower the delay")
    store, state = rerun(tmp_path / "data", corpus, memo)
    assert_same_state(state, clean["state"], store)


def test_sigkill_real_console_script_mid_run(clean, corpus, memo, tmp_path) -> None:
    """The plain `newsdesk ingest` with the real model, killed once its first batch is being written."""
    feed = tmp_path / "feed" / "articles.jsonl"  # the first 120 articles: one batch, to keep it quick
    feed.parent.mkdir()
    lines = corpus.read_text(encoding="utf-8").splitlines(True)[:120]
    feed.write_text("".join(lines), encoding="utf-8")
    data = tmp_path / "data"
    process = subprocess.Popen([str(NEWSDESK), "ingest", str(feed), "--data-dir", str(data)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sqlite = data / "chroma" / "chroma.sqlite3"
    deadline = time.monotonic() + 240
    while not sqlite.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    baseline = _size(data)
    # collections are created at start; the next growth is the batch being written
    while _size(data) <= baseline + 16384 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # into the writes, which take about 0.4 s here
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    store, state = rerun(data, feed, memo)
    assert_same_state(state, expected_subset(clean["state"], lines, feed), store)


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_exit_during_prune_then_rerun_matches_clean(clean, corpus, memo, tmp_path) -> None:
    """Deletes are journalled too: a prune killed between its writes is finished by the next run."""
    feed = tmp_path / "feed" / "articles.jsonl"
    feed.parent.mkdir()
    lines = corpus.read_text(encoding="utf-8").splitlines(True)
    feed.write_text("".join(lines), encoding="utf-8")
    rerun(tmp_path / "data", feed, memo)
    feed.write_text("".join(lines[:280]), encoding="utf-8")  # 20 articles gone from the source
    # one clean pruning run would leave the clean state without those 20 (and with this file as origin)
    want = expected_subset(clean["state"], lines[:280], feed)
    assert len(want["records"]) < len(clean["state"]["records"])

    # the pruning run's writes: six per deleted article (the change sequence and entry, mark deleting,
    # delete chunks, delete the record, the change sequence), then a generation bump; die in the
    # middle of the second article
    index = LexicalIndex(tmp_path / "lexical.sqlite3", Store.from_settings(Settings(data_dir=tmp_path / "data")))
    index.refresh()
    process = child(clean, tmp_path / "data", feed, "exit-at", "10", extra=("--prune",))
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 137, stderr[-500:]
    store, got = rerun(tmp_path / "data", feed, memo, prune=True)
    assert_same_state(got, want, store)
    index.refresh()
    assert_index_matches(index, store)
