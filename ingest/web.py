"""Articles from the web: HTML pages and RSS/Atom feeds fetched over http(s), and HTML extraction.

Only the URLs the user gave (and, for a feed, the pages its entries link to) are fetched; nothing else
is contacted. ``extract_html`` is shared with the local ``.html`` loader.

Address policy: a page, a feed entry or a redirect may point anywhere, and whatever is fetched becomes
readable through answers. So every connection (each redirect hop included) resolves the host itself and
refuses it unless every address it resolves to is public: loopback, private, link-local (cloud metadata
at 169.254.169.254), shared, reserved and multicast addresses, in any spelling (``2130706433``,
``0x7f.1``, ``[::1]``, ``::ffff:127.0.0.1``), are refused; the checked address is the one connected to,
so a second DNS answer cannot differ. ``NEWSDESK_FETCH_ALLOW`` lists hosts or networks an intranet
deployment fetches from on purpose. Only http and https are fetched; environment proxies are not used,
since a proxy would resolve hosts out of the policy's sight.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from html import unescape
from html.parser import HTMLParser
from urllib.parse import urlsplit

import feedparser
import httpcore
import httpx
import trafilatura

from ingest.metadata import decode_bytes, fill_missing, normalise_text, parse_date
from newsdesk.errors import IngestError
from newsdesk.models import Article, IngestFailure
from newsdesk.settings import Settings

USER_AGENT = "newsdesk/0.1"

# Meta tags in order of preference for each field (names are compared lower-cased).
_TITLE_META = ("og:title", "twitter:title", "dc.title", "headline")
_AUTHOR_META = ("author", "article:author", "dc.creator", "parsely-author", "sailthru.author", "byl")
_DATE_META = ("article:published_time", "og:published_time", "published_time", "datepublished",
              "pubdate", "publishdate", "dc.date.issued", "dc.date", "date", "parsely-pub-date",
              "sailthru.date")
_SOURCE_META = ("og:site_name", "application-name")

_BLOCK_TAGS = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
               "section", "article", "header", "footer", "blockquote", "pre", "hr", "figure", "figcaption",
               "main", "aside", "nav", "dd", "dt", "dl", "title"}
_SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "head"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


class BlockedAddress(IngestError):
    """A URL (or a redirect) leads to an address the fetch policy refuses."""


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None) or getattr(address, "sixtofour", None)
    if mapped is not None:
        return _is_public(mapped)
    return address.is_global and not address.is_multicast


def _allowed(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow: Iterable[str]) -> bool:
    for entry in allow:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == host.lower().rstrip("."):
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def checked_address(host: str, port: int, allow: Iterable[str] = ()) -> str:
    """Resolve ``host`` and return the address to connect to, if every address it has is allowed.

    Raises:
        BlockedAddress: One of its addresses is not public and not in ``allow``.
        IngestError: The host does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise IngestError(f"cannot resolve host {host!r}: {getattr(error, 'strerror', None) or error}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    allow = list(allow)
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not _is_public(address) and not _allowed(host, address, allow):
            raise BlockedAddress(
                f"refused: {host} is {address}, not a public address (loopback, private, link-local or "
                "reserved); add it to NEWSDESK_FETCH_ALLOW to ingest from it on purpose"
            )
    if not addresses:
        raise IngestError(f"cannot resolve host {host!r}")
    return addresses[0]


class _CheckedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to addresses :func:`checked_address` accepts."""

    def __init__(self, allow: Iterable[str]) -> None:
        self.allow = list(allow)

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: D102
                    local_address: str | None = None, socket_options=None) -> httpcore.NetworkStream:
        address = checked_address(host, port, self.allow)
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


def make_client(settings: Settings) -> httpx.Client:
    """The HTTP client every fetch uses: the address policy on every connection, redirects followed."""
    transport = httpx.HTTPTransport()
    transport._pool._network_backend = _CheckedBackend(settings.fetch_allow)  # httpx has no public hook
    return httpx.Client(
        transport=transport,
        follow_redirects=True,
        timeout=httpx.Timeout(settings.fetch_timeout),
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    )


@dataclass
class HtmlExtract:
    """Main text and metadata read from an HTML document."""

    text: str
    title: str = ""
    author: str = ""
    source: str = ""
    published: date | None = None


@dataclass
class WebResult:
    """What fetching one URL produced (a feed gives several articles)."""

    articles: list[Article] = field(default_factory=list)
    failures: list[IngestFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ok: bool = False  # the URL itself was fetched and understood (entries may still have failed)


@dataclass
class _Download:
    data: bytes
    content_type: str
    charset: str | None
    url: str


def is_url(value: str) -> bool:
    """Whether ``value`` is an http(s) URL with a host."""
    parts = urlsplit(value.strip())
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def extract_html(html: str) -> HtmlExtract:
    """Extract an article's main text and meta-tag metadata from HTML.

    The text comes from trafilatura; when it finds nothing (tiny or broken pages) a plain extraction of
    all visible text is used instead. Title, author, date and site name come from meta tags (og:title,
    article:published_time, author, og:site_name, ...) and ``<title>``.

    Args:
        html: The decoded document.

    Returns:
        The normalised text and whatever metadata the tags provide.

    Raises:
        IngestError: No text could be extracted at all.
    """
    scan = _HtmlScanner()
    try:
        scan.feed(html)
        scan.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; keep what was scanned before any error
        pass
    try:
        text = trafilatura.extract(html, include_comments=False, deduplicate=False) or ""
    except Exception:  # noqa: BLE001 - trafilatura can fail on pathological markup; fall back below
        text = ""
    text = normalise_text(text)
    if not text:
        text = normalise_text(scan.visible_text())
    if not text:  # tag soup that even html.parser loses (an unclosed <script>, <head> or <svg>)
        text = normalise_text(tag_soup_text(html))
    if not text:
        raise IngestError("no article text found in the HTML")
    meta = scan.meta
    author = _first(meta, _AUTHOR_META, skip_urls=True)
    if author.lower().startswith("by "):
        author = author[3:].strip()
    published = None
    for key in _DATE_META:
        if meta.get(key):
            published = parse_date(meta[key])
            if published:
                break
    return HtmlExtract(
        text=text,
        title=_first(meta, _TITLE_META) or " ".join(scan.title.split()),
        author=author,
        source=_first(meta, _SOURCE_META),
        published=published,
    )


_SOUP_OPEN = re.compile(r"<(script|style|noscript|template|svg)\b", re.IGNORECASE)
_SOUP_BREAK = re.compile(r"<(?:br|p|div|li|tr|h[1-6]|/p|/div|/li|/tr|/h[1-6])\b[^>]*>", re.IGNORECASE)
_SOUP_TAG = re.compile(r"<[^>]*>")


def tag_soup_text(html: str) -> str:
    """Visible text of markup too broken for a parser: closed script/style blocks and all tags removed.

    Linear in the input: a block whose closing tag is missing loses only its opening tag, and once a
    closing tag has not been found it is not searched for again.
    """
    lower = html.lower()
    parts: list[str] = []
    cursor = 0
    unclosed: set[str] = set()
    for match in _SOUP_OPEN.finditer(html):
        if match.start() < cursor:
            continue
        tag = match.group(1).lower()
        close = -1 if tag in unclosed else lower.find(f"</{tag}", match.end())
        if close < 0:
            unclosed.add(tag)
            continue
        parts.append(html[cursor:match.start()])
        end = lower.find(">", close)
        cursor = len(html) if end < 0 else end + 1
    parts.append(html[cursor:])
    text = _SOUP_TAG.sub(" ", _SOUP_BREAK.sub("\n", " ".join(parts)))
    lines = (" ".join(line.split()) for line in unescape(text).split("\n"))
    return "\n".join(line for line in lines if line)


def decode_html(data: bytes, declared: str | None = None) -> tuple[str, str | None]:
    """Decode HTML bytes, honouring a ``<meta charset>`` when no charset was declared by the server.

    Args:
        data: The raw document.
        declared: The charset from the HTTP Content-Type header, if any.

    Returns:
        The text and the guessed encoding (None unless it had to be detected).

    Raises:
        IngestError: The data is binary or undecodable.
    """
    if not declared:
        match = _META_CHARSET.search(data[:4096])
        if match:
            declared = match.group(1).decode("ascii", "replace")
    return decode_bytes(data, declared)


def load_url(
    url: str,
    settings: Settings,
    *,
    progress: Callable[[str], None] | None = None,
    client: httpx.Client | None = None,
    run_deadline: float | None = None,
) -> WebResult:
    """Fetch a URL and turn it into articles: one for an HTML page, one per entry for an RSS/Atom feed.

    Never raises for a bad URL or entry: each problem becomes a failure naming that URL.

    Args:
        url: An http(s) URL as the user typed it; it becomes the article id, ``url`` and ``origin``.
        settings: Supplies ``fetch_timeout`` and ``max_file_bytes``.
        progress: Called with each URL just before it is fetched (the feed, then each entry).
        client: An httpx client to reuse; by default one from :func:`make_client` is created and closed.
        run_deadline: ``time.monotonic()`` value after which nothing more is fetched (the whole run's
            ``fetch_run_timeout``); a feed also stops at ``feed_timeout`` after it was started.

    Returns:
        Articles, failures and warnings; ``ok`` tells whether the URL itself was loaded.
    """
    result = WebResult()
    own_client = client is None
    if client is None:
        client = make_client(settings)
    feed_deadline = time.monotonic() + settings.feed_timeout
    deadline = feed_deadline if run_deadline is None else min(run_deadline, feed_deadline)
    try:
        if progress:
            progress(url)
        try:
            if time.monotonic() >= deadline:
                raise IngestError(_deadline_reason(settings, run_deadline, feed_deadline))
            download = _fetch(client, url, settings, deadline)
            feed = _parse_feed(download)
            if feed is None:
                result.articles.append(_page_article(url, download, result.warnings))
            else:
                _load_feed(url, feed, settings, client, result, progress,
                           (deadline, _deadline_reason(settings, run_deadline, feed_deadline)))
            result.ok = True
        except Exception as error:  # noqa: BLE001 - one bad URL must never stop the run
            result.failures.append(IngestFailure(source=url, error=failure_reason(error)))
    finally:
        if own_client:
            client.close()
    return result


def failure_reason(error: BaseException) -> str:
    """The one-line reason recorded for a failed input.

    An IngestError carries its own message; anything else is a bug in a loader or a library, reported
    with its type so the input is skipped rather than the whole run aborted.
    """
    if isinstance(error, IngestError):
        return str(error)
    return f"unexpected error ({type(error).__name__}: {_one_line(error)}); please report this"


def _deadline_reason(settings: Settings, run_deadline: float | None, feed_deadline: float) -> str:
    if run_deadline is not None and run_deadline <= feed_deadline:
        return (f"skipped: the run's fetch deadline of {settings.fetch_run_timeout:g} s passed "
                "(NEWSDESK_FETCH_RUN_TIMEOUT)")
    return f"skipped: the feed's deadline of {settings.feed_timeout:g} s passed (NEWSDESK_FEED_TIMEOUT)"


def _fetch(client: httpx.Client, url: str, settings: Settings, until: float | None = None) -> _Download:
    """GET ``url`` with a size cap and an overall deadline; errors become one-line IngestErrors.

    ``until`` (a ``time.monotonic()`` value) shortens the deadline for a feed or run that is nearly over.
    """
    limit = settings.max_file_bytes
    allowed = settings.fetch_timeout if until is None else max(0.05, min(settings.fetch_timeout,
                                                                        until - time.monotonic()))
    deadline = time.monotonic() + allowed
    try:
        with client.stream("GET", url, timeout=httpx.Timeout(allowed)) as response:
            if response.is_error:
                raise IngestError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise IngestError(f"download exceeds {limit} bytes")
            buffer = bytearray()
            for chunk in response.iter_bytes():
                buffer.extend(chunk)
                if len(buffer) > limit:
                    raise IngestError(f"download exceeds {limit} bytes")
                if time.monotonic() > deadline:
                    raise IngestError(f"timed out after {allowed:g} s")
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            return _Download(bytes(buffer), content_type, response.charset_encoding, str(response.url))
    except httpx.TimeoutException:
        raise IngestError(f"timed out after {allowed:g} s") from None
    except httpx.TooManyRedirects:
        raise IngestError("too many redirects") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
        raise IngestError(f"invalid URL: {_one_line(error)}") from None
    except httpx.ConnectError as error:
        raise IngestError(f"cannot connect: {_one_line(error)}") from None
    except httpx.HTTPError as error:
        raise IngestError(f"download failed: {_one_line(error) or type(error).__name__}") from None


def _parse_feed(download: _Download) -> feedparser.FeedParserDict | None:
    """The parsed feed when the download is RSS/Atom (by content type or content), else None."""
    ctype = download.content_type
    if "html" in ctype:
        return None
    declared_feed = "rss" in ctype or "atom" in ctype or "xml" in ctype
    # Parsing bytes (never a URL) so that feedparser itself fetches nothing.
    parsed = feedparser.parse(
        download.data,
        response_headers={"content-location": download.url, "content-type": ctype or "application/xml"},
    )
    if parsed.entries or (declared_feed and parsed.get("version")):
        return parsed
    if declared_feed and not _looks_like_html(download.data):
        raise IngestError(f"not a readable RSS/Atom feed (content type {ctype})")
    return None


def _load_feed(
    url: str,
    feed: feedparser.FeedParserDict,
    settings: Settings,
    client: httpx.Client,
    result: WebResult,
    progress: Callable[[str], None] | None,
    deadline: tuple[float, str],
) -> None:
    feed_title = " ".join(str(feed.feed.get("title", "")).split())
    if not feed.entries:
        result.warnings.append(f"{url}: feed has no entries")
    seen: set[str] = set()
    for index, entry in enumerate(feed.entries, start=1):
        link = str(entry.get("link", "")).strip()
        if not is_url(link):
            result.failures.append(
                IngestFailure(source=f"{url}#entry{index}", error="feed entry has no http(s) link")
            )
            continue
        if link in seen:
            continue
        seen.add(link)
        if time.monotonic() >= deadline[0]:  # many hanging links must not hold the run for ever
            result.failures.append(IngestFailure(source=link, error=deadline[1]))
            continue
        if progress:
            progress(link)
        try:
            download = _fetch(client, link, settings, deadline[0])
            article = _page_article(
                link,
                download,
                result.warnings,
                gaps={
                    "title": " ".join(str(entry.get("title", "")).split()),
                    "author": str(entry.get("author", "")).strip(),
                    "published": parse_date(entry.get("published_parsed") or entry.get("updated_parsed")),
                    "source": feed_title,
                },
            )
        except Exception as error:  # noqa: BLE001 - one bad entry must not stop the others
            result.failures.append(IngestFailure(source=link, error=failure_reason(error)))
            continue
        result.articles.append(article)


def _page_article(
    url: str, download: _Download, warnings: list[str], gaps: dict[str, object] | None = None
) -> Article:
    """Build the Article for one fetched page; ``gaps`` (feed metadata) fills what the page lacks."""
    ctype = download.content_type
    if "html" in ctype or (not ctype.startswith("text/plain") and _looks_like_html(download.data)):
        html, guessed = decode_html(download.data, download.charset)
        extract = extract_html(html)
    elif ctype.startswith("text/plain"):
        text, guessed = decode_bytes(download.data, download.charset)
        extract = HtmlExtract(text=normalise_text(text))
        if not extract.text:
            raise IngestError("empty document")
    else:
        raise IngestError(f"not an HTML page or RSS/Atom feed (content type {ctype or 'unknown'})")
    if guessed:
        warnings.append(f"{url}: not valid UTF-8, decoded as {guessed}")
    fields: dict[str, object] = {
        "title": extract.title, "author": extract.author, "source": extract.source,
        "published": extract.published,
    }
    for key, value in (gaps or {}).items():
        if not fields.get(key) and value:
            fields[key] = value
    article = Article(id=url, text=extract.text, url=url, origin=url, **fields)  # type: ignore[arg-type]
    return fill_missing(article, fallback_title=url)


def _looks_like_html(data: bytes) -> bool:
    head = data[:2048].lower()
    return any(marker in head for marker in (b"<!doctype html", b"<html", b"<body", b"<head", b"<p>"))


def _first(meta: dict[str, str], keys: tuple[str, ...], *, skip_urls: bool = False) -> str:
    for key in keys:
        value = " ".join(meta.get(key, "").split())
        if value and not (skip_urls and is_url(value)):
            return value
    return ""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


class _HtmlScanner(HTMLParser):
    """Collects meta tags, ``<title>`` and visible text (the fallback when trafilatura finds nothing)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title = ""
        self._parts: list[str] = []
        self._skip_depth = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name.lower(): value or "" for name, value in attrs}
        if tag == "meta":
            key = (attributes.get("property") or attributes.get("name") or attributes.get("itemprop")
                   or "").strip().lower()
            if key and "content" in attributes:
                self.meta.setdefault(key, attributes["content"].strip())
            return
        if tag == "title":
            self._in_title = True
        if tag == "body":
            self._skip_depth = 0  # a missing </head> must not hide the whole body
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIP_TAGS and self._skip_depth:
            self._skip_depth -= 1
        elif tag in _BLOCK_TAGS:
            self._parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip_depth:
            self._parts.append(data)

    def visible_text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self._parts).split("\n"))
        return "\n".join(line for line in lines if line)
