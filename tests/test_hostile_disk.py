"""Issue 13: a full disk stops an ingest with one line, loses nothing, and a rerun after freeing space
finishes it. Real `newsdesk` processes on a real 6 MB tmpfs (mounting needs root; skipped otherwise).

Every child process has a timeout: a full disk once made chromadb's embedded client wait forever (holding
the GIL) on its next call in the same process; the store now replaces a client whose call failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
DISK_FULL = ("error: the disk holding {} is full; nothing was lost: free space and run the command again "
             "(an interrupted ingest is finished by the next one)")
TIMEOUT = 120  # seconds for any one child; a hang fails the test instead of stalling the run


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 6 MB tmpfs, unmounted (lazily) whatever happens."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def fill(disk: Path, leave: int) -> Path:
    """A filler file leaving about ``leave`` bytes free on ``disk``."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    size = stat.f_bavail * stat.f_frsize - leave
    with open(filler, "wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, size)
    return filler


def stories(root: Path, count: int) -> Path:
    """``count`` small distinct articles (one chunk each)."""
    root.mkdir()
    for i in range(count):
        body = " ".join(f"Inspectors visited pier {i} on day {d} and counted {i * 7 + d} cranes at work."
                        for d in range(6))
        (root / f"pier-{i:03d}.txt").write_text(f"Pier {i} report\n\n{body}\n", encoding="utf-8")
    return root


def newsdesk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from newsdesk.app.cli import main; main()", *args],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=TIMEOUT, check=False)


def listing(data: Path) -> dict[str, dict]:
    done = newsdesk("sources", "--json", "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    return {r["id"]: {k: r[k] for k in ("chunks", "fingerprint", "content_hash", "state", "origin")}
            for r in json.loads(done.stdout)}


@pytest.mark.slow
def test_full_disk_is_one_line_and_a_rerun_after_freeing_space_finishes(small_disk: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    first.mkdir()
    for path in SAMPLE.glob("*.txt"):
        (first / path.name).write_bytes(path.read_bytes())
    more = stories(tmp_path / "more", 30)
    data = small_disk / "data"

    assert newsdesk("ingest", str(first), "--data-dir", str(data)).returncode == 0
    before = listing(data)
    assert len(before) == 2 and {r["state"] for r in before.values()} == {"ready"}

    filler = fill(small_disk, 128 * 1024)  # 30 articles need about 400 kB
    full = newsdesk("ingest", str(more), "--data-dir", str(data))
    assert full.returncode == 1, full.stdout + full.stderr
    assert full.stderr.splitlines() == [DISK_FULL.format(data)]

    filler.unlink()
    after = listing(data)  # the earlier articles are intact; the cut-short write may show as pending
    assert {k: v for k, v in after.items() if k in before} == before
    assert {after[k]["state"] for k in after.keys() - before.keys()} <= {"pending"}
    asked = newsdesk("ask", "What is happening to the capacity of the Special Protection Unit?", "--json",
                     "--data-dir", str(data))
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert not answer["abstained"] and {c["article_id"] for c in answer["citations"]} <= set(before)

    rerun = newsdesk("ingest", str(more), "--data-dir", str(data))
    assert rerun.returncode == 0, rerun.stderr
    clean = tmp_path / "clean"
    assert newsdesk("ingest", str(first), str(more), "--data-dir", str(clean)).returncode == 0
    assert listing(data) == listing(clean)


#: Fills a store on the small disk until a write fails, then uses the store again from other threads, as
#: the bot does (asyncio.to_thread), and opens it anew: every call must return (8-dimensional vectors).
SAME_PROCESS = r'''
import os, sys, threading
import numpy as np
from newsdesk.store import Store
from newsdesk.errors import StoreUnavailable
from newsdesk.models import Article, Chunk
from newsdesk.settings import Settings

disk, leave = sys.argv[1], int(sys.argv[2])
settings = Settings(data_dir=os.path.join(disk, "data"))
store = Store.from_settings(settings)

def write(prefix, count):
    items = []
    for i in range(count):
        text = f"Story {prefix} {i}: the tram line reached the harbour on Monday. " * 8
        a = Article(id=f"{prefix}-{i}", text=text)
        items.append((a, [Chunk(article_id=a.id, index=0, text=text, char_start=0, char_end=len(text))]))
    store.write_articles(items, np.random.default_rng(0).random((count, 8), dtype=np.float32))

write("before", 5)
stat = os.statvfs(disk)
with open(os.path.join(disk, "filler"), "wb") as handle:
    os.posix_fallocate(handle.fileno(), 0, stat.f_bavail * stat.f_frsize - leave)
try:
    write("full", 200)
except StoreUnavailable as exc:
    print("failed:", exc, flush=True)
os.unlink(os.path.join(disk, "filler"))

def in_thread(name, call):
    out = []
    thread = threading.Thread(target=lambda: out.append(call()))
    thread.start()
    thread.join()
    print(name, out[0], flush=True)

in_thread("chunks", store.count_chunks)
in_thread("changes", lambda: store.changes.collection.count() > 0)
in_thread("reopened", lambda: sorted(Store.from_settings(settings).records())[:2])
in_thread("rewritten", lambda: write("full", 200) or store.count_chunks())
'''


def test_the_same_process_keeps_working_after_a_full_disk(small_disk: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SAME_PROCESS, str(small_disk), str(200 * 1024)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "failed: " + DISK_FULL.format(small_disk / "data").removeprefix("error: "),
        "chunks 5",
        "changes True",
        "reopened ['before-0', 'before-1']",
        "rewritten 205",
    ]
