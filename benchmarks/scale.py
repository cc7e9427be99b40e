"""Size curve: archives of 10k, 100k (and 1M) chunks on a real `chroma run` server, measured as users see them.

For each size, growing one archive (smaller sizes first):

* **archive**: synthetic articles of ``--chunks-per-article`` chunks, each chunk ~700 characters of real
  sentences drawn at random from ``../shared`` (BBC articles, RGB articles, SciFact abstracts). Vectors
  are not encoded (that would take days here): ``--basis`` real chunks are embedded once with the real
  model, and each synthetic chunk gets a random basis vector plus Gaussian noise (``--noise`` times a
  random unit vector), renormalised: the neighbourhoods are real-model-like without encoding 1M texts.
  They go in through ``Store.write_articles`` (the journal, change feed and batching of a real ingest).
  The ingest rate reported is this write path; the encoder's own rate is ``benchmarks/ingest_throughput.py``.
* **answering process** (a fresh ``python`` with the default settings, data dir of its own, lexical
  index kept there across sizes): time to catch its BM25 index up, warm ``search`` and ``answer``
  p50/p95 over RGB questions, resident memory (VmRSS and peak), the size of its index file, and how
  :func:`retrieval.lexical.top_bm25` answered (``lexical_passes``). Ingest stores the answer sentences'
  vectors in ``<data_dir>/sentences.sqlite3`` so that answering embeds none; the synthetic chunks are
  written without them (encoding millions of sentences would take days), so before timing the probe
  stores those of the chunks its questions retrieve, as an ingest would have.
* **cold ask**: a new ``newsdesk ask`` process end to end (imports, model, one answer) and its peak resident
  memory, in a data dir of its own: the first one ever builds that dir's BM25 index from Chroma, the second
  finds it present. With ``--copy-index`` the cold data dir starts from a copy of the answering process's
  index instead (a 1M from-scratch build takes ~14 min here, and the answering process has just measured one).
* **after an ingest**: 10 real articles ingested by ``newsdesk ingest`` (real encoder) in another process
  sharing the answering data dir, then the already-warm answering process's first question about one of
  them: its time (``first_question_after_ingest_s``, of which ``catch_up_s`` brings the BM25 index up to
  date; where that time goes is written to ``<workdir>/catch-up-<size>.txt``), and whether it is answered
  from the new article.
* disk of the server's directory, RSS of the server.

    nice -n 10 .venv/bin/python benchmarks/scale.py [--sizes 10000 100000] [--json] [--workdir DIR]

A large archive takes an hour or more to write here: ``--build-only`` grows the workdir's archive to the
largest size and stops; a later run on the same ``--workdir`` finds the chunks there and only measures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
BIN = Path(sys.executable).parent
SOURCES = [f"Desk {i}" for i in range(20)]
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


# --- the answering process ------------------------------------------------------------------------------
def probe(questions: list[str], fresh_question: str) -> None:
    """Run inside the answering process: report timings as JSON lines; wait for "next" to ask once more."""
    started = time.perf_counter()
    import retrieval.lexical
    from newsdesk.app.runtime import Services
    from newsdesk.settings import Settings

    if budget := os.environ.get("SCALE_PRUNE_POSTINGS"):
        retrieval.lexical.PRUNE_POSTINGS = int(budget)
    services = Services.from_settings(Settings())
    services.embedder.encode(["warm"])
    loaded = time.perf_counter()
    services.searcher.lexical_snapshot()
    caught_up = time.perf_counter()
    services.answerer.answer(questions[0])
    first = time.perf_counter()
    from newsdesk.sentence_vectors import SentenceVectors

    stored = SentenceVectors.for_embedder(services.settings.data_dir, services.embedder)
    for question in questions:  # what ingest would have stored for these chunks (see the module docstring)
        k = 2 * services.settings.top_k
        stored.add_chunks([p.text for p in services.searcher.search(question, k=k)], services.embedder)
    stored.close()
    passes: dict[str, int] = {}
    search, answer, lexical, dense = [], [], [], []
    for question in questions:
        t = time.perf_counter()
        services.searcher.search(question)
        search.append((time.perf_counter() - t) * 1000)
        lexical.append(services.searcher.last_timings["lexical_ms"])
        how = services.searcher._index.last_pass if services.searcher._index else ""
        passes[how] = passes.get(how, 0) + 1
        dense.append(services.searcher.last_timings["dense_ms"])
    for question in questions:
        t = time.perf_counter()
        services.answerer.answer(question)
        answer.append((time.perf_counter() - t) * 1000)
    index = services.searcher.lexical_snapshot()
    emit({
        "startup_s": round(loaded - started, 2), "index_catch_up_s": round(caught_up - loaded, 2),
        "first_answer_s": round(first - caught_up, 3), "indexed_chunks": index.count,
        "search_p50_ms": pct(search, 50), "search_p95_ms": pct(search, 95),
        "answer_p50_ms": pct(answer, 50), "answer_p95_ms": pct(answer, 95),
        "lexical_p50_ms": pct(lexical, 50), "lexical_p95_ms": pct(lexical, 95),
        "dense_p50_ms": pct(dense, 50), "dense_p95_ms": pct(dense, 95),
        "index_file_mb": round(index.path.stat().st_size / 1e6, 1) if index.path else None,
        "lexical_passes": passes, **rss(),
    })
    import cProfile
    import io
    import pstats

    for line in sys.stdin:
        if line.strip() != "next":
            break
        profile = cProfile.Profile()
        t = time.perf_counter()
        profile.enable()
        services.searcher.lexical_snapshot()
        profile.disable()
        caught = time.perf_counter()
        got = services.answerer.answer(fresh_question)
        done = time.perf_counter()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(25)
        Path(os.environ["SCALE_PROFILE"]).write_text(out.getvalue(), encoding="utf-8")
        emit({"first_question_after_ingest_s": round(done - t, 3), "catch_up_s": round(caught - t, 3),
              "answer_s": round(done - caught, 3),
              "answered_from_new_article": any(c.article_id.startswith("fresh-") for c in got.citations),
              **rss()})


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def pct(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))], 1)


def rss(pid: int | str = "self") -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[f"{key.lower()}_mb"] = round(int(value.split()[0]) / 1024, 1)
    return fields


# --- building the archive --------------------------------------------------------------------------------
def sentence_pool(limit: int = 200_000) -> list[str]:
    """Real sentences from the shared corpora (20-400 characters)."""
    texts: list[str] = []
    for path in sorted((SHARED / "bench" / "bbc" / "articles").rglob("*.txt")):
        texts.append(path.read_text(encoding="utf-8", errors="replace"))
    for path in (SHARED / "bench" / "rgb" / "articles.jsonl", SHARED / "bench" / "scifact" / "corpus.jsonl"):
        if path.is_file():
            texts += [json.loads(line).get("text", "") for line in path.open(encoding="utf-8")]
    pool = [s.strip() for text in texts for s in _SENTENCE.split(text.replace("\n", " "))]
    pool = [s for s in pool if 20 <= len(s) <= 400]
    random.Random(7).shuffle(pool)
    return pool[:limit]


def synthetic_chunk(rng: random.Random, pool: list[str], size: int = 700) -> str:
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < size:
        parts.append(pool[rng.randrange(len(pool))])
    return " ".join(parts)


def grow(store, target: int, pool: list[str], basis, noise: float, per_article: int, rng: random.Random,
         batch: int = 256) -> tuple[int, float]:
    """Add synthetic articles until the store holds ``target`` chunks; return (chunks added, seconds)."""
    import datetime as dt

    import numpy as np

    from newsdesk.models import Article, Chunk

    np_rng = np.random.default_rng(rng.randrange(1 << 30))
    have = store.count_chunks()
    added, spent = 0, 0.0
    number = store.count_articles()
    while have + added < target:
        items = []
        for _ in range(batch):
            if have + added + sum(len(c) for _, c in items) >= target:
                break
            texts = [synthetic_chunk(rng, pool) for _ in range(per_article)]
            body = "\n\n".join(texts)
            article = Article(
                id=f"syn-{number:07d}", title=texts[0][:60], source=SOURCES[number % len(SOURCES)],
                published=dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(3650)), text=body,
            )
            chunks, start = [], 0
            for index, text in enumerate(texts):
                chunks.append(Chunk(article_id=article.id, index=index, text=text, char_start=start,
                                    char_end=start + len(text)))
                start += len(text) + 2
            items.append((article, chunks))
            number += 1
        count = sum(len(c) for _, c in items)
        picks = basis[np_rng.integers(0, len(basis), size=count)]
        jitter = np_rng.normal(size=picks.shape).astype(np.float32)
        jitter /= np.linalg.norm(jitter, axis=1, keepdims=True)
        vectors = picks + noise * jitter
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        t = time.perf_counter()
        store.write_articles(items, vectors.astype(np.float32), "synthetic")
        spent += time.perf_counter() - t
        added += count
    return added, spent


class LazyBasis:
    """The basis vectors, encoded on first use."""

    def __init__(self, encode) -> None:
        self._encode = encode
        self._vectors = None

    def __len__(self) -> int:
        return len(self.vectors)

    def __getitem__(self, index):
        return self.vectors[index]

    @property
    def vectors(self):
        if self._vectors is None:
            self._vectors = self._encode()
        return self._vectors


def start_server(path: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (path.parent / "chroma.log").open("ab")
    process = subprocess.Popen([str(BIN / "chroma"), "run", "--path", str(path), "--host", "127.0.0.1",
                                "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    import httpx

    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)
    raise RuntimeError("chroma run did not come up")


def copy_indexes(source: Path, target: Path) -> None:
    """Copy the BM25 index files of ``source`` into ``target`` (SQLite's backup: consistent while open)."""
    import sqlite3

    target.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.sqlite3"):
        if (target / path.name).exists():
            continue
        with sqlite3.connect(path) as src, sqlite3.connect(target / path.name) as dst:
            src.backup(dst)


def du(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--chunks-per-article", type=int, default=4)
    parser.add_argument("--basis", type=int, default=2000, help="real chunks embedded for the vectors")
    parser.add_argument("--noise", type=float, default=0.5, help="norm of the noise added to a basis vector")
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/newsdesk-scale"))
    parser.add_argument("--prune-postings", type=int, default=None,
                        help="the answering process's first-pass budget (default: retrieval.lexical's)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--build-only", action="store_true", help="grow the archive to the largest size, then stop")
    parser.add_argument("--copy-index", action="store_true",
                        help="start the cold data dir from a copy of the answering process's BM25 index")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in
                 (SHARED / "bench" / "rgb" / "questions.jsonl").open(encoding="utf-8")][: args.questions]
    if args.probe:
        probe(questions, os.environ["SCALE_FRESH_QUESTION"])
        return

    from newsdesk.embedding import Embedder
    from newsdesk.settings import Settings
    from newsdesk.store import Store

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(11)
    pool = sentence_pool()
    embedder = Embedder.from_settings(Settings())
    basis_texts = [synthetic_chunk(rng, pool) for _ in range(args.basis)]
    basis = LazyBasis(lambda: embedder.encode(basis_texts))  # an archive already built needs none
    (work / "server").mkdir(exist_ok=True)
    server, url = start_server(work / "server" / "db")
    env = {**os.environ, "NEWSDESK_CHROMA_URL": url, "NEWSDESK_COLLECTION": "scale", "PYTHONPATH": str(ROOT)}
    results = []
    try:
        store = Store.from_settings(Settings(chroma_url=url, collection="scale"))
        store.check_model(embedder.name, embedder.dimension)
        if args.build_only:
            added, seconds = grow(store, max(args.sizes), pool, basis, args.noise, args.chunks_per_article, rng)
            print(json.dumps({"size": store.count_chunks(), "articles": store.count_articles(),
                              "write_chunks_per_s": round(added / seconds, 1) if seconds else None,
                              "server_disk_mb": du(work / "server" / "db")}), flush=True)
            return
        for size in sorted(args.sizes):
            added, seconds = grow(store, size, pool, basis, args.noise, args.chunks_per_article, rng)
            row = {"size": store.count_chunks(), "articles": store.count_articles(),
                   "write_chunks_per_s": round(added / seconds, 1) if seconds else None,
                   "server_disk_mb": du(work / "server" / "db"), "server": rss(server.pid)}
            fresh_q = f"Who designed the Orlen footbridge number {size}?"
            answering = subprocess.Popen(
                [sys.executable, __file__, "--probe", "--questions", str(args.questions)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                env={**env, "NEWSDESK_DATA_DIR": str(work / "answering"), "SCALE_FRESH_QUESTION": fresh_q,
                     "SCALE_PROFILE": str(work / f"catch-up-{size}.txt"),
                     **({"SCALE_PRUNE_POSTINGS": str(args.prune_postings)} if args.prune_postings else {})},
            )
            row["answering"] = json.loads(answering.stdout.readline())
            if args.copy_index:
                copy_indexes(work / "answering" / "lexical", work / "cold" / "lexical")
            t = time.perf_counter()
            cold = subprocess.run([str(BIN / "newsdesk"), "ask", questions[1], "--data-dir", str(work / "cold")],
                                  capture_output=True, text=True, env=env, check=False)
            row["cold_ask_first_ever_s"] = round(time.perf_counter() - t, 2)  # builds its BM25 index
            t = time.perf_counter()
            subprocess.run([str(BIN / "newsdesk"), "ask", questions[2], "--data-dir", str(work / "cold")],
                           capture_output=True, text=True, env=env, check=False)
            row["cold_ask_s"] = round(time.perf_counter() - t, 2)
            row["cold_ask_ok"] = cold.returncode == 0
            # the largest resident set of any child waited for so far: these two asks (the server is not waited for)
            row["cold_ask_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
            feed = work / f"fresh-{size}.jsonl"
            run = time.strftime("%Y%m%d%H%M%S")  # new ids each run: a rerun's articles are not "unchanged"
            feed.write_text("".join(json.dumps({
                "id": f"fresh-{size}-{run}-{i}", "source": "Orlen Post",
                "text": f"The Orlen footbridge number {size + i} was designed by the engineer Petra Lindqvist "
                        f"{i}. It opened to walkers in March 2032 after two years of work."}) + "\n"
                for i in range(10)), encoding="utf-8")
            t = time.perf_counter()
            subprocess.run([str(BIN / "newsdesk"), "ingest", str(feed), "--data-dir", str(work / "answering")],
                           capture_output=True, text=True, env=env, check=True)
            row["ingest_10_articles_s"] = round(time.perf_counter() - t, 2)
            answering.stdin.write("next\n")
            answering.stdin.flush()
            row["after_ingest"] = json.loads(answering.stdout.readline())
            answering.stdin.close()
            answering.wait(timeout=120)
            row["server_after"] = rss(server.pid)
            results.append(row)
            if not args.json:
                print(json.dumps(row), flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    load = os.getloadavg()[0]
    summary = {"machine": {"cpus": os.cpu_count(), "load_average_end": round(load, 2),
                           "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)},
               "noise": args.noise, "basis": args.basis, "results": results}
    if args.json:
        print(json.dumps(summary))
    else:
        print(json.dumps(summary["machine"]))


if __name__ == "__main__":
    main()
