"""Issue 13: one directory of good articles and hostile files, one ingest: every good article is stored and
every broken file is named with its reason (benchmarks/hostile_dir.py at a small scale, no stress file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_good_article_is_stored_and_every_broken_file_named() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "hostile_dir.py"), "--good", "60",
                           "--stress-mb", "0", "--json"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    result = json.loads(done.stdout)
    assert done.returncode == 0, result
    assert result["files"] == 70 and result["stored"] == result["good_expected"] == 65
    assert not result["missing"] and not result["unexpected"]
    assert {f["source"]: f["error"] for f in result["failures"]} == {
        "empty.txt": "empty file",
        "binary.txt": "binary file, not text",
        "undecodable.txt": "not valid UTF-8 and the text encoding could not be detected",
        "scan.pdf": "no text layer (scanned PDF?); skipped",
        "feed.jsonl:2": "not valid JSON (Unterminated string starting at column 32)",
        "over-the-cap.txt": "over the size limit of 20000000 bytes",
        "markup-only.html": "no article text found in the HTML",
    }
    assert result["exit_code"] == 1  # some inputs failed: the others were stored all the same
    assert result["stderr_lines"] == 0  # with --json the failures are in the report: no warning, no traceback
