"""RGB retrieval: newsdesk's hybrid search against a plain LangChain quickstart pipeline, in one run.

The quickstart: RecursiveCharacterTextSplitter(1000, 200), all-MiniLM-L6-v2, langchain-chroma, top-k
similarity search. newsdesk: the real ingest pipeline and ``HybridSearcher``. Both index
../shared/bench/rgb/articles.jsonl into fresh directories under --data-dir and are scored with the
evaluation harness's definitions (a hit is a gold quote, whitespace-folded, inside a retrieved passage).

    .venv/bin/python benchmarks/rgb_retrieval.py [--data-dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from langchain_chroma import Chroma  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_text_splitters import RecursiveCharacterTextSplitter  # noqa: E402

from evals.metrics import first_hit_rank  # noqa: E402
from ingest.sync import ingest  # noqa: E402
from newsdesk.embedding import Embedder  # noqa: E402
from newsdesk.settings import Settings  # noqa: E402
from newsdesk.store import Store  # noqa: E402
from retrieval.search import HybridSearcher  # noqa: E402

RGB = Path(__file__).resolve().parents[2] / "shared" / "bench" / "rgb"


def score(rankings: list[list[str]], questions: list[dict]) -> dict[str, float]:
    """hit@4, hit@5 and MRR@10 of passage texts ranked per question."""
    out = {"hit_at_4": 0.0, "hit_at_5": 0.0, "mrr_at_10": 0.0}
    for texts, q in zip(rankings, questions, strict=True):
        rank = first_hit_rank(texts[:10], [e["quote"] for e in q["evidence"]])
        if rank is not None:
            out["hit_at_4"] += rank <= 4
            out["hit_at_5"] += rank <= 5
            out["mrr_at_10"] += 1.0 / rank
    return {k: round(v / len(questions), 3) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("benchmarks/.data/rgb-retrieval"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    shutil.rmtree(args.data_dir, ignore_errors=True)
    settings = Settings(data_dir=args.data_dir / "newsdesk")
    embedder = Embedder.from_settings(settings)
    questions = [json.loads(line) for line in (RGB / "questions.jsonl").open()]
    articles = [json.loads(line) for line in (RGB / "articles.jsonl").open()]

    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    docs = splitter.split_documents([Document(page_content=a["text"], metadata={"id": a["id"]}) for a in articles])
    baseline = Chroma(collection_name="quickstart", embedding_function=embedder,
                      persist_directory=str(args.data_dir / "quickstart"))
    baseline.add_documents(docs)
    started = time.perf_counter()
    base_rank = [[d.page_content for d in baseline.similarity_search(q["question"], k=10)] for q in questions]
    base_s = time.perf_counter() - started

    store = Store.from_settings(settings)
    ingest([str(RGB / "articles.jsonl")], settings, store, embedder)
    searcher = HybridSearcher(store, embedder, settings)
    started = time.perf_counter()
    ours_rank = [[p.text for p in searcher.search(q["question"], k=10)] for q in questions]
    ours_s = time.perf_counter() - started

    result = {
        "quickstart": score(base_rank, questions) | {"ms_per_query": round(1000 * base_s / len(questions), 1)},
        "newsdesk_hybrid": score(ours_rank, questions) | {"ms_per_query": round(1000 * ours_s / len(questions), 1)},
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'retriever':18} {'hit@4':>6} {'hit@5':>6} {'MRR@10':>7} {'ms/query':>9}")
    for name, row in result.items():
        print(f"{name:18} {row['hit_at_4']:6.3f} {row['hit_at_5']:6.3f} {row['mrr_at_10']:7.3f} "
              f"{row['ms_per_query']:9.1f}")


if __name__ == "__main__":
    main()
