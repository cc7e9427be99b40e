"""Load articles from what the user passes to ``newsdesk ingest``: files, directories and URLs.

Supported files: ``.txt``, ``.md``/``.markdown`` (optional YAML front matter), ``.html``/``.htm``, ``.pdf``
(text layer) and ``.jsonl`` (one article per line). URLs are handed to :mod:`ingest.web`. One bad input
never stops the others: it becomes an :class:`~newsdesk.models.IngestFailure` with a one-line reason.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import stat
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import frontmatter
from pypdf import PdfReader

from ingest.metadata import decode_bytes, fill_missing, normalise_text, parse_date
from ingest.web import decode_html, extract_html, failure_reason, is_url, load_url
from newsdesk.errors import IngestError
from newsdesk.models import Article, IngestFailure
from newsdesk.settings import Settings

#: File extensions loaded from directories (compared lower-cased).
SUPPORTED_EXTENSIONS = (".htm", ".html", ".jsonl", ".markdown", ".md", ".pdf", ".txt")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_FRONT_MATTER_FIELDS = ("title", "source", "author", "url")


@dataclass
class LoadResult:
    """Everything one ``load_sources`` call produced.

    Attributes:
        articles: Articles loaded successfully, each with ``origin`` set.
        failures: One per input (file, JSONL line, URL, feed entry) that could not be loaded. ``source``
            is the path as the user would type it (``os.path.abspath`` of it is the origin), ``file:LINE``
            for a JSONL line, or the URL.
        warnings: Problems that did not stop loading, e.g. a file that had to be decoded as cp1252.
        roots: Absolute paths of the files and directories given (only those that exist) and the URLs
            that could be fetched, in input order; ``--prune`` may remove stored articles whose origin
            lies under a root but was not loaded again.
    """

    articles: list[Article] = field(default_factory=list)
    failures: list[IngestFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)

    def fail(self, source: str, error: str) -> None:
        """Record a failure for ``source``."""
        self.failures.append(IngestFailure(source=source, error=error))


@dataclass(frozen=True)
class _Item:
    """One file to load: its absolute path, its article id and its name for messages.

    ``path`` is what the OS gave (undecodable bytes of a file name kept as surrogates, so the file
    opens); ``article_id``, ``display`` and ``origin`` are the same names made valid text by
    :func:`safe_name`, because they are stored, compared and printed.
    """

    path: str
    article_id: str
    display: str

    @property
    def origin(self) -> str:
        return safe_name(self.path)


def safe_name(name: str) -> str:
    r"""A file name as valid text: bytes that are not UTF-8 (surrogates in ``os`` strings) become ``\xff``.

    ``os.listdir`` returns such bytes as lone surrogates, which cannot be stored, encoded or printed.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _item(path: str, article_id: str, display: str) -> _Item:
    return _Item(path, safe_name(article_id), safe_name(display))


def load_sources(
    inputs: list[str], settings: Settings, *, progress: Callable[[str], None] | None = None
) -> LoadResult:
    """Load every article from the given files, directories and http(s) URLs.

    Directories are walked recursively in sorted order, skipping hidden entries and files with
    unsupported extensions. Never raises for a bad input; see :class:`LoadResult`.

    Args:
        inputs: Paths and URLs as typed after ``newsdesk ingest``.
        settings: Supplies ``max_file_bytes`` and ``fetch_timeout``.
        progress: Called once per item just before it is loaded: each file (also each file found in a
            directory), each URL, and each page a feed links to.

    Returns:
        The loaded articles, the failures, the warnings and the normalised roots.
    """
    result = LoadResult()
    seen: set[str] = set()
    run_deadline = time.monotonic() + settings.fetch_run_timeout
    for raw in inputs:
        value = raw.strip()
        if is_url(value):
            _load_url(value, settings, result, seen, progress, run_deadline)
            continue
        scheme = _SCHEME.match(value)
        if scheme:
            result.fail(safe_name(raw), f"unsupported URL scheme '{scheme.group(1)}' (only http and https)")
            continue
        if not value:
            result.fail(raw, "empty path")
            continue
        for item in _expand_path(value, result):
            if item.path in seen:
                continue  # the same file named twice (or inside a directory also given) loads once
            seen.add(item.path)
            if progress:
                progress(item.display)
            try:
                articles = _load_file(item, settings, result)
            except Exception as error:  # noqa: BLE001 - one bad file must never stop the run
                result.fail(item.display, failure_reason(error))
                continue
            result.articles.extend(articles)
    return result


def load_file(
    path: str | os.PathLike[str], settings: Settings, *, article_id: str | None = None
) -> LoadResult:
    """Load one file of any supported format.

    Args:
        path: The file.
        settings: Supplies ``max_file_bytes``.
        article_id: The id to give the article; defaults to the file name.

    Returns:
        A LoadResult (``roots`` left empty); a failure rather than an exception for a bad file.
    """
    result = LoadResult()
    display = os.fspath(path)
    item = _item(os.path.abspath(display), article_id or os.path.basename(display), display)
    try:
        result.articles.extend(_load_file(item, settings, result))
    except Exception as error:  # noqa: BLE001 - reported as a failure, like load_sources does
        result.fail(display, failure_reason(error))
    return result


def _load_url(
    url: str, settings: Settings, result: LoadResult, seen: set[str], progress: Callable[[str], None] | None,
    run_deadline: float,
) -> None:
    if url in seen:
        return
    seen.add(url)
    fetched = load_url(url, settings, progress=progress, run_deadline=run_deadline)
    result.articles.extend(fetched.articles)
    result.failures.extend(fetched.failures)
    result.warnings.extend(fetched.warnings)
    if fetched.ok:
        _add_root(result, url)


def _expand_path(value: str, result: LoadResult) -> list[_Item]:
    """The files an input path stands for; records failures for what cannot be listed."""
    path = os.path.expanduser(value)
    absolute = os.path.abspath(path)
    try:
        info = os.stat(path)
    except OSError as error:
        result.fail(safe_name(value), _os_reason(error))
        return []
    _add_root(result, safe_name(absolute))
    if stat.S_ISDIR(info.st_mode):
        items = _walk(absolute, value, result)
        if not items:
            result.warnings.append(f"{safe_name(value)}: no supported files ({', '.join(SUPPORTED_EXTENSIONS)})")
        return items
    return [_item(absolute, os.path.basename(absolute), value)]


def _walk(root: str, display_root: str, result: LoadResult) -> list[_Item]:
    """Supported files under ``root``, recursively, sorted by relative path, hidden entries skipped."""
    items: list[_Item] = []
    visited: set[str] = set()

    def visit(directory: str, relative: str) -> None:
        real = os.path.realpath(directory)
        if real in visited:
            return  # a symlink loop, or the same directory reached twice
        visited.add(real)
        try:
            with os.scandir(directory) as entries:
                listing = sorted(entries, key=lambda entry: entry.name)
        except OSError as error:
            result.fail(safe_name(_join_display(display_root, relative) or display_root), _os_reason(error))
            return
        for entry in listing:
            if entry.name.startswith("."):
                continue
            rel = f"{relative}/{entry.name}" if relative else entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                visit(entry.path, rel)
                continue
            if not entry.name.lower().endswith(SUPPORTED_EXTENSIONS):
                continue
            items.append(_item(os.path.join(root, *rel.split("/")), rel, _join_display(display_root, rel)))

    visit(root, "")
    items.sort(key=lambda item: item.article_id)
    return items


def _load_file(item: _Item, settings: Settings, result: LoadResult) -> list[Article]:
    """Articles in one file; raises IngestError when the whole file is unusable."""
    extension = os.path.splitext(item.path)[1].lower()
    if extension not in SUPPORTED_EXTENSIONS:
        shown = extension or "no extension"
        raise IngestError(f"unsupported file type '{shown}' (supported: {', '.join(SUPPORTED_EXTENSIONS)})")
    data = _read(item.path, settings.max_file_bytes)
    stem = Path(item.origin).stem
    if extension == ".pdf":
        with _captured_pdf_warnings() as notes:
            try:
                return [_pdf_article(item, data, stem)]
            finally:
                result.warnings.extend(f"{item.display}: {note}" for note in notes[:3])
    if extension in (".html", ".htm"):
        html, guessed = decode_html(data)
        _warn_guessed(result, item.display, guessed)
        extract = extract_html(html)
        article = Article(id=item.article_id, text=extract.text, title=extract.title, author=extract.author,
                          source=extract.source, published=extract.published, origin=item.origin)
        return [fill_missing(article, fallback_title=stem)]
    text, guessed = decode_bytes(data)
    _warn_guessed(result, item.display, guessed)
    text = normalise_text(text)
    if not text:
        raise IngestError("empty file")
    if extension == ".jsonl":
        return _jsonl_articles(item, text, result)
    if extension in (".md", ".markdown"):
        return [_markdown_article(item, text, stem)]
    return [fill_missing(Article(id=item.article_id, text=text, origin=item.origin), fallback_title=stem)]


def _read(path: str, limit: int) -> bytes:
    """The bytes of a regular file within the size limit."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise IngestError("not a regular file")
        if info.st_size > limit:
            raise IngestError(f"over the size limit of {limit} bytes")
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise IngestError(_os_reason(error)) from None
    if len(data) > limit:
        raise IngestError(f"over the size limit of {limit} bytes")
    if not data.strip():
        raise IngestError("empty file")
    return data


def _markdown_article(item: _Item, text: str, stem: str) -> Article:
    try:
        post = frontmatter.loads(text)
    except Exception as error:  # noqa: BLE001 - YAML raises many error types; all mean "fix the header"
        raise IngestError(f"invalid YAML front matter: {_one_line(error)}") from None
    body = normalise_text(post.content)
    if not body:
        raise IngestError("no article text after the front matter")
    meta = post.metadata
    fields = {name: _meta_text(meta.get(name)) for name in _FRONT_MATTER_FIELDS}
    published = meta.get("published", meta.get("date"))
    article = Article(
        id=item.article_id, text=body, published=parse_date(published), origin=item.origin, **fields
    )
    return fill_missing(article, fallback_title=stem)


def _pdf_article(item: _Item, data: bytes, stem: str) -> Article:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError("encrypted PDF (password needed); skipped")
        pages = [page.extract_text() or "" for page in reader.pages]
    except IngestError:
        raise
    except Exception as error:  # noqa: BLE001 - pypdf raises assorted errors on damaged files
        raise IngestError(f"not a readable PDF: {_one_line(error) or type(error).__name__}") from None
    text = normalise_text("\n\n".join(page.strip() for page in pages if page.strip()))
    if not text:
        raise IngestError("no text layer (scanned PDF?); skipped")
    title, author, published = "", "", None
    try:
        info = reader.metadata
        if info is not None:
            title = _meta_text(info.title)
            author = _meta_text(info.author)
            published = parse_date(info.creation_date)
    except Exception:  # noqa: BLE001 - a malformed info dictionary must not lose the text
        pass
    if re.match(r"^(Microsoft Word - |untitled\b)|\.\w{2,4}$", title, re.IGNORECASE):
        title = ""  # authoring-tool placeholders, not titles
    article = Article(id=item.article_id, text=text, title=title, author=author, published=published,
                      origin=item.origin)
    return fill_missing(article, fallback_title=stem)


@contextmanager
def _captured_pdf_warnings() -> Iterator[list[str]]:
    """Collect what pypdf logs or warns instead of letting it reach stderr.

    "invalid pdf header", "EOF marker not found" and the like are then reported with the file they concern.
    """
    notes: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            note = "PDF: " + " ".join(record.getMessage().split())
            if note not in notes:
                notes.append(note)

    logger = logging.getLogger("pypdf")
    handler = _Collect(logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield notes
        for warning in caught:
            note = "PDF: " + " ".join(str(warning.message).split())
            if note not in notes:
                notes.append(note)
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _jsonl_articles(item: _Item, text: str, result: LoadResult) -> list[Article]:
    articles: list[Article] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        name = f"{item.display}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            # some messages end in "at" ("Unterminated string starting at"): the column completes them
            result.fail(name, f"not valid JSON ({error.msg.removesuffix(' at')} at column {error.colno})")
            continue
        if not isinstance(record, dict):
            result.fail(name, "not a JSON object")
            continue
        article_id = record.get("id")
        valid_id = isinstance(article_id, str | int) and not isinstance(article_id, bool)
        if not valid_id or not str(article_id).strip():
            result.fail(name, "missing required field 'id' (a non-empty string)")
            continue
        article_id = str(article_id).strip()
        body = record.get("text")
        if not isinstance(body, str) or not normalise_text(body):
            result.fail(name, "missing required field 'text' (a non-empty string)")
            continue
        if article_id in first_line:
            result.fail(name, f"duplicate id '{article_id}' (first on line {first_line[article_id]})")
            continue
        first_line[article_id] = number
        published = parse_date(record.get("published"))
        if published is None and record.get("published") not in (None, ""):
            result.warnings.append(f"{name}: cannot parse published date {record['published']!r}; left empty")
        article = Article(
            id=article_id,
            text=normalise_text(body),
            published=published,
            origin=item.origin,
            **{key: _meta_text(record.get(key)) for key in _FRONT_MATTER_FIELDS},
        )
        articles.append(fill_missing(article, fallback_title=article_id))
    if not articles and not any(f.source.startswith(f"{item.display}:") for f in result.failures):
        raise IngestError("empty file")
    return articles


def _meta_text(value: object) -> str:
    """A metadata value as one line of text (lists, e.g. several authors, are comma-joined)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(part for part in (_meta_text(v) for v in value) if part)
    return " ".join(str(value).split())


def _warn_guessed(result: LoadResult, display: str, encoding: str | None) -> None:
    if encoding:
        result.warnings.append(f"{display}: not valid UTF-8, decoded as {encoding}")


def _add_root(result: LoadResult, root: str) -> None:
    if root not in result.roots:
        result.roots.append(root)


def _join_display(display_root: str, relative: str) -> str:
    """``relative`` under the directory as the user typed it (so its abspath is the file's origin)."""
    return f"{display_root.rstrip('/')}/{relative}" if relative else display_root


def _os_reason(error: OSError) -> str:
    """The OS's own reason, as a lower-case phrase ("no such file or directory", "permission denied")."""
    reason = error.strerror or str(error)
    return reason[:1].lower() + reason[1:]


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
