"""Answers on the BBC archive: the dev set's figures, warm and cold `ask` latency, on one persistent index.

    .venv/bin/python benchmarks/bbc_answers.py [--data-dir .bench/bbc] [--cold 3] [--json]

Ingests ``../shared/bench/bbc/articles`` into ``--data-dir`` once (answer sentences precomputed, as by
default), then runs ``newsdesk eval ../shared/bench/bbc/dev.jsonl`` on it (answer accuracy, strict accuracy,
short answers, abstention, citations, hit@5, warm per-question latency in one process) and times ``newsdesk
ask`` from the shell ``--cold`` times (a new process each: imports, model load, index open). The held-out
(cross-validated) figures of the answerer's fitted tables are in ``retrieval/selection_weights.json``
(``benchmarks/fit_answerer.py``); the figures here are of the shipped tables, fitted on these questions too.
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
BBC = ROOT.parent / "shared" / "bench" / "bbc"
NEWSDESK = Path(sys.executable).with_name("newsdesk")
KEYS = ("answer_accuracy", "strict_answer_accuracy", "short_coverage", "short_precision", "abstention_recall",
        "abstention_precision", "citation_validity", "citation_precision", "citation_recall", "hit_at_k",
        "latency_p50_ms", "latency_p95_ms")
COLD_QUESTION = "Which blog-reading website did Ask Jeeves buy?"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(NEWSDESK), *args], capture_output=True, text=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".bench" / "bbc")
    parser.add_argument("--cold", type=int, default=3, help="cold `newsdesk ask` runs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not BBC.is_dir():
        sys.exit(f"no BBC benchmark at {BBC}")

    started = time.perf_counter()
    ingested = run("ingest", str(BBC / "articles"), "--data-dir", str(args.data_dir), "--json")
    ingest_seconds = time.perf_counter() - started
    report = json.loads(ingested.stdout)
    evaluated = run("eval", str(BBC / "dev.jsonl"), "--data-dir", str(args.data_dir), "--json")
    if evaluated.returncode not in (0, 1):
        sys.exit(evaluated.stderr)
    metrics = json.loads(evaluated.stdout)
    timings = [q["timings"] for q in metrics["questions"] if q.get("timings")]
    cold = []
    for _ in range(args.cold):
        started = time.perf_counter()
        asked = run("ask", COLD_QUESTION, "--data-dir", str(args.data_dir))
        cold.append(time.perf_counter() - started)
        if asked.returncode != 0:
            sys.exit(asked.stderr)
    result = {
        "questions": metrics["n"],
        **{key: metrics.get(key) for key in KEYS},
        "score_ms_p50": statistics.median(t["score_ms"] for t in timings),
        "retrieve_ms_p50": statistics.median(t["retrieve_ms"] for t in timings),
        "cold_ask_seconds_median": round(statistics.median(cold), 2),
        "ingest_seconds": round(ingest_seconds, 1),
        "ingest_chunks_embedded": report["chunks_embedded"],
        "ingest_sentences_embedded": report.get("sentences_embedded"),
        "load_average": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("measure", "value", title="BBC dev set: answers and latency")
    for key, value in result.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    Console().print(table)


if __name__ == "__main__":
    main()
