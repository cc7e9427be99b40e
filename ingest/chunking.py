"""Sentence-aware chunking that keeps exact character offsets into the article text."""

from __future__ import annotations

import re

from newsdesk.models import Article, Chunk
from newsdesk.sentences import Span, sentence_spans, trim

_SPACE = re.compile(r"\s")

#: Bump when a change to this module (or to the sentences of :mod:`newsdesk.sentences`) changes the chunks
#: made from the same text, so that stored articles are re-chunked on the next ingest.
CHUNKER_VERSION = 2


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
        piece = trim(text, start, cut)
        if piece:
            pieces.append(piece)
        start = cut
    last = trim(text, start, span.end)
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
