"""Sentence-aware chunking that keeps exact character offsets into the article text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pysbd

from newsdesk.models import Article, Chunk

_BLANK_LINES = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Span:
    """A sentence: ``text[start:end]``, surrounding whitespace excluded."""

    start: int
    end: int


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def _trim(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end) if end > start else None


def sentence_spans(text: str) -> list[Span]:
    """Split ``text`` into sentences (rule-based, no downloaded data) with exact offsets.

    Paragraph breaks always end a sentence. Offsets are recovered by searching forward from the
    previous sentence, so they are exact even where the segmenter's own spans drift.
    """
    spans: list[Span] = []
    segmenter = _segmenter()
    paragraph_start = 0
    for match in [*_BLANK_LINES.finditer(text), None]:
        paragraph_end = match.start() if match else len(text)
        paragraph = text[paragraph_start:paragraph_end]
        cursor = 0
        for piece in segmenter.segment(paragraph) if paragraph.strip() else []:
            sentence = piece.sent.strip()
            if not sentence:
                continue
            found = paragraph.find(sentence, cursor)
            if found < 0:  # the segmenter altered the text; fall back to its own span
                found, end = piece.start, piece.end
            else:
                end = found + len(sentence)
            for line_start, line_end in _lines(paragraph, found, end):
                span = _trim(text, paragraph_start + line_start, paragraph_start + line_end)
                if span:
                    spans.append(span)
            cursor = end
        paragraph_start = match.end() if match else len(text)
    return spans


def _lines(paragraph: str, start: int, end: int) -> list[tuple[int, int]]:
    """Single newlines inside a sentence are paragraph breaks in these files (one paragraph a line)."""
    pieces, cursor = [], start
    while (newline := paragraph.find("\n", cursor, end)) >= 0:
        pieces.append((cursor, newline))
        cursor = newline + 1
    pieces.append((cursor, end))
    return pieces


def _split_long(text: str, span: Span, size: int) -> list[Span]:
    """Cut a sentence longer than ``size`` at the last whitespace before each limit.

    The embedding model reads only its first 256 tokens (about 1,000 characters), so an overlong
    "sentence" (a list, a table, abstracts whose sentences were joined without a space) kept whole
    would be invisible to dense search past that point.
    """
    pieces: list[Span] = []
    start = span.start
    while span.end - start > size:
        cut = next((k for k in range(start + size, start, -1) if text[k].isspace()), start + size)
        piece = _trim(text, start, cut)
        if piece:
            pieces.append(piece)
        start = cut
    last = _trim(text, start, span.end)
    if last:
        pieces.append(last)
    return pieces


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
        chunks.append(
            Chunk(article_id=article.id, index=len(chunks), text=text[start:end], char_start=start, char_end=end)
        )
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
