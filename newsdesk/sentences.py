"""Sentences with exact character offsets: the one sentence segmenter that ingest and retrieval share.

Chunks are packed from these sentences (:mod:`ingest.chunking`), the answerer scores and quotes
:func:`answer_sentences` (whose vectors ingest precomputes, :mod:`newsdesk.sentence_vectors`), the digest
leads with the first one, and titles are cut from them (:mod:`ingest.metadata`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pysbd

_LINES = re.compile(r"[^\n]+")

#: Lines longer than this are not prose paragraphs (a dump, a table flattened onto one line, minified
#: text): pysbd's cost grows faster than linearly with a line's length, so they are cut at sentence-like
#: boundaries by a bounded window instead (see :func:`_long_line_spans`).
LONG_LINE = 10_000
#: The window a long line is cut in: each cut falls at the last sentence end (else space) inside it.
WINDOW = 2_000
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s+")


@dataclass(frozen=True)
class Span:
    """A sentence: ``text[start:end]``, surrounding whitespace excluded."""

    start: int
    end: int


@lru_cache(maxsize=1)
def segmenter() -> pysbd.Segmenter:
    """The one English pysbd segmenter (rule-based, no downloaded data), built once."""
    return pysbd.Segmenter(language="en", clean=False)


def trim(text: str, start: int, end: int) -> Span | None:
    """``text[start:end]`` as a span without its surrounding whitespace, or None when nothing is left."""
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
        if (span := trim(text, cursor, match.end())) is not None:
            spans.append(span)
        cursor = match.end()
    if (span := trim(text, cursor, end)) is not None:
        spans.append(span)
    return spans


def _line_spans(text: str, start: int, end: int) -> list[Span]:
    line = text[start:end]
    # The segmenter's processor alone: Segmenter.segment() would also recover character spans by
    # regex-searching every sentence from the start of the text, quadratic in long articles.
    spans: list[Span] = []
    cursor = 0
    for sentence in segmenter().processor(line).process() or []:
        sentence = sentence.strip()
        found = line.find(sentence, cursor) if sentence else -1
        if found < 0:
            continue  # altered by the segmenter; the gap is filled below
        if (gap := trim(text, start + cursor, start + found)) is not None:
            spans.append(gap)
        spans.append(Span(start + found, start + found + len(sentence)))
        cursor = found + len(sentence)
    if (tail := trim(text, start + cursor, end)) is not None:
        spans.append(tail)
    return spans
