"""Citations are checked, not trusted: quotes are located in the stored article and numbered by code."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from newsdesk.models import AnswerSentence, Citation, Passage
from newsdesk.text import fold


def locate(quote: str, text: str, start: int = 0, end: int | None = None) -> tuple[int, int] | None:
    """Find ``quote`` in ``text[start:end]``: exactly first, else with whitespace folded.

    Returns:
        (char_start, char_end) of the verbatim span of ``text``, or None when it is not there.
    """
    quote = quote.strip()
    if not quote:
        return None
    end = len(text) if end is None else end
    found = text.find(quote, start, end)
    if found >= 0:
        return found, found + len(quote)
    words = fold(quote).split(" ")
    pattern = re.compile(r"\s+".join(re.escape(w) for w in words))
    match = pattern.search(text, start, end)
    return (match.start(), match.end()) if match else None


def check(citation: Citation, article_text: str | None) -> bool:
    """True when the citation's quote is verbatim in the article at the stated offsets."""
    return (
        article_text is not None
        and 0 <= citation.char_start < citation.char_end <= len(article_text)
        and article_text[citation.char_start : citation.char_end] == citation.quote
    )


@dataclass
class CitationBook:
    """Assigns citation numbers in order of first use, one number per distinct (article, span).

    Only spans verified against the stored article text get a number.
    """

    article_texts: dict[str, str]
    citations: list[Citation] = field(default_factory=list)
    _numbers: dict[tuple[str, int, int], int] = field(default_factory=dict)

    def cite(self, passage: Passage, char_start: int, char_end: int, expected: str | None = None) -> int | None:
        """Number for ``passage``'s article at ``[char_start, char_end)``, or None if it does not verify.

        With ``expected``, the stored text at those offsets must equal it exactly.
        """
        text = self.article_texts.get(passage.article_id)
        if text is None or not (0 <= char_start < char_end <= len(text)):
            return None
        if expected is not None and text[char_start:char_end] != expected:
            return None
        key = (passage.article_id, char_start, char_end)
        if key not in self._numbers:
            citation = Citation(
                number=len(self.citations) + 1,
                article_id=passage.article_id,
                quote=text[char_start:char_end],
                char_start=char_start,
                char_end=char_end,
                title=passage.title,
                source=passage.source,
                url=passage.url,
                published=passage.published,
            )
            self._numbers[key] = citation.number
            self.citations.append(citation)
        return self._numbers[key]

    def cite_quote(self, passage: Passage, quote: str) -> int | None:
        """Number for ``quote`` if it lies verbatim (whitespace-folded) within ``passage``, else None."""
        text = self.article_texts.get(passage.article_id)
        if text is None:
            return None
        span = locate(quote, text, passage.char_start, passage.char_end)
        return self.cite(passage, *span) if span else None


def render(sentences: list[AnswerSentence]) -> str:
    """Answer text with each sentence followed by its markers: ``"Sentence one. [1][2] Two. [3]"``."""
    parts = []
    for sentence in sentences:
        markers = "".join(f"[{n}]" for n in sentence.citations)
        parts.append(f"{sentence.text} {markers}".strip() if markers else sentence.text)
    return " ".join(parts)
