"""Latency of `ask` on a ~10k-chunk index: warm answer and retrieval percentiles, and cold CLI wall time.

    .venv/bin/python benchmarks/ask_latency.py [--data-dir D] [--questions 100] [--torch-threads N] [--json]

The index (SciFact abstracts plus the RGB news passages, chunked and embedded by the real pipeline) is
built once in ``--data-dir`` and reused. Warm figures come from one process with the model loaded, after
a warm-up: ``answer`` is ``services.answerer.answer(question)``, ``retrieval`` is ``searcher.search``
as the answerer calls it (each measured with a fresh query-embedding cache, so the query is embedded
every time). ``cold`` is the wall time of ``newsdesk ask QUESTION --data-dir D`` from the shell: a new
process that imports the code, loads the ONNX model, opens Chroma and the BM25 index (made once, then kept
under the data dir).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH = ROOT.parent / "shared" / "bench"
NEWSDESK = Path(sys.executable).with_name("newsdesk")

TARGETS_MS = {"answer_p50": 100.0, "retrieval_p50": 30.0, "cold_median": 4000.0}

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def corpus_articles():
    """SciFact abstracts and RGB news passages as ``Article``s."""
    from newsdesk.models import Article

    with (BENCH / "scifact" / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            yield Article(id=f"scifact-{doc['_id']}", title=doc.get("title", ""), text=doc["text"],
                          source="SciFact")
    with (BENCH / "rgb" / "articles.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            yield Article(id=doc["id"], title=doc.get("title", ""), text=doc["text"],
                          source=doc.get("source", ""))


def questions(n: int) -> tuple[list[str], list[str]]:
    """(measured, warm-up): the RGB news questions, then SciFact claims if more are wanted."""
    with (BENCH / "rgb" / "questions.jsonl").open(encoding="utf-8") as handle:
        texts = [json.loads(line)["question"] for line in handle]
    with (BENCH / "scifact" / "queries.jsonl").open(encoding="utf-8") as handle:
        texts += [json.loads(line)["text"] for line in handle]
    return texts[:n], texts[-10:]


def build_index(settings, embedder) -> tuple[object, dict]:
    """Open the store and bring it up to date with the corpus (a no-op, bar reading, once built)."""
    from ingest.sync import sync_articles
    from newsdesk.models import IngestReport
    from newsdesk.store import Store

    store = Store.from_settings(settings)
    started = time.perf_counter()
    report = IngestReport()

    def progress(stage: str, done: int, total: int) -> None:
        print(f"\r  embedding {done}/{total} chunks", end="", file=sys.stderr, flush=True)

    # incremental: unchanged articles cost a fingerprint comparison, nothing is embedded again
    sync_articles(corpus_articles(), store, embedder, settings, report, progress=progress)
    if report.chunks_embedded:
        print(file=sys.stderr)
    return store, {
        "built": report.chunks_embedded > 0, "seconds": round(time.perf_counter() - started, 1),
        "articles": store.count_articles(), "chunks": store.count_chunks(),
        "duplicates_skipped": len(report.duplicates),
    }


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary(values: list[float]) -> dict[str, float]:
    """p50/p95/mean/max of ``values`` in milliseconds, rounded."""
    return {
        "p50": round(percentile(values, 50), 2), "p95": round(percentile(values, 95), 2),
        "mean": round(statistics.fmean(values), 2), "max": round(max(values), 2),
    }


def fresh_services(settings, embedder, store):
    """Services sharing the loaded model and store, with an empty query-embedding cache."""
    from newsdesk.app.runtime import Services
    from newsdesk.embedding import Embedder

    return Services.from_settings(
        settings, embedder=Embedder(embedder.model, embedder.name, embedder.batch_size), store=store
    )


def warm(settings, embedder, store, n: int, warmup: int) -> dict:
    """Warm retrieval and answer latencies over ``n`` questions."""
    measured, warmups = questions(n)
    k = 2 * settings.top_k  # what the extractive answerer asks the searcher for

    services = fresh_services(settings, embedder, store)
    started = time.perf_counter()
    services.searcher.lexical_snapshot()
    snapshot_ms = (time.perf_counter() - started) * 1000
    for question in warmups[:warmup]:
        services.searcher.search(question, k=k)
    retrieval, dense, lexical = [], [], []
    for question in measured:
        started = time.perf_counter()
        services.searcher.search(question, k=k)
        retrieval.append((time.perf_counter() - started) * 1000)
        dense.append(services.searcher.last_timings["dense_ms"])
        lexical.append(services.searcher.last_timings["lexical_ms"])

    services = fresh_services(settings, embedder, store)
    embed = []
    for question in measured:
        started = time.perf_counter()
        services.embedder.embed_query_array(question)
        embed.append((time.perf_counter() - started) * 1000)

    services = fresh_services(settings, embedder, store)
    for question in warmups[:warmup]:
        services.answerer.answer(question)
    total, score, abstained = [], [], 0
    for question in measured:
        started = time.perf_counter()
        answer = services.answerer.answer(question)
        total.append((time.perf_counter() - started) * 1000)
        score.append(answer.timings.get("score_ms", 0.0))
        abstained += answer.abstained
    return {
        "questions": len(measured), "warmup": warmup, "k": k, "snapshot_load_ms": round(snapshot_ms, 1),
        "answer_ms": summary(total), "answer_scoring_ms": summary(score), "retrieval_ms": summary(retrieval),
        "dense_ms": summary(dense), "query_embedding_ms": summary(embed), "lexical_ms": summary(lexical),
        "abstained": abstained,
    }


def cold(data_dir: Path, question: str, runs: int, threads: int | None) -> dict:
    """Wall time of ``newsdesk ask`` in a new process, ``runs`` times."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run([str(NEWSDESK), "ask", question, "--json", "--data-dir", str(data_dir)],
                              capture_output=True, text=True, env=env, check=False)
        times.append((time.perf_counter() - started) * 1000)
        if done.returncode != 0:
            raise SystemExit(f"newsdesk ask failed ({done.returncode}): {done.stderr.strip()}")
        json.loads(done.stdout)  # a real answer, not an error message
    return {"runs": [round(t, 0) for t in times], "median_ms": round(statistics.median(times), 0),
            "question": question}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / ".data" / "latency")
    parser.add_argument("--questions", type=int, default=100, help="measured questions")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch intra-op threads, here and (as OMP_NUM_THREADS) for the cold runs; "
                        "default: torch's own choice")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)

    from newsdesk.app.cli import _quiet_libraries

    _quiet_libraries()
    from newsdesk.embedding import Embedder
    from newsdesk.settings import Settings

    settings = Settings(data_dir=args.data_dir)
    embedder = Embedder.from_settings(settings)
    store, index = build_index(settings, embedder)
    import torch

    load_before = os.getloadavg()[0]
    results = {"index": index, "warm": warm(settings, embedder, store, args.questions, args.warmup)}
    results["cold"] = cold(args.data_dir, questions(1)[0][0], args.cold_runs, args.torch_threads)
    results["machine"] = {
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_avg_1min_before": round(load_before, 2), "load_avg_1min_after": round(os.getloadavg()[0], 2),
    }
    measured = {
        "answer_p50": results["warm"]["answer_ms"]["p50"],
        "retrieval_p50": results["warm"]["retrieval_ms"]["p50"],
        "cold_median": results["cold"]["median_ms"],
    }
    results["targets_ms"] = {
        name: {"target": TARGETS_MS[name], "measured": value, "met": value <= TARGETS_MS[name]}
        for name, value in measured.items()
    }
    if args.json:
        print(json.dumps(results))
        return
    w = results["warm"]
    state = "built in" if index["built"] else "cached; checked in"
    print(f"index: {index['chunks']} chunks from {index['articles']} articles in {args.data_dir} "
          f"({state} {index['seconds']} s)")
    m = results["machine"]
    print(f"machine: {m['cpus']} CPUs, torch threads {m['torch_threads']}, load average "
          f"{m['load_avg_1min_before']} before / {m['load_avg_1min_after']} after")
    print(f"warm: {w['questions']} questions after {w['warmup']} warm-up, searcher k={w['k']}; "
          f"first BM25 snapshot in {w['snapshot_load_ms']:.0f} ms; {w['abstained']} abstained\n")
    print(f"{'stage':<24}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}{'max ms':>10}")
    for label, key in [("answer (total)", "answer_ms"), ("  sentence scoring", "answer_scoring_ms"),
                       ("retrieval (search)", "retrieval_ms"), ("  dense (with embedding)", "dense_ms"),
                       ("    query embedding", "query_embedding_ms"), ("  lexical", "lexical_ms")]:
        s = w[key]
        print(f"{label:<24}{s['p50']:>10.1f}{s['p95']:>10.1f}{s['mean']:>10.1f}{s['max']:>10.1f}")
    c = results["cold"]
    print(f"\ncold `newsdesk ask` wall time: median {c['median_ms']:.0f} ms (runs {c['runs']})\n")
    print(f"{'target':<16}{'goal ms':>10}{'measured':>10}  met")
    for name, t in results["targets_ms"].items():
        print(f"{name:<16}{t['target']:>10.0f}{t['measured']:>10.1f}  {'yes' if t['met'] else 'NO'}")


if __name__ == "__main__":
    main()
