"""SciFact (BEIR): tune hybrid fusion and BM25 on the train split, then report dense, BM25 and hybrid on test.

    .venv/bin/python benchmarks/scifact.py [--bench DIR] [--data-dir .newsdesk] [--out figures.json]

Only the train split chooses the configuration; the test split is scored once, with the chosen one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evals import beir  # noqa: E402
from evals.beir import FusionConfig  # noqa: E402

BM25_GRID = [
    {"k1": 1.2, "b": 0.75},
    {"k1": 0.9, "b": 0.4},
    {"k1": 1.5, "b": 0.75},
    {"k1": 1.2, "b": 0.9},
    {"k1": 2.0, "b": 0.75},
]
WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7)
FUSIONS = [
    *(FusionConfig("rrf", w, rrf_k=k, depth=d) for k in (10, 30, 60) for w in WEIGHTS for d in (40, 100)),
    *(
        FusionConfig("convex", w, normalise=n, depth=d)
        for n in ("minmax", "z")
        for w in (0.2, *WEIGHTS, 0.8)
        for d in (40, 100)
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench" / "scifact")
    parser.add_argument("--data-dir", type=Path, default=None, help="holds beir-cache/ (default: settings)")
    parser.add_argument("--out", type=Path, default=None, help="write every configuration's figures here")
    args = parser.parse_args()

    from newsdesk.embedding import Embedder
    from newsdesk.settings import Settings

    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    cache = settings.data_dir / "beir-cache"
    embedder = Embedder.from_settings(settings)

    started = time.perf_counter()
    ranked = beir.tune(args.bench, embedder, FUSIONS, split="train", cache_dir=cache, bm25_grid=BM25_GRID)
    print(
        f"train: {len(ranked)} configurations in {time.perf_counter() - started:.1f} s; best hybrid nDCG@10:"
    )
    for params, config, scores in ranked[:10]:
        print(
            f"  {scores['hybrid']['ndcg_at_10']:.4f}  bm25 k1={params['k1']} b={params['b']}  "
            f"{config.label()}"
        )
    for method in ("rrf", "convex"):
        best = next(r for r in ranked if r[1].method == method)
        print(f"  best {method}: {best[2]['hybrid']['ndcg_at_10']:.4f} ({best[1].label()}, bm25 {best[0]})")
    plain = next(
        r
        for r in ranked
        if r[0] == {"k1": 1.2, "b": 0.75} and r[1] == FusionConfig("rrf", 0.5, 60, depth=100)
    )
    print(
        f"  plain RRF k=60, default BM25: {plain[2]['hybrid']['ndcg_at_10']:.4f}; dense "
        f"{plain[2]['dense']['ndcg_at_10']:.4f}; bm25 {plain[2]['bm25']['ndcg_at_10']:.4f}"
    )

    params, config, _ = ranked[0]
    test = beir.run_beir(
        args.bench, embedder, split="test", cache_dir=cache, fusion=config, bm25_params=params
    )
    print(f"\ntest ({test.queries} queries), chosen on train: bm25 {params}, {config.label()}")
    for name, scores in test.scores.items():
        print(f"  {name:7} nDCG@10 {scores['ndcg_at_10']:.4f}  recall@100 {scores['recall_at_100']:.4f}")
    for name, value in test.published.items():
        print(f"  published {name}: {value:.3f}")
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "train": [{"bm25": p, "fusion": c.label(), **s} for p, c, s in ranked],
                    "test": test.to_dict(),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
