"""Issue 13: URL fetching refuses non-public addresses (every resolved address, every redirect hop) unless
allowed on purpose, refuses other schemes, and bounds a feed of hanging links by a deadline."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ingest.loaders import load_sources
from ingest.web import checked_address
from newsdesk.errors import IngestError
from newsdesk.settings import Settings

PAGE = (b"<html><head><title>Internal</title></head><body><p>The admin password is hunter2, said the "
        b"internal wiki page on Monday.</p></body></html>")


@contextmanager
def serve(host: str = "127.0.0.1", redirect_to: str | None = None) -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server: /page (HTML), /hang (never answers in time), /feed (RSS of /hang links),
    /go (redirect to ``redirect_to``). Yields its base URL and the paths it was asked for."""
    hits: list[str] = []
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            if self.path.startswith("/hang"):
                stop.wait(10)
                return
            if self.path == "/go" and redirect_to:
                self.send_response(302)
                self.send_header("Location", redirect_to)
                self.end_headers()
                return
            if self.path == "/feed":
                items = "".join(f"<item><title>t{i}</title><link>{base}/hang{i}</link></item>" for i in range(10))
                body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>f</title>{items}</channel></rss>'
                self._send(body.encode(), "application/rss+xml")
                return
            self._send(PAGE, "text/html; charset=utf-8")

        def _send(self, body: bytes, ctype: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer((host, 0), Handler)
    httpd.daemon_threads = True
    base = f"http://{host}:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, hits
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()


def settings(tmp_path, **overrides) -> Settings:
    return Settings(data_dir=tmp_path, **{"fetch_timeout": 2.0, **overrides})


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/page",
        "http://localhost:{port}/page",
        "http://2130706433:{port}/page",  # 127.0.0.1 as one decimal number
        "http://0x7f000001:{port}/page",
        "http://127.1:{port}/page",
        "http://[::1]:{port}/page",
        "http://[::ffff:127.0.0.1]:{port}/page",
    ],
)
def test_loopback_in_any_spelling_is_refused_without_connecting(template: str, tmp_path) -> None:
    with serve() as (base, hits):
        url = template.format(port=base.rsplit(":", 1)[1])
        result = load_sources([url], settings(tmp_path))
    assert not result.articles and hits == []
    assert len(result.failures) == 1
    assert result.failures[0].error.startswith("refused: ")
    assert "not a public address" in result.failures[0].error and "NEWSDESK_FETCH_ALLOW" in result.failures[0].error


@pytest.mark.parametrize(
    ("host", "address"),
    [("169.254.169.254", "169.254.169.254"), ("10.0.0.1", "10.0.0.1"), ("192.168.1.1", "192.168.1.1"),
     ("172.16.0.1", "172.16.0.1"), ("100.64.0.1", "100.64.0.1"), ("0.0.0.0", "0.0.0.0"),
     ("[fe80::1]", "fe80::1"), ("[fc00::1]", "fc00::1"), ("224.0.0.1", "224.0.0.1")],
)
def test_private_link_local_and_reserved_addresses_are_refused(host: str, address: str, tmp_path) -> None:
    result = load_sources([f"http://{host}/latest/meta-data/"], settings(tmp_path))
    assert not result.articles
    assert result.failures[0].error.startswith(f"refused: {host.strip('[]')} is {address}, not a public")


def test_redirect_into_a_refused_address_is_not_followed(tmp_path) -> None:
    with serve("127.0.0.2") as (inner, inner_hits):
        with serve("127.0.0.1", redirect_to=f"{inner}/page") as (outer, outer_hits):
            result = load_sources([f"{outer}/go"], settings(tmp_path, fetch_allow=["127.0.0.1"]))
    assert outer_hits == ["/go"] and inner_hits == []
    assert not result.articles
    assert result.failures[0].error.startswith("refused: 127.0.0.2 is 127.0.0.2")


def test_redirect_to_file_scheme_is_refused(tmp_path) -> None:
    with serve(redirect_to="file:///etc/passwd") as (base, _):
        result = load_sources([f"{base}/go"], settings(tmp_path, fetch_allow=["127.0.0.1"]))
    assert not result.articles and "root:" not in str(result)
    assert result.failures and result.failures[0].error.startswith("invalid URL")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1:70/"])
def test_other_schemes_are_refused(url: str, tmp_path) -> None:
    result = load_sources([url], settings(tmp_path))
    assert not result.articles
    assert "unsupported URL scheme" in result.failures[0].error


@pytest.mark.parametrize("allow", [["127.0.0.1"], ["127.0.0.0/8"], ["localhost"]])
def test_allow_list_admits_an_intranet_host_on_purpose(allow: list[str], tmp_path) -> None:
    with serve() as (base, hits):
        url = base.replace("127.0.0.1", "localhost") if allow == ["localhost"] else base
        result = load_sources([f"{url}/page"], settings(tmp_path, fetch_allow=allow))
    assert [a.title for a in result.articles] == ["Internal"], result.failures
    assert hits == ["/page"]


def test_allow_list_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("NEWSDESK_FETCH_ALLOW", "10.0.0.0/8, wiki.intranet")
    assert Settings().fetch_allow == ["10.0.0.0/8", "wiki.intranet"]


def test_unresolvable_host_is_one_line() -> None:
    with pytest.raises(IngestError, match="cannot resolve host"):
        checked_address("no-such-host.invalid", 80)


def test_feed_of_hanging_links_stops_at_the_feed_deadline(tmp_path) -> None:
    with serve() as (base, hits):
        result = load_sources([f"{base}/feed"], settings(tmp_path, fetch_timeout=1.0, feed_timeout=1.5,
                                                         fetch_allow=["127.0.0.1"]))
    errors = [f.error for f in result.failures]
    assert len(errors) == 10
    skipped = [e for e in errors if "feed's deadline of 1.5 s passed (NEWSDESK_FEED_TIMEOUT)" in e]
    assert len(skipped) >= 8, errors  # at most the first two links were waited for
    assert len([h for h in hits if h.startswith("/hang")]) <= 2


def test_run_deadline_skips_the_remaining_urls(tmp_path) -> None:
    with serve() as (base, _):
        urls = [f"{base}/hang{i}" for i in range(4)] + [f"{base}/page"]
        result = load_sources(urls, settings(tmp_path, fetch_timeout=1.0, fetch_run_timeout=1.5,
                                             fetch_allow=["127.0.0.1"]))
    errors = {f.source.rsplit("/", 1)[1]: f.error for f in result.failures}
    assert "run's fetch deadline of 1.5 s passed (NEWSDESK_FETCH_RUN_TIMEOUT)" in errors["page"]
    assert sum("run's fetch deadline" in e for e in errors.values()) >= 3
