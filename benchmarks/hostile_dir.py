"""One `newsdesk ingest DIR --json` over a directory of good articles and hostile files (issue 13).

Usage: ``python benchmarks/hostile_dir.py [--good 989] [--stress-mb 10] [--json] [--keep DIR]``.

The directory holds ``--good`` small distinct articles and one file of each hostile kind. Some hostile
files are good text under a hostile name or form and must be stored (a file name that is not UTF-8, one
that is rich markup, text carrying ANSI/OSC escapes, a ``--stress-mb`` MB single line, the good lines of
a JSONL file); the others must each be named in the report with their reason (an empty file, a binary
file, bytes in no detectable encoding, a PDF without a text layer, a broken JSONL line, a file over the
size cap, HTML with only markup). Prints what was stored, each failure with its reason, the seconds taken,
and whether every good article was stored and every broken file named; exits 1 when not.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
TOPICS = ("harbour", "tram line", "dam", "school", "hospital", "budget", "election", "bridge", "airport", "port")


def good_article(i: int) -> str:
    """A small article, distinct from every other (its numbers), about one of ten topics."""
    topic = TOPICS[i % len(TOPICS)]
    sentences = [
        f"The council discussed the {topic} on meeting {i} and approved {i % 17 + 2} new measures.",
        f"Officials said work on the {topic} would cost {i * 13 % 900 + 100} million over {i % 9 + 2} years.",
        f"Residents of district {i % 40 + 1} asked for a public hearing before the vote.",
        f"A final decision on the {topic} is expected in week {i % 52 + 1}.",
    ]
    return f"{topic.capitalize()} plan {i}\n\n" + " ".join(sentences) + "\n"


def blank_pdf() -> bytes:
    """A valid one-page PDF with no text layer (what a scanner without OCR makes)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def build(root: Path, good: int, stress_mb: float, max_file_bytes: int) -> tuple[list[str], dict[str, str]]:
    """Write the corpus; return the ids that must be stored and {failure source name: expected reason}."""
    root.mkdir(parents=True, exist_ok=True)
    stored: list[str] = []
    for i in range(good):
        name = f"article-{i:04d}.txt"
        (root / name).write_text(good_article(i), encoding="utf-8")
        stored.append(name)

    # hostile, but good text: stored, shown as text
    with open(os.fsencode(root) + b"/caf\xe9-latin1-name.txt", "w", encoding="utf-8") as handle:
        handle.write(good_article(good) + "The file's name is Latin-1, not UTF-8.\n")
    stored.append("caf\\xe9-latin1-name.txt")
    (root / "[bold red]x.txt").write_text(good_article(good + 1), encoding="utf-8")
    stored.append("[bold red]x.txt")
    escapes = "\x1b[2J\x1b[H\x1b]0;owned\x07\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\x1b[31m"
    (root / "ansi-escapes.txt").write_text(f"Escapes {escapes} in the text\n\n{good_article(good + 2)}",
                                           encoding="utf-8")
    stored.append("ansi-escapes.txt")
    if stress_mb > 0:
        prose = " ".join(" ".join(p.read_text(encoding="utf-8").split()) for p in sorted(SAMPLE.glob("*.txt")))
        size = int(stress_mb * 1_000_000)
        (root / "single-line-stress.txt").write_text(((prose + " ") * (size // len(prose) + 1))[:size].strip(),
                                                     encoding="utf-8")
        stored.append("single-line-stress.txt")
    lines = [json.dumps({"id": "jsonl-good-1", "text": good_article(good + 3)}),
             '{"id": "jsonl-broken", "text": "no closing quote}',
             json.dumps({"id": "jsonl-good-2", "text": good_article(good + 4)})]
    (root / "feed.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    stored += ["jsonl-good-1", "jsonl-good-2"]

    # broken: each named with its reason, the rest carries on
    (root / "empty.txt").write_bytes(b"")
    (root / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 16)
    (root / "undecodable.txt").write_bytes(bytes((i * 73 + 41) % 127 + 129 for i in range(4000)))
    (root / "scan.pdf").write_bytes(blank_pdf())
    with open(root / "over-the-cap.txt", "wb") as handle:
        handle.truncate(max_file_bytes + 1)  # sparse: its size is refused before a byte is read
    (root / "markup-only.html").write_text(
        "<html><head><title></title><script>var x = 1;</script><style>p{}</style></head>"
        "<body><div><span></span><img src='x.png'></div></body></html>", encoding="utf-8")
    failing = {
        "empty.txt": "empty file",
        "binary.txt": "binary file, not text",
        "undecodable.txt": "encoding could not be detected",
        "scan.pdf": "no text layer",
        "feed.jsonl:2": "not valid JSON",
        "over-the-cap.txt": "over the size limit",
        "markup-only.html": "no article text found",
    }
    return stored, failing


def run(good: int, stress_mb: float, keep: Path | None) -> dict:
    """Build the directory, ingest it once, and compare the report with what was expected."""
    from newsdesk.settings import Settings

    max_file_bytes = Settings().max_file_bytes
    with tempfile.TemporaryDirectory(prefix="hostile-dir-") as scratch:
        base = keep or Path(scratch)
        corpus, data = base / "corpus", base / "data"
        expected, failing = build(corpus, good, stress_mb, max_file_bytes)
        files = len(os.listdir(corpus))
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", "from newsdesk.app.cli import main; main()", "ingest", str(corpus), "--json",
             "--data-dir", str(data)],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False,
        )
        seconds = time.perf_counter() - started
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise SystemExit(f"ingest printed no report (exit {done.returncode}): {done.stderr[-2000:]}") from None
    stored = set(report["added"]) | set(report["updated"]) | set(report["unchanged"])
    named = {Path(f["source"]).name: f["error"] for f in report["failed"]}
    return {
        "files": files,
        "good_expected": len(expected),
        "stored": len(stored),
        "missing": sorted(set(expected) - stored),
        "unexpected": sorted(stored - set(expected)),
        "failures": [{"source": Path(f["source"]).name, "error": f["error"]} for f in report["failed"]],
        "not_named": sorted(name for name, reason in failing.items() if reason not in named.get(name, "")),
        "named_but_good": sorted(set(named) - set(failing)),
        "warnings": len(report["warnings"]),
        "chunks_embedded": report["chunks_embedded"],
        "ingest_seconds": report["seconds"],
        "seconds": round(seconds, 1),
        "exit_code": done.returncode,
        "stderr_lines": len(done.stderr.splitlines()),
    }


def main() -> None:
    """Run the probe and print a table (or one JSON object with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--good", type=int, default=989, help="plain good articles (989 makes 1,000 files)")
    parser.add_argument("--stress-mb", type=float, default=10, help="size of the single-line file; 0: none")
    parser.add_argument("--keep", type=Path, help="build the corpus and data dir here and keep them")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.good, args.stress_mb, args.keep)
    ok = not (result["missing"] or result["unexpected"] or result["not_named"] or result["named_but_good"])
    result["ok"] = ok
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"files in the directory   {result['files']}")
        print(f"articles stored          {result['stored']} of {result['good_expected']} expected"
              + (f"; missing: {', '.join(result['missing'])}" if result["missing"] else ""))
        print(f"chunks embedded          {result['chunks_embedded']}")
        print(f"failures named           {len(result['failures'])}"
              + (f"; not named: {', '.join(result['not_named'])}" if result["not_named"] else ""))
        for failure in result["failures"]:
            print(f"  {failure['source']:<20} {failure['error']}")
        print(f"warnings                 {result['warnings']}")
        print(f"seconds (whole command)  {result['seconds']}  (ingest's own figure {result['ingest_seconds']})")
        print(f"exit code                {result['exit_code']} (1: some input failed, as designed)")
        print(f"every good one stored, every broken one named: {'yes' if ok else 'NO'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
