"""RGB with counterfactual passages added: how often the answer states the counterfactual as fact.

Ingests ../shared/bench/rgb/articles.jsonl plus conflicts.jsonl through the real pipeline into a data dir
(kept, so a second run skips the ingest), asks every question that has counterfactual copies, and counts:
answers containing the fake answer without flagging a disagreement ("stated as fact"), answers that show
the disagreement, and answers giving only the true answer.

    .venv/bin/python benchmarks/rgb_conflicts.py [--data-dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ingest.sync import ingest  # noqa: E402
from newsdesk.app.runtime import Services  # noqa: E402
from newsdesk.embedding import Embedder  # noqa: E402
from newsdesk.settings import Settings  # noqa: E402
from newsdesk.store import Store  # noqa: E402

RGB = Path(__file__).resolve().parents[2] / "shared" / "bench" / "rgb"


def fold(text: str) -> str:
    return " ".join(text.split()).lower()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="benchmarks/.data/rgb-conflicts")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = Settings(data_dir=args.data_dir)
    embedder, store = Embedder.from_settings(settings), Store.from_settings(settings)
    started = time.perf_counter()
    report = ingest([str(RGB / "articles.jsonl"), str(RGB / "conflicts.jsonl")], settings, store, embedder)
    ingest_s = time.perf_counter() - started
    answerer = Services.from_settings(settings, embedder=embedder, store=store).answerer
    fakes = {}
    for row in map(json.loads, (RGB / "conflicts.jsonl").open()):
        fakes.setdefault(row["question_id"], row["fake_answer"])
    counts = {"questions": 0, "stated_as_fact": 0, "conflict_shown": 0, "true_only": 0, "fake_only": 0}
    for q in map(json.loads, (RGB / "questions.jsonl").open()):
        if q["id"] not in fakes:
            continue
        answer = answerer.answer(q["question"])
        text = fold(answer.text)
        fake = fold(fakes[q["id"]]) in text
        true = any(fold(a) in text for a in q["answers"])
        flagged = bool(answer.metadata.get("conflicts"))
        counts["questions"] += 1
        counts["stated_as_fact"] += fake and not flagged
        counts["conflict_shown"] += flagged
        counts["true_only"] += true and not fake
        counts["fake_only"] += fake and not true
    result = counts | {
        "stated_as_fact_rate": round(counts["stated_as_fact"] / counts["questions"], 3),
        "articles_ingested": len(report.added) + len(report.unchanged),
        "ingest_seconds": round(ingest_s, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:22} {value}")


if __name__ == "__main__":
    main()
