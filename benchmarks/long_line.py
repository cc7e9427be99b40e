"""Chunking time of single-line files of 1, 5 and 10 MB (a dump or a flattened table as one "paragraph").

Usage: ``python benchmarks/long_line.py [--sizes 1 5 10] [--json]``. Prints characters per second for
each size; chunking must stay linear (issue 13 asks for 10 MB in under 10 s).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ingest.chunking import chunk_article
from ingest.metadata import fill_missing
from newsdesk.models import Article

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def one_line(size: int) -> str:
    """``size`` characters of real article prose joined onto a single line."""
    prose = " ".join(" ".join(p.read_text(encoding="utf-8").split()) for p in sorted(SAMPLE.glob("*.txt")))
    return (prose + " ") * (size // (len(prose) + 1) + 1)


def main() -> None:
    """Run the benchmark and print a table (or one JSON object with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 5, 10], help="sizes in MB")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for mb in args.sizes:
        text = one_line(int(mb * 1_000_000))[: int(mb * 1_000_000)].strip()
        started = time.perf_counter()
        article = fill_missing(Article(id="long.txt", text=text))
        chunks = chunk_article(article, 800, 150)
        seconds = time.perf_counter() - started
        rows.append({"mb": mb, "chars": len(text), "chunks": len(chunks), "seconds": round(seconds, 3),
                     "chars_per_s": round(len(text) / seconds)})
    if args.json:
        print(json.dumps({"long_line_chunking": rows}))
        return
    print(f"{'MB':>5} {'chars':>10} {'chunks':>7} {'seconds':>8} {'chars/s':>10}")
    for r in rows:
        print(f"{r['mb']:>5g} {r['chars']:>10} {r['chunks']:>7} {r['seconds']:>8.2f} {r['chars_per_s']:>10}")


if __name__ == "__main__":
    main()
