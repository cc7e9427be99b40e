"""Issue 13: a Chroma server killed while `newsdesk ingest` writes to it; the rerun after a restart ends
where a clean ingest does. A real `chroma run` server, killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from newsdesk.settings import Settings
from newsdesk.store import Store
from tests.chroma_server import chroma_process, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = "/api/v2/tenants/default_tenant/databases/default_database/collections"


def corpus(root: Path, count: int) -> Path:
    """``count`` one-chunk articles: two write batches (256 + the rest)."""
    root.mkdir()
    for i in range(count):
        body = " ".join(f"Inspectors visited pier {i} on day {d} and counted {i * 7 + d} cranes." for d in range(2))
        (root / f"pier-{i:03d}.txt").write_text(f"Pier {i} report\n\n{body}\n", encoding="utf-8")
    return root


def ingest(url: str, collection: str, source: Path, data: Path, *options: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSDESK_CHROMA_URL": url, "NEWSDESK_COLLECTION": collection}
    command = [sys.executable, "-c", "from newsdesk.app.cli import main; main()", "ingest", str(source),
               "--data-dir", str(data), *options]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def count(url: str, collection: str) -> int:
    """Entries in ``collection`` on the server (-1 before it exists)."""
    got = httpx.get(f"{url}{COLLECTIONS}/{collection}", timeout=2)
    if got.status_code != 200:
        return -1
    return int(httpx.get(f"{url}{COLLECTIONS}/{got.json()['id']}/count", timeout=2).text)


def state(url: str, collection: str) -> tuple[dict, int]:
    store = Store.from_settings(Settings(chroma_url=url, collection=collection), create=False)
    records = {r.id: (r.chunks, r.fingerprint, r.chunking, r.state) for r in store.records().values()}
    return records, store.count_chunks()


def test_server_killed_mid_ingest_then_rerun_matches_a_clean_ingest(tmp_path: Path) -> None:
    source = corpus(tmp_path / "corpus", 260)
    db, data, port = tmp_path / "db", tmp_path / "data", free_port()
    with chroma_process(db, port=port) as (url, server):
        run = ingest(url, "killed", source, data)
        try:
            # the first write batch marks its records pending first: kill the server once some are there
            deadline = time.monotonic() + 120
            while count(url, "killed-articles") <= 0:
                assert run.poll() is None, "the ingest ended before it wrote anything"
                assert time.monotonic() < deadline, "the ingest wrote nothing within 120 s"
                time.sleep(0.02)
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
            out, err = run.communicate(timeout=120)
        finally:
            run.kill()
    assert run.returncode == 1, out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: lost the connection to the Chroma server at {url} (")
    assert lines[0].endswith("nothing stored earlier was lost: start the server again and rerun the command "
                             "(an interrupted ingest is finished by the next one)")

    with chroma_process(db, port=port) as (again, _):
        assert again == url
        rerun = ingest(url, "killed", source, data, "--json")
        rerun_out, rerun_err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, rerun_err
        assert json.loads(rerun_out)["updated"], "the records left pending were finished"
        clean = ingest(url, "clean", source, data)
        assert clean.communicate(timeout=120) and clean.returncode == 0
        killed_then_rerun, clean_state = state(url, "killed"), state(url, "clean")
    assert len(killed_then_rerun[0]) == 260
    assert killed_then_rerun == clean_state
