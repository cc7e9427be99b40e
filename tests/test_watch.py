"""`newsdesk watch`: scheduled incremental re-ingest of a local feed whose entries appear, change and vanish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ingest.watch import RunSummary, Watcher
from newsdesk.settings import parse_every

ROOT = Path(__file__).resolve().parents[1]


def page(body: str) -> bytes:
    return (f"<!DOCTYPE html><html><head></head><body><article><p>{body}</p></article></body></html>").encode()


STORIES = {
    "harbour": "The harbour authority in Kestwick opened a new ferry terminal on Monday, doubling the number of "
               "daily crossings to the islands, officials said.",
    "harbour-v2": "The harbour authority in Kestwick opened a new ferry terminal on Monday, tripling the number "
                  "of daily crossings to the islands, officials said after revising their figures.",
    "mill": "A fire destroyed the old textile mill in Lower Faddon overnight, and firefighters kept it from "
            "spreading to nearby homes, the fire service said on Tuesday.",
    "bridge": "Engineers reopened the Sallowdene bridge on Wednesday after repairs to storm damage took three "
              "weeks longer than planned, the county council said.",
}


class Feed(BaseHTTPRequestHandler):
    """A feed whose entries (slug -> story key) the test changes between runs; pages can be slowed down."""

    entries: dict[str, str] = {}
    delay = 0.0
    broken = False

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path == "/feed.rss" and not type(self).broken:
            items = "".join(f"<item><title>{slug}</title><link>{base}/news/{slug}.html</link>"
                            "<pubDate>Mon, 04 Mar 2024 09:00:00 GMT</pubDate></item>"
                            for slug in type(self).entries)
            body = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Valley Wire</title>'
                    f"<link>{base}/</link><description>d</description>{items}</channel></rss>").encode()
            kind = "application/rss+xml"
        elif self.path.startswith("/news/") and self.path[6:-5] in type(self).entries:
            time.sleep(type(self).delay)
            body, kind = page(STORIES[type(self).entries[self.path[6:-5]]]), "text/html; charset=utf-8"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def feed():
    Feed.entries, Feed.delay, Feed.broken = {}, 0.0, False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/feed.rss"
    httpd.shutdown()
    httpd.server_close()


def test_parse_every() -> None:
    assert parse_every("15m") == 900 and parse_every("30s") == 30 and parse_every("2h") == 7200
    assert parse_every("45") == 45
    for bad in ("", "0m", "soon", "-5m"):
        with pytest.raises(ValueError):
            parse_every(bad)


def _texts(store) -> dict[str, str]:
    return {i: " ".join(t.split()) for i, t in store.article_texts(list(store.records())).items()}


@pytest.mark.slow
def test_entries_appear_change_and_vanish_across_runs_with_backoff(feed: str, settings, embedder) -> None:
    from newsdesk.store import Store

    settings = settings.model_copy(update={"fetch_allow": ["127.0.0.1"]})  # the feed is a local test server
    store = Store.from_settings(settings)
    clock = [1000.0]
    summaries: list[RunSummary] = []
    watcher = Watcher([feed], settings, store, embedder, every=60, prune=True, max_backoff=300,
                      clock=lambda: clock[0], on_run=summaries.append)
    base = feed.rsplit("/", 1)[0]

    Feed.entries = {"harbour": "harbour", "mill": "mill"}
    first = watcher.run_once()
    assert sorted(first.added) == [f"{base}/news/harbour.html", f"{base}/news/mill.html"]

    Feed.entries = {"harbour": "harbour-v2", "mill": "mill", "bridge": "bridge"}  # one changes, one appears
    clock[0] += 60
    second = watcher.run_once()
    assert second.added == [f"{base}/news/bridge.html"] and second.updated == [f"{base}/news/harbour.html"]
    assert "tripling" in _texts(store)[f"{base}/news/harbour.html"]

    Feed.entries = {"harbour": "harbour-v2", "bridge": "bridge"}  # one vanishes
    clock[0] += 60
    third = watcher.run_once()
    assert third.removed == [f"{base}/news/mill.html"]
    assert sorted(store.records()) == [f"{base}/news/bridge.html", f"{base}/news/harbour.html"]

    Feed.broken = True  # the feed fails: backoff doubles from the interval, the store is left alone
    clock[0] += 60
    assert list(watcher.run_once().failed) == [feed]
    clock[0] += 30
    assert watcher.run_once().backing_off == [feed]  # retry after 60 s
    clock[0] += 30
    assert list(watcher.run_once().failed) == [feed]  # second failure: next retry after 120 s
    clock[0] += 90
    assert watcher.run_once().backing_off == [feed]
    Feed.broken = False
    clock[0] += 30
    recovered = watcher.run_once()
    assert not recovered.failed and recovered.unchanged == 2 and not recovered.removed
    assert len(summaries) == 8 and all("run " in s.line() for s in summaries)


def _records(data: Path) -> dict[str, tuple[str, str]]:
    from newsdesk.settings import Settings
    from newsdesk.store import Store

    store = Store.from_settings(Settings(data_dir=data))
    return {i: (r.fingerprint, r.state) for i, r in store.records().items()}


def _watch(data: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSDESK_FETCH_TIMEOUT": "10",
           "NEWSDESK_FETCH_ALLOW": "127.0.0.1"}  # the feed is a local test server
    return subprocess.Popen([sys.executable, "-c", "from newsdesk.app.cli import main; main()", "watch", *args,
                             "--data-dir", str(data)], env=env, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigterm_during_a_run_then_restart_equals_an_uninterrupted_run(feed: str, tmp_path: Path) -> None:
    Feed.entries = {"harbour": "harbour", "mill": "mill", "bridge": "bridge"}
    clean = _watch(tmp_path / "clean", feed, "--once")
    assert clean.wait(timeout=300) == 0, clean.stderr.read()
    expected = _records(tmp_path / "clean")
    assert len(expected) == 3

    Feed.delay = 1.5  # each page is slow: the signal lands while the run is fetching
    proc = _watch(tmp_path / "killed", feed, "--every", "1h")
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "watching 1 source" in line:
            break
    time.sleep(2.0)  # inside run 1, fetching the entry pages
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, rest
    assert "SIGTERM received" in rest and "watch stopped after 1 run(s)" in rest
    assert all(state == "ready" for _, state in _records(tmp_path / "killed").values())  # nothing half-written

    Feed.delay = 0.0
    again = _watch(tmp_path / "killed", feed, "--once")
    assert again.wait(timeout=300) == 0, again.stderr.read()
    assert _records(tmp_path / "killed") == expected


@pytest.mark.slow
def test_once_exits_1_when_a_source_fails_and_still_ingests_the_rest(feed: str, tmp_path: Path) -> None:
    Feed.entries = {"mill": "mill"}
    proc = _watch(tmp_path / "data", feed, str(tmp_path / "missing-dir"), "--once")
    rest = proc.stderr.read()
    assert proc.wait(timeout=300) == 1, rest
    assert "failed 1" in rest and "missing-dir" in rest
    assert len(_records(tmp_path / "data")) == 1


def test_watch_rejects_a_bad_interval(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from newsdesk.app import cli

    result = CliRunner().invoke(cli.app, ["watch", str(tmp_path), "--every", "often", "--data-dir",
                                          str(tmp_path / "d")])
    assert result.exit_code == 2 and "--every wants an interval" in result.stderr
