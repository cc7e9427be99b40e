"""Pydantic models that cross module boundaries: the contract between ingest, retrieval, CLI, bot, evals."""

from __future__ import annotations

import hashlib
from datetime import date

from pydantic import BaseModel, Field, computed_field


def text_hash(text: str) -> str:
    """SHA-256 hex digest of ``text`` (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Article(BaseModel):
    """One news article as loaded, before chunking."""

    id: str
    text: str
    title: str = ""
    source: str = ""  # outlet, e.g. "Reuters"
    author: str = ""
    published: date | None = None
    url: str = ""
    origin: str = ""  # where it came from: a file path or URL (used by --prune)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def content_hash(self) -> str:
        """Hash of the text alone: equal hashes mean duplicate content."""
        return text_hash(self.text)

    def fingerprint(self) -> str:
        """Hash of text and metadata: a changed fingerprint means the stored copy must be replaced."""
        meta = "\x1f".join(
            [self.title, self.source, self.author, self.published.isoformat() if self.published else "",
             self.url]
        )
        return text_hash(self.text + "\x1e" + meta)


class Chunk(BaseModel):
    """A span of an article: ``article.text[char_start:char_end] == text``."""

    article_id: str
    index: int
    text: str
    char_start: int
    char_end: int

    @property
    def id(self) -> str:
        """Deterministic chunk id: article id plus index."""
        return f"{self.article_id}::{self.index}"


class Passage(BaseModel):
    """A retrieved chunk with the metadata of its article and its retrieval score."""

    chunk_id: str
    article_id: str
    text: str
    char_start: int
    char_end: int
    title: str = ""
    source: str = ""
    url: str = ""
    published: date | None = None
    score: float = 0.0


class Citation(BaseModel):
    """A numbered source: a verbatim quote of a stored article at the stated offsets."""

    number: int
    article_id: str
    quote: str
    char_start: int
    char_end: int
    title: str = ""
    source: str = ""
    url: str = ""
    published: date | None = None


class AnswerSentence(BaseModel):
    """One sentence of an answer and the citation numbers that support it."""

    text: str
    citations: list[int] = Field(default_factory=list)


class RelatedArticle(BaseModel):
    """An article that may be related to an unanswered question (shown uncited)."""

    article_id: str
    title: str = ""
    source: str = ""


#: What an abstention says, wherever it is shown (CLI, bot, feedback, a conversation's history).
ABSTAIN_TEXT = "The articles don't say."


class Answer(BaseModel):
    """What every answerer returns and every front end shows."""

    question: str
    text: str  # answer with markers, e.g. "The unit is being enhanced [1]."
    #: the asked-for item alone ("Two", "SpiceJet"), verbatim from the first cited sentence; shown first,
    #: and only when the evidence is unambiguous (None otherwise, and for why/how questions)
    short: str | None = None
    sentences: list[AnswerSentence] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    abstained: bool = False
    related: list[RelatedArticle] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)  # milliseconds per stage
    answerer: str = ""
    metadata: dict[str, object] = Field(default_factory=dict)  # e.g. repaired/dropped claims, fallback


class IngestFailure(BaseModel):
    """An input that could not be ingested and why."""

    source: str
    error: str


class IngestReport(BaseModel):
    """Summary of one ``newsdesk ingest`` run (also its ``--json`` output)."""

    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    duplicates: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    failed: list[IngestFailure] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    chunks_embedded: int = 0
    #: answer sentences of the new chunks embedded for the answerer (those of known texts are reused)
    sentences_embedded: int = 0
    seconds: float = 0.0
