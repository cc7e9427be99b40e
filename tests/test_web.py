import socket
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ingest.loaders import load_sources
from ingest.web import USER_AGENT, is_url, load_url
from newsdesk.settings import Settings


def page(title_meta: str, body: str, extra_head: str = "") -> bytes:
    head = f'<meta property="og:title" content="{title_meta}">' if title_meta else ""
    return (
        f"<!DOCTYPE html><html><head>{head}{extra_head}</head><body>"
        f"<nav><a href='/'>Home</a> | <a href='/sport'>Sport</a></nav><article>{body}</article>"
        "<footer>All rights reserved</footer></body></html>"
    ).encode()


ARTICLE = page(
    "Dock strike ends in Karachi",
    "<p>KARACHI (Reuters) - A three-day dock strike ended on Wednesday after port officials and workers "
    "agreed on a new wage scale, officials said.</p>"
    "<p>Ships waiting outside the harbour started unloading in the afternoon.</p>",
    '<meta property="og:site_name" content="Local Wire">'
    '<meta property="article:published_time" content="2024-10-09T10:00:00Z">',
)
# Entry pages carry no metadata of their own: the feed entry fills title, date and author.
ENTRY_ONE = page("", "<p>Flood waters receded in Sukkur on Monday, allowing families to return home.</p>"
                     "<p>Relief camps will stay open for another week, the district administration said.</p>")
ENTRY_TWO = page("Page title wins", "<p>By Sara Khan</p><p>The provincial assembly passed the budget "
                                    "after a long debate, members said.</p>")
ATOM_ONE = page("", "<p>Wheat prices fell for a third week as the new harvest reached markets.</p>")
ATOM_TWO = page("", "<p>The central bank kept its policy rate unchanged, citing easing inflation.</p>")


def rss(base: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Local Wire RSS</title><link>{base}/</link><description>d</description>
<item><title>Floods recede in Sukkur</title><link>{base}/news/one.html</link>
  <pubDate>Mon, 07 Oct 2024 09:00:00 GMT</pubDate><author>desk@example.org (Ali Raza)</author></item>
<item><title>Budget passed</title><link>{base}/news/two.html</link>
  <pubDate>Tue, 08 Oct 2024 09:00:00 GMT</pubDate></item>
<item><title>Gone</title><link>{base}/news/gone.html</link></item>
<item><title>No link at all</title></item>
</channel></rss>""".encode()


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Markets Atom</title><id>urn:x</id>
<updated>2024-10-09T00:00:00Z</updated>
<entry><title>Wheat prices fall</title><link href="/markets/wheat.html"/><id>urn:1</id>
  <updated>2024-10-05T12:00:00Z</updated><author><name>Nadia Iqbal</name></author></entry>
<entry><title>Rates on hold</title><link href="/markets/rates.html"/><id>urn:2</id>
  <published>2024-10-06T12:00:00Z</published><updated>2024-10-07T12:00:00Z</updated></entry>
</feed>"""


class Handler(BaseHTTPRequestHandler):
    routes: dict = {}
    requests: list = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        type(self).requests.append((self.path, self.headers.get("User-Agent")))
        route = self.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        status, headers, body, delay = route
        if delay:
            time.sleep(delay)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers and not headers.get("X-No-Length"):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    html = {"Content-Type": "text/html; charset=utf-8"}
    Handler.routes = {
        "/article.html": (200, html, ARTICLE, 0),
        "/moved": (302, {"Location": "/article.html"}, b"", 0),
        "/news/one.html": (200, html, ENTRY_ONE, 0),
        "/news/two.html": (200, html, ENTRY_TWO, 0),
        "/markets/wheat.html": (200, html, ATOM_ONE, 0),
        "/markets/rates.html": (200, html, ATOM_TWO, 0),
        "/feed.rss": (200, {"Content-Type": "application/rss+xml"}, rss(base), 0),
        "/feed.atom": (200, {"Content-Type": "application/atom+xml"}, ATOM, 0),
        "/feed-untyped": (200, {"Content-Type": "application/octet-stream"}, rss(base), 0),
        "/big.html": (200, html, b"<p>" + b"x" * 5000 + b"</p>", 0),
        "/big-stream.html": (200, {**html, "X-No-Length": "1"}, b"<p>" + b"y" * 5000 + b"</p>", 0),
        "/slow.html": (200, html, ARTICLE, 3),
        "/latin.html": (200, {"Content-Type": "text/html"},
                        "<html><body><p>Le café de la gare a rouvert ses portes mardi matin après "
                        "des travaux, a déclaré la mairie à la presse locale.</p></body></html>"
                        .encode("cp1252"), 0),
        "/image.bin": (200, {"Content-Type": "application/octet-stream"}, b"\x89PNG\r\n\x1a\n\x00\x00", 0),
        "/notes.txt": (200, {"Content-Type": "text/plain; charset=utf-8"},
                       b"Plain notes from the desk.\r\n", 0),
    }
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield base
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def clear_requests():
    Handler.requests.clear()


@pytest.fixture
def settings(tmp_path):
    # the test server is on 127.0.0.1, which the fetch policy refuses unless allowed explicitly
    return Settings(data_dir=tmp_path, fetch_timeout=2.0, max_file_bytes=4000, fetch_allow=["127.0.0.1"])


def errors(result) -> dict[str, str]:
    return {f.source: f.error for f in result.failures}


def test_is_url():
    assert is_url("https://example.org/a")
    assert is_url("HTTP://example.org")
    assert not is_url("ftp://example.org/a")
    assert not is_url("data/sample")
    assert not is_url("http://")


def test_html_article(server, settings):
    url = f"{server}/article.html"
    result = load_sources([url], settings)
    (article,) = result.articles
    assert article.id == url and article.url == url and article.origin == url
    assert article.title == "Dock strike ends in Karachi"
    assert article.source == "Local Wire"
    assert article.published == date(2024, 10, 9)
    assert "three-day dock strike ended on Wednesday" in article.text
    assert "All rights reserved" not in article.text
    assert result.roots == [url]
    assert Handler.requests == [("/article.html", USER_AGENT)]


def test_redirect_is_followed(server, settings):
    result = load_sources([f"{server}/moved"], settings)
    (article,) = result.articles
    assert article.id == f"{server}/moved"
    assert article.title == "Dock strike ends in Karachi"


def test_rss_feed_entries(server, settings):
    feed_url = f"{server}/feed.rss"
    seen: list[str] = []
    result = load_sources([feed_url], settings, progress=seen.append)

    articles = {a.id: a for a in result.articles}
    one, two = f"{server}/news/one.html", f"{server}/news/two.html"
    assert sorted(articles) == [one, two]
    assert articles[one].title == "Floods recede in Sukkur"  # from the entry
    assert articles[one].published == date(2024, 10, 7)
    assert articles[one].author == "desk@example.org (Ali Raza)"
    assert articles[one].source == "Local Wire RSS"
    assert articles[one].origin == one
    assert "Flood waters receded in Sukkur" in articles[one].text
    assert articles[two].title == "Page title wins"  # the page's own metadata comes first
    assert articles[two].author == "Sara Khan"  # byline in the page text
    assert articles[two].published == date(2024, 10, 8)
    assert errors(result) == {
        f"{server}/news/gone.html": "HTTP 404 Not Found",
        f"{feed_url}#entry4": "feed entry has no http(s) link",
    }
    assert result.roots == [feed_url]
    assert seen == [feed_url, one, two, f"{server}/news/gone.html"]


def test_atom_feed_relative_links(server, settings):
    result = load_sources([f"{server}/feed.atom"], settings)
    articles = {a.id: a for a in result.articles}
    wheat, rates = f"{server}/markets/wheat.html", f"{server}/markets/rates.html"
    assert sorted(articles) == [rates, wheat]
    assert articles[wheat].title == "Wheat prices fall"
    assert articles[wheat].author == "Nadia Iqbal"
    assert articles[wheat].published == date(2024, 10, 5)
    assert articles[rates].published == date(2024, 10, 6)  # published preferred over updated
    assert "central bank kept its policy rate" in articles[rates].text
    assert result.failures == []


def test_feed_detected_by_content(server, settings):
    result = load_url(f"{server}/feed-untyped", settings)
    assert len(result.articles) == 2
    assert result.ok


def test_http_404(server, settings):
    url = f"{server}/nothing-here"
    result = load_sources([url], settings)
    assert result.articles == []
    assert errors(result) == {url: "HTTP 404 Not Found"}
    assert result.roots == []


def test_oversized_downloads(server, settings):
    urls = [f"{server}/big.html", f"{server}/big-stream.html"]
    result = load_sources(urls, settings)
    assert result.articles == []
    assert errors(result) == {url: "download exceeds 4000 bytes" for url in urls}


def test_slow_response_times_out(server, tmp_path):
    settings = Settings(data_dir=tmp_path, fetch_timeout=0.3, fetch_allow=["127.0.0.1"])
    url = f"{server}/slow.html"
    result = load_sources([url, f"{server}/article.html"], settings)
    assert errors(result) == {url: "timed out after 0.3 s"}
    assert [a.id for a in result.articles] == [f"{server}/article.html"]


def test_connection_refused(settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x"
    result = load_sources([url], settings)
    (failure,) = result.failures
    assert failure.source == url
    assert failure.error.startswith("cannot connect:")
    assert "\n" not in failure.error


def test_undetected_charset_warns(server, settings):
    url = f"{server}/latin.html"
    result = load_sources([url], settings)
    (article,) = result.articles
    assert "Le café de la gare a rouvert" in article.text
    assert result.warnings == [f"{url}: not valid UTF-8, decoded as cp1252"]


def test_binary_and_plain_text(server, settings):
    result = load_sources([f"{server}/image.bin", f"{server}/notes.txt"], settings)
    assert errors(result) == {
        f"{server}/image.bin": "not an HTML page or RSS/Atom feed (content type application/octet-stream)"
    }
    (article,) = result.articles
    assert article.text == "Plain notes from the desk."
    assert article.id == f"{server}/notes.txt"


def test_mixed_files_and_urls(server, settings, tmp_path):
    (tmp_path / "local.txt").write_text("A local story.", encoding="utf-8")
    result = load_sources([str(tmp_path / "local.txt"), f"{server}/article.html"], settings)
    assert [a.id for a in result.articles] == ["local.txt", f"{server}/article.html"]
    assert result.roots == [str(tmp_path / "local.txt"), f"{server}/article.html"]
