"""Text handling shared by the file and web loaders: decoding, normalisation, metadata inference.

Inference reads what the text already says and never invents: a value is filled only when a pattern is
found, otherwise the field stays empty. Text is never altered beyond newline/BOM normalisation and
trimming, because citations quote it verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

import charset_normalizer
from dateutil import parser as date_parser

from newsdesk.dates import MONTH_CAPITALISED
from newsdesk.errors import IngestError
from newsdesk.models import Article
from newsdesk.sentences import segmenter

#: Titles inferred from the first sentence are trimmed to about this many characters.
TITLE_MAX_CHARS = 120

#: Bylines, datelines and dates are only looked for in this many non-empty lines at the start.
HEAD_LINES = 5

_NAME_PARTICLES = {"de", "da", "das", "do", "dos", "du", "del", "der", "van", "von", "la", "le", "al", "bin",
                   "ibn", "binti", "ul", "ur", "and", "&"}
_NAME_TOKEN = re.compile(r"[A-Z\u00C0-\u024F][\w.'\u2019\-]*$")
_BYLINE = re.compile(r"^by\s+(?P<rest>.+)$", re.IGNORECASE)
_BYLINE_SEPARATOR = re.compile(r"\s*(?:,|\||/|\s[-\u2013\u2014]\s)\s*")

# "ISLAMABAD:", "KARACHI, Pakistan (Reuters) -", "WASHINGTON (AP) \u2014", "NEW YORK, Oct 9 (Reuters) -"
_DATELINE = re.compile(
    r"^(?P<place>[A-Z][A-Z.'\u2019\-]+(?:\s+[A-Z][A-Z.'\u2019\-]+)*"
    r"(?:,\s*[A-Za-z0-9][\w.'\u2019\-]*(?:\s+[A-Za-z0-9][\w.'\u2019\-]*){0,3})?)"
    r"\s*(?:\((?P<agency>[A-Za-z][A-Za-z&.' ]{0,30})\))?"
    r"\s*(?::|[-\u2013\u2014]{1,2})\s+"
)

_MONTH = MONTH_CAPITALISED
_DATE_PATTERNS = [
    re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b"),
    re.compile(rf"\b{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b"),
    re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}\.?,?\s+\d{{4}}\b"),
]
_DATE_ONLY_LINE = re.compile(
    rf"^(?:(?:published|updated|posted|date)\s*:?\s*)?(?:[A-Za-z]+day,?\s+)?"
    rf"(?:\d{{4}}-\d{{1,2}}-\d{{1,2}}|{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}\.?,?\s+\d{{4}})\b[^A-Za-z]*"
    rf"(?:[AaPp]\.?[Mm]\.?\b.*|[A-Z]{{2,5}})?$",
    re.IGNORECASE,
)
_MARKDOWN_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")

# Two defaults that differ in every field: a component missing from the string shows up as a difference.
_DEFAULT_A = datetime(2001, 1, 1)
_DEFAULT_B = datetime(2002, 2, 2)


@dataclass
class InferredMetadata:
    """Metadata read from an article's text; empty strings and None mean "not found"."""

    title: str = ""
    source: str = ""
    author: str = ""
    published: date | None = None


_BOMS = [
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
]
# Labels that browsers read as windows-1252 (WHATWG Encoding Standard).
_CP1252_ALIASES = {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "iso_8859-1"}


def decode_bytes(data: bytes, declared: str | None = None) -> tuple[str, str | None]:
    """Decode a text file or download.

    Order: a byte-order mark, then the declared charset (HTTP header or HTML meta), then strict UTF-8,
    then windows-1252 when the text reads as Western European (see :func:`_western_cp1252`), then
    detection with charset-normalizer.

    Args:
        data: The raw bytes.
        declared: A charset announced by the source, if any.

    Returns:
        The decoded text and, when the encoding had to be guessed, the name of the encoding used (so the
        caller can warn); None when the text was UTF-8, had a BOM, or matched its declared charset.

    Raises:
        IngestError: The data contains NUL bytes (binary) or no encoding fits.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), None
            except UnicodeDecodeError:
                break
    if b"\x00" in data:
        raise IngestError("binary file, not text")
    if declared:
        label = declared.strip().strip("\"'").lower()
        for codec in (["cp1252"] if label in _CP1252_ALIASES else []) + [label]:
            try:
                return data.decode(codec), None
            except (LookupError, UnicodeDecodeError):
                continue
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    western = _western_cp1252(data)
    if western is not None:
        return western, "cp1252"
    matches = list(charset_normalizer.from_bytes(data))
    if not matches:
        raise IngestError("not valid UTF-8 and the text encoding could not be detected")
    best = matches[0]
    # Short Western-European text scores equally under several single-byte code pages; of those,
    # windows-1252 is by far the most common for news text, and picking cp1250 would turn "è" into "č".
    for match in matches:
        if match.encoding == "cp1252" and match.chaos <= best.chaos + 0.01:
            best = match
            break
    return str(best), best.encoding


#: What windows-1252 text in a Western European language holds beyond ASCII: accented Latin letters
#: and the usual typographic signs. A reading that needs anything else is not Western text.
_WESTERN_LETTERS = set("ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝßàáâãäåæçèéêëìíîïñòóôõöøùúûüýÿŒœŠšŽžŸ")
_WESTERN_SIGNS = set("€£¥¢©®°±§·«»“”‘’‚„–—…•™½¼¾¿¡ªº²³µ\u00a0")


def _western_cp1252(data: bytes) -> str | None:
    """``data`` read as windows-1252 when it looks like Western European text, else None.

    Mostly-ASCII text with a few high bytes ("£15.8m", "Zürich", "€5") also "decodes" without errors as
    Shift-JIS or a Baltic code page, which statistical detection may prefer on short text, into
    half-width katakana or "Z³rich". Windows-1252 is chosen when every non-ASCII character it gives is
    an accented Latin letter or a common typographic sign, and such letters are a minority of the
    letters (Cyrillic or Greek single-byte text read as windows-1252 is almost all accented letters).
    """
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    letters = accented = 0
    for char in text:
        if char.isascii():
            letters += char.isalpha()
            continue
        if char in _WESTERN_LETTERS:
            letters += 1
            accented += 1
        elif char not in _WESTERN_SIGNS:
            return None
    return text if letters and accented <= 0.3 * letters else None


def normalise_text(text: str) -> str:
    """Strip a BOM, turn CRLF/CR into LF and trim the whole text; nothing else is changed."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text.strip()


def parse_date(value: object) -> date | None:
    """Parse a publication date without guessing missing parts.

    Args:
        value: A ``date``, ``datetime``, a ``time.struct_time``-like tuple, or a string such as
            ``"October 9, 2024"``, ``"2024-10-09"`` or ``"2024-10-09T08:00:00Z"``.

    Returns:
        The calendar date as written (no time-zone conversion), or None when the value is empty,
        unparseable, or lacks a year, month or day.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, tuple) and len(value) >= 3:  # time.struct_time from feedparser
        try:
            return date(int(value[0]), int(value[1]), int(value[2]))
        except (TypeError, ValueError):
            return None
    text = str(value).strip()
    if not text:
        return None
    try:
        first = date_parser.parse(text, default=_DEFAULT_A)
        second = date_parser.parse(text, default=_DEFAULT_B)
    except (ValueError, OverflowError, TypeError):
        return None
    if (first.year, first.month, first.day) != (second.year, second.month, second.day):
        return None  # the string lacks a year, month or day: do not make one up
    return first.date()


def infer_metadata(text: str) -> InferredMetadata:
    """Read title, author, source and publication date from the start of an article's text.

    Args:
        text: The normalised article text.

    Returns:
        What the text states: a ``By NAME`` byline gives the author, a wire-service dateline such as
        ``KARACHI (Reuters) -`` gives the source, a date in the first lines gives ``published``, and the
        first sentence (dateline and byline removed, trimmed at a word boundary) gives the title.
    """
    # only a line's opening can hold a byline, dateline or title: a multi-megabyte line costs no more
    lines = [line.strip()[:2000] for line in text.split("\n") if line.strip()]
    head = lines[:HEAD_LINES]
    result = InferredMetadata()

    for line in head:
        author = _byline_author(line)
        if author:
            result.author = author
            break

    for line in head:
        match = _DATELINE.match(line)
        if match and match.group("agency"):
            result.source = match.group("agency").strip()
            break

    result.published = _first_date("\n".join(head))

    for line in lines:
        if _byline_author(line) or _DATE_ONLY_LINE.match(line):
            continue
        heading = _MARKDOWN_HEADING.match(line)
        if heading:
            result.title = _trim_title(heading.group(1))
        else:
            match = _DATELINE.match(line)
            body = line[match.end():] if match else line
            result.title = _trim_title(_first_sentence(body))
        if result.title:
            break
    return result


def fill_missing(article: Article, *, fallback_title: str = "") -> Article:
    """Return ``article`` with empty title, author, source and published filled from its text.

    Fields that already have a value are kept as they are.

    Args:
        article: The article as loaded, with whatever metadata its format provided.
        fallback_title: Used as the title when none is given and none can be inferred (e.g. the file
            name stem).

    Returns:
        A copy of the article with the gaps filled.
    """
    inferred = infer_metadata(article.text)
    update: dict[str, object] = {}
    if not article.title:
        update["title"] = inferred.title or fallback_title
    if not article.author and inferred.author:
        update["author"] = inferred.author
    if not article.source and inferred.source:
        update["source"] = inferred.source
    if article.published is None and inferred.published is not None:
        update["published"] = inferred.published
    return article.model_copy(update=update) if update else article


def _byline_author(line: str) -> str:
    """The name in a ``By NAME`` line, or "" when the line is not a byline."""
    if len(line) > 100:
        return ""
    match = _BYLINE.match(line)
    if not match:
        return ""
    # Up to the first separator is the name; what follows is an outlet or role ("Reuters", "Staff").
    rest = _BYLINE_SEPARATOR.split(match.group("rest"), maxsplit=1)
    name = rest[0].strip()
    tail = rest[1] if len(rest) > 1 else ""
    if tail and (len(tail) > 40 or tail.rstrip().endswith((".", "!", "?"))):
        return ""  # "By Monday, the ministry will decide." is a sentence, not a byline
    tokens = name.split()
    if not 1 <= len(tokens) <= 8:
        return ""
    if not _NAME_TOKEN.match(tokens[0]) or not _NAME_TOKEN.match(tokens[-1]):
        return ""
    for token in tokens:
        if not (_NAME_TOKEN.match(token) or token.lower() in _NAME_PARTICLES):
            return ""
    return name


def _first_date(text: str) -> date | None:
    """The earliest complete date written in ``text``."""
    found: list[tuple[int, str]] = []
    for pattern in _DATE_PATTERNS:
        match = pattern.search(text)
        if match:
            found.append((match.start(), match.group(0)))
    for _, candidate in sorted(found):
        parsed = parse_date(candidate)
        if parsed is not None:
            return parsed
    return None


def _first_sentence(paragraph: str) -> str:
    """The first sentence of a paragraph (abbreviations such as "Dr." do not end it)."""
    # Only the opening of a long paragraph matters for a title; bound the segmenter's work.
    window = paragraph[: TITLE_MAX_CHARS * 5]
    sentences = [s.strip() for s in segmenter().segment(window) if s.strip()]
    return sentences[0] if sentences else ""


def _trim_title(sentence: str) -> str:
    """Trim to about ``TITLE_MAX_CHARS`` at a word boundary, dropping a final full stop."""
    sentence = " ".join(sentence.split())
    if len(sentence) <= TITLE_MAX_CHARS:
        return sentence[:-1] if sentence.endswith(".") and not sentence.endswith("..") else sentence
    cut = sentence[: TITLE_MAX_CHARS + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space > TITLE_MAX_CHARS // 2 else sentence[:TITLE_MAX_CHARS]
    return cut.rstrip(" ,;:-\u2013\u2014") + "\u2026"
