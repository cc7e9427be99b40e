"""SciFact test: hybrid retrieval with the store's BM25 engine (SQLite FTS5) against bm25s, same fusion.

The store's lexical side is :class:`retrieval.lexical.LexicalIndex` (FTS5 ``bm25()``, k1 = 1.2, b = 0.75
fixed by SQLite); ``newsdesk eval --beir`` scores :class:`retrieval.lexical.BM25Index` (bm25s, tunable).
This scores both on the same dense vectors, queries and fusions, so the effect of the engine is seen alone.

The searcher takes FTS5's top k through :func:`retrieval.lexical.top_bm25`, which reads at most
``PRUNE_POSTINGS`` postings first (50,000: 5% of a million chunks). SciFact's 5,183 abstracts are far
below that, so the ``pruned`` rows scale the budget to the same share of this corpus (``--prune-share``)
to show what pruning as hard as at a million chunks costs; ``passes`` says how the queries were answered.

    .venv/bin/python benchmarks/lexical_quality.py [--bench DIR] [--data-dir .newsdesk] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evals import beir  # noqa: E402
from evals.beir import FusionConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench" / "scifact")
    parser.add_argument("--split", default="test")
    parser.add_argument("--data-dir", type=Path, default=None, help="holds beir-cache/ (default: settings)")
    parser.add_argument("--prune-share", type=float, nargs="+", default=[0.05, 0.02],
                        help="first-pass budgets of the pruned rows, as shares of the corpus")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import numpy as np

    from newsdesk.embedding import Embedder
    from newsdesk.settings import Settings
    from retrieval.lexical import BM25Index, FtsBM25

    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    embedder = Embedder.from_settings(settings)
    data = beir.load_beir(args.bench, args.split)
    vectors, _ = beir.cached_embeddings(embedder, data.texts, beir.corpus_hash(data.doc_ids, data.texts),
                                        settings.data_dir / "beir-cache")
    queries = np.asarray(embedder.encode(list(data.queries.values())), dtype=np.float32)
    engines = {
        f"bm25s k1={beir.DEFAULT_BM25['k1']} b={beir.DEFAULT_BM25['b']}": lambda: BM25Index(data.texts,
                                                                                         **beir.DEFAULT_BM25),
        "bm25s k1=1.2 b=0.75": lambda: BM25Index(data.texts, k1=1.2, b=0.75),
        "fts5 bm25() (k1=1.2 b=0.75)": lambda: FtsBM25(data.texts),
        **{f"fts5 pruned top-100, {share:.0%} postings": (
            lambda share=share: FtsBM25(data.texts, postings=round(share * len(data.texts)), depth=beir.RECALL_AT))
           for share in args.prune_share},
    }
    fusions = {"eval default": beir.DEFAULT_FUSION, "rrf k=60 (as the searcher)": FusionConfig("rrf", 0.5, 60,
                                                                                                depth=100)}
    out = []
    for engine, make in engines.items():
        started = time.perf_counter()
        index = make()
        built = time.perf_counter() - started
        rankings = beir.rank_all(data, vectors, embedder, index, beir.RECALL_AT, query_vectors=queries)
        for label, fusion in fusions.items():
            scores = beir.score_runs(data, beir.runs_for(rankings, fusion))
            out.append({"engine": engine, "fusion": label, "build_s": round(built, 2),
                        **{f"{k}_ndcg_at_10": round(v["ndcg_at_10"], 4) for k, v in scores.items()},
                        **({"passes": dict(index.passes)} if getattr(index, "passes", None) else {})})
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{data.queries.__len__()} queries, {len(data.doc_ids)} documents ({args.split})")
    for row in out:
        print(f"  {row['engine']:30} {row['fusion']:28} bm25 {row['bm25_ndcg_at_10']:.4f}  "
              f"hybrid {row['hybrid_ndcg_at_10']:.4f}  (dense {row['dense_ndcg_at_10']:.4f}; built in "
              f"{row['build_s']} s){'  passes ' + json.dumps(row['passes']) if 'passes' in row else ''}")


if __name__ == "__main__":
    main()
