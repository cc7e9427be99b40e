"""Sentence-aware chunking that keeps exact character offsets into the article text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pysbd

from newsdesk.models import Article, Chunk

_LINES = re.compile(r"[^\n]+")

#: Lines longer than this are not prose paragraphs (a dump, a table flattened onto one line, minified
#: text): pysbd's cost grows faster than linearly with a line's length, so they are cut at sentence-like
#: boundaries by a bounded window instead (see :func:`_long_line_spans`).
LONG_LINE = 10_000
#: The window a long line is cut in: each cut falls at the last sentence end (else space) inside it.
WINDOW = 2_000
_SPACE = re.compile(r"\s")
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s+")

#: Bump when a change to this module changes the chunks made from the same text, so that stored
#: articles are re-chunked on the next ingest.
CHUNKER_VERSION = 2


@dataclass(frozen=True)
class Span:
    """A sentence: ``text[start:end]``, surrounding whitespace excluded."""

    start: int
    end: int


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


def _trim(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end) if end > start else None


def sentence_spans(text: str) -> list[Span]:
    """Split ``text`` into sentences (rule-based, no downloaded data) with exact offsets.

    A newline always ends a sentence: these files hold one paragraph a line (pysbd splits there too).
    Offsets are found by searching each sentence forward from the previous one; text the segmenter
    altered so that it cannot be found is kept as a span of its own, so no character is ever lost.
    """
    spans: list[Span] = []
    for line in _LINES.finditer(text):
        if line.end() - line.start() > LONG_LINE:
            spans.extend(_long_line_spans(text, line.start(), line.end()))
        elif not line.group().isspace():
            spans.extend(_line_spans(text, line.start(), line.end()))
    return spans


def answer_sentences(text: str) -> list[tuple[int, int]]:
    """The sentences of a chunk that the answerer scores, as (start, end) offsets into ``text``.

    A fragment of four words or fewer (a dateline such as "Oct 19, 2021 ...", a heading) is joined to the
    sentence after it, so what it says is scored, and quoted, in context; pieces under 12 characters are
    left out. Ingest embeds exactly these (:mod:`newsdesk.sentence_vectors`), so they must not change
    without the stored vectors being recomputed (a changed text simply misses the cache).
    """
    merged: list[tuple[int, int]] = []
    for span in sentence_spans(text):
        if merged and _is_fragment(text[merged[-1][0] : merged[-1][1]]):
            merged[-1] = (merged[-1][0], span.end)
        else:
            merged.append((span.start, span.end))
    return [(start, end) for start, end in merged if end - start >= 12]


def _is_fragment(text: str) -> bool:
    words = text.replace("...", " ").replace("…", " ").split()
    return len(words) <= 4


def _long_line_spans(text: str, start: int, end: int) -> list[Span]:
    """Sentences of an over-long line, in linear time: cut after each sentence-ending punctuation mark.

    A rule this simple is enough for such lines; pieces still longer than a chunk are cut at whitespace
    by :func:`_split_long`.
    """
    spans: list[Span] = []
    cursor = start
    for match in _SENTENCE_END.finditer(text, start, end):
        if (span := _trim(text, cursor, match.end())) is not None:
            spans.append(span)
        cursor = match.end()
    if (span := _trim(text, cursor, end)) is not None:
        spans.append(span)
    return spans


def _line_spans(text: str, start: int, end: int) -> list[Span]:
    line = text[start:end]
    # The segmenter's processor alone: Segmenter.segment() would also recover character spans by
    # regex-searching every sentence from the start of the text, quadratic in long articles.
    spans: list[Span] = []
    cursor = 0
    for sentence in _segmenter().processor(line).process() or []:
        sentence = sentence.strip()
        found = line.find(sentence, cursor) if sentence else -1
        if found < 0:
            continue  # altered by the segmenter; the gap is filled below
        if (gap := _trim(text, start + cursor, start + found)) is not None:
            spans.append(gap)
        spans.append(Span(start + found, start + found + len(sentence)))
        cursor = found + len(sentence)
    if (tail := _trim(text, start + cursor, end)) is not None:
        spans.append(tail)
    return spans


def _split_long(text: str, span: Span, size: int) -> list[Span]:
    """Cut a sentence longer than ``size`` at the last whitespace before each limit.

    The embedding model reads only its first 256 tokens (about 1,000 characters), so an overlong
    "sentence" (a list, a table, abstracts whose sentences were joined without a space) kept whole
    would be invisible to dense search past that point.
    """
    pieces: list[Span] = []
    start = span.start
    while span.end - start > size:
        cut = start + size  # the last whitespace in (start, start + size], else a hard cut
        for match in _SPACE.finditer(text, start + 1, start + size + 1):
            cut = match.start()
        piece = _trim(text, start, cut)
        if piece:
            pieces.append(piece)
        start = cut
    last = _trim(text, start, span.end)
    if last:
        pieces.append(last)
    return pieces


def chunking_key(size: int, overlap: int) -> str:
    """Names the chunker and its parameters; stored with each article to detect a change of either."""
    return f"sentences-v{CHUNKER_VERSION}:{size}:{overlap}"


def chunk_article(article: Article, size: int = 800, overlap: int = 150) -> list[Chunk]:
    """Pack whole sentences into chunks of at most ``size`` characters.

    Consecutive chunks share trailing sentences worth up to ``overlap`` characters. A sentence longer
    than ``size`` is cut at whitespace into pieces that fit (a single word longer than ``size`` is cut
    at ``size``). Every chunk satisfies ``article.text[chunk.char_start:chunk.char_end] == chunk.text``.
    """
    text = article.text
    spans = [piece for span in sentence_spans(text) for piece in _split_long(text, span, size)]
    chunks: list[Chunk] = []
    first = 0
    while first < len(spans):
        last = first
        while last + 1 < len(spans) and spans[last + 1].end - spans[first].start <= size:
            last += 1
        start, end = spans[first].start, spans[last].end
        chunks.append(Chunk(article_id=article.id, index=len(chunks), text=text[start:end],
                            char_start=start, char_end=end))
        if last + 1 >= len(spans):
            break
        # step back over trailing sentences that fit in the overlap, but always advance, and only as far
        # as still leaves room for the next new sentence: otherwise the next chunk would hold nothing
        # but the overlap, a copy of this chunk's tail.
        following = spans[last + 1].end
        next_first = last + 1
        while (next_first - 1 > first and spans[last].end - spans[next_first - 1].start <= overlap
               and following - spans[next_first - 1].start <= size):
            next_first -= 1
        first = next_first
    return chunks
