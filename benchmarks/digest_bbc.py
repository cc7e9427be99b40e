"""Digest of the BBC corpus treated as one week: how many stories, the largest group, and the time taken.

Every BBC article (2,225 files, 98 byte-identical pairs and some near-duplicates) is given a publication
date within one week (by file order) and run through :func:`retrieval.digest.build_digest` (MinHash LSH
over word 5-shingles). Prints the group count, the largest group, how many groups hold copies, and the
seconds for grouping and citing (reading the files is reported apart).

    .venv/bin/python benchmarks/digest_bbc.py [--threshold 0.5] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date, timedelta
from pathlib import Path

from retrieval.digest import DigestArticle, build_digest

BBC = Path(__file__).resolve().parents[2] / "shared" / "bench" / "bbc" / "articles"
MONDAY = date(2005, 3, 7)


def read(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not BBC.is_dir():
        raise SystemExit(f"the BBC corpus is not at {BBC}")
    started = time.perf_counter()
    paths = sorted(BBC.rglob("*.txt"))
    articles = []
    for i, path in enumerate(paths):
        text = read(path)
        articles.append(DigestArticle(id=str(path.relative_to(BBC)), text=text, title=text.split("\n", 1)[0],
                                      source="BBC", published=MONDAY + timedelta(days=i % 7)))
    loaded = time.perf_counter()
    groups = build_digest(articles, MONDAY, MONDAY + timedelta(days=6), threshold=args.threshold)
    done = time.perf_counter()
    copies = [g for g in groups if g.size > 1]
    result = {
        "articles": len(articles),
        "groups": len(groups),
        "groups_with_copies": len(copies),
        "articles_in_copy_groups": sum(g.size for g in copies),
        "largest": groups[0].size if groups else 0,
        "largest_ids": [a.id for a in groups[0].articles] if groups else [],
        "threshold": args.threshold,
        "read_seconds": round(loaded - started, 2),
        "digest_seconds": round(done - loaded, 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:24} {value}")


if __name__ == "__main__":
    main()
