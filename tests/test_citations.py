"""Citations are located in the stored text, checked at their offsets and numbered by code."""

from __future__ import annotations

from datetime import date

import pytest

from newsdesk.models import AnswerSentence, Citation, Passage
from newsdesk.text import fold
from retrieval.citations import CitationBook, check, locate, render

ARTICLE = (
    "ISLAMABAD: The home secretary met the consul general on Wednesday.\n"
    "“The capacity of the Special Protection Unit is being enhanced,” he added.\n"
    "The CPEC is a $65-billion (US) network of roads.   It links   Xinjiang\nwith Gwadar port."
)
OTHER = "Beijing is pushing Pakistan to permit its own security. Neither side confirmed the talks."


def passage(article_id: str = "a", start: int = 0, end: int | None = None, **fields) -> Passage:
    text = {"a": ARTICLE, "b": OTHER}[article_id]
    end = len(text) if end is None else end
    return Passage(chunk_id=f"{article_id}::0", article_id=article_id, text=text[start:end],
                   char_start=start, char_end=end, **fields)


def span_of(text: str, quote: str) -> tuple[int, int]:
    start = text.index(quote)
    return start, start + len(quote)


# --- locate ------------------------------------------------------------------------------------------
def test_locate_exact_returns_offsets_of_the_verbatim_span() -> None:
    quote = "The capacity of the Special Protection Unit is being enhanced"
    start, end = locate(quote, ARTICLE)
    assert (start, end) == span_of(ARTICLE, quote)
    assert ARTICLE[start:end] == quote


def test_locate_strips_the_quote_before_searching() -> None:
    assert locate("  met the consul general \n", ARTICLE) == span_of(ARTICLE, "met the consul general")


def test_locate_folds_whitespace_and_returns_the_stored_span() -> None:
    # the quote has single spaces where the article has runs of spaces and a newline
    start, end = locate("It links Xinjiang with Gwadar port.", ARTICLE)
    assert ARTICLE[start:end] == "It links   Xinjiang\nwith Gwadar port."
    # and the other way round: the quote's own line breaks and runs of spaces do not matter
    start, end = locate("Special\n  Protection   Unit", ARTICLE)
    assert ARTICLE[start:end] == "Special Protection Unit"


def test_locate_escapes_regex_characters_in_the_quote() -> None:
    start, end = locate("a $65-billion  (US) network", ARTICLE)
    assert ARTICLE[start:end] == "a $65-billion (US) network"
    assert locate("a $65-billion (UK) network", ARTICLE) is None


def test_locate_respects_the_window() -> None:
    quote = "The capacity"
    start, _ = span_of(ARTICLE, quote)
    assert locate(quote, ARTICLE, start, start + len(quote)) == (start, start + len(quote))
    assert locate(quote, ARTICLE, start + 1) is None  # begins before the window
    assert locate(quote, ARTICLE, 0, start + len(quote) - 1) is None  # ends after it
    folded = "It links Xinjiang"
    begin = ARTICLE.index("It links")
    assert locate(folded, ARTICLE, begin, len(ARTICLE)) is not None
    assert locate(folded, ARTICLE, 0, begin + len(folded)) is None  # the stored span is longer


@pytest.mark.parametrize(
    "quote", ["", "   \n", "The capacity of the Special Police Unit", "enhanced,” she added"]
)
def test_locate_returns_none_when_absent(quote: str) -> None:
    assert locate(quote, ARTICLE) is None


def test_fold() -> None:
    assert fold("  a \n\t b   c  ") == "a b c"


# --- check -------------------------------------------------------------------------------------------
def citation(text: str, quote: str, **fields) -> Citation:
    start, end = span_of(text, quote)
    values = dict(number=1, article_id="a", quote=quote, char_start=start, char_end=end) | fields
    return Citation(**values)


def test_check_accepts_a_verbatim_quote_at_its_offsets() -> None:
    assert check(citation(ARTICLE, "met the consul general"), ARTICLE)


def test_check_rejects_wrong_offsets_text_or_article() -> None:
    good = citation(ARTICLE, "met the consul general")
    assert not check(good.model_copy(update={"char_start": good.char_start + 1}), ARTICLE)
    assert not check(good.model_copy(update={"quote": "met the consul General"}), ARTICLE)
    assert not check(good, None)  # the article is gone
    assert not check(good, OTHER)
    assert not check(good.model_copy(update={"char_end": len(ARTICLE) + 5}), ARTICLE)
    assert not check(good.model_copy(update={"char_start": -1}), ARTICLE)
    assert not check(good.model_copy(update={"char_end": good.char_start, "quote": ""}), ARTICLE)


# --- CitationBook ------------------------------------------------------------------------------------
def test_book_numbers_by_first_use_and_dedupes() -> None:
    book = CitationBook({"a": ARTICLE, "b": OTHER})
    a1 = span_of(ARTICLE, "The home secretary met the consul general on Wednesday.")
    b1 = span_of(OTHER, "Neither side confirmed the talks.")
    a2 = span_of(ARTICLE, "The CPEC is a $65-billion (US) network of roads.")
    assert book.cite(passage("a"), *a2) == 1
    assert book.cite(passage("b"), *b1) == 2
    assert book.cite(passage("a"), *a2) == 1  # the same span keeps its number
    assert book.cite(passage("a"), *a1) == 3
    assert book.cite(passage("b"), *b1) == 2
    assert [(c.number, c.article_id, c.char_start, c.char_end) for c in book.citations] == [
        (1, "a", *a2), (2, "b", *b1), (3, "a", *a1)
    ]
    for c in book.citations:
        assert check(c, {"a": ARTICLE, "b": OTHER}[c.article_id])


def test_book_copies_the_articles_metadata_and_quotes_the_stored_text() -> None:
    book = CitationBook({"a": ARTICLE})
    p = passage("a", title="Security talks", source="Dawn", url="https://example.org/a",
                published=date(2024, 11, 6))
    start, end = span_of(ARTICLE, "he added.")
    assert book.cite(p, start, end) == 1
    (c,) = book.citations
    assert (c.title, c.source, c.url, c.published) == ("Security talks", "Dawn", "https://example.org/a",
                                                       date(2024, 11, 6))
    assert c.quote == "he added."


@pytest.mark.parametrize(
    ("article_id", "start", "end", "expected"),
    [
        ("a", 0, 10, "ISLAMABAD?"),  # the stored text differs from what the caller quotes
        ("a", 0, 10, "islamabad:"),
        ("a", 5, 5, None),  # empty span
        ("a", -1, 4, None),
        ("a", 10, len(ARTICLE) + 1, None),  # past the end
        ("missing", 0, 4, None),  # unknown article
    ],
)
def test_book_refuses_spans_that_do_not_verify(
    article_id: str, start: int, end: int, expected: str | None
) -> None:
    book = CitationBook({"a": ARTICLE})
    p = passage("a").model_copy(update={"article_id": article_id})
    assert book.cite(p, start, end, expected) is None
    assert book.citations == []
    # a refused span uses up no number
    assert book.cite(passage("a"), 0, 10, "ISLAMABAD:") == 1


def test_book_cite_quote_locates_within_the_passage_only() -> None:
    book = CitationBook({"a": ARTICLE})
    second_line = ARTICLE.index("“The capacity")
    p = passage("a", second_line, ARTICLE.index("The CPEC"))
    assert book.cite_quote(p, "Special  Protection\nUnit is being enhanced") == 1
    assert book.citations[0].quote == "Special Protection Unit is being enhanced"
    assert book.cite_quote(p, "met the consul general") is None  # in the article, not in this passage
    assert book.cite_quote(p, "Special Police Unit") is None
    assert book.cite_quote(passage("b"), "Neither side") is None  # no text for article b in this book
    assert len(book.citations) == 1


# --- render ------------------------------------------------------------------------------------------
def test_render_puts_markers_after_each_sentence() -> None:
    sentences = [
        AnswerSentence(text="The unit is being enhanced.", citations=[1, 2]),
        AnswerSentence(text="No source for this one."),
        AnswerSentence(text="The talks were not confirmed.", citations=[3]),
    ]
    assert render(sentences) == (
        "The unit is being enhanced. [1][2] No source for this one. The talks were not confirmed. [3]"
    )
    assert render([]) == ""
