"""Unit tests of bot/formatting.py: Discord's limits on messages and embeds."""

from __future__ import annotations

import random
import re
from datetime import date

import pytest

from bot.formatting import (
    CITATION_MARKER,
    EMBED_FIELDS_LIMIT,
    EMBED_TOTAL_LIMIT,
    EMBEDS_PER_MESSAGE,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    MESSAGE_LIMIT,
    about_embed,
    answer_text,
    citation_field,
    cooldown_message,
    group_embeds,
    incident_message,
    ingest_summary,
    render_answer,
    source_embeds,
    sources_embed,
    split_message,
    thread_name,
    too_long_message,
    truncate,
)
from newsdesk.models import ABSTAIN_TEXT, Answer, Citation, IngestFailure, IngestReport, RelatedArticle


def _citation(n: int, *, quote: str = "A quoted passage.", title: str = "Title", source: str = "Reuters",
              url: str = "https://example.com/a", published: date | None = date(2024, 11, 5)) -> Citation:
    return Citation(number=n, article_id=f"art{n}", quote=quote, char_start=0, char_end=len(quote),
                    title=title, source=source, url=url, published=published)


def _sentences(count: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    words = "security unit capacity minister province talks attack port engineers agreement".split()
    out = []
    for _ in range(count):
        body = " ".join(rng.choice(words) for _ in range(rng.randint(5, 30)))
        marker = f" [{rng.randint(1, 40)}]" if rng.random() < 0.7 else ""
        out.append(body.capitalize() + marker + ".")
        if rng.random() < 0.1:
            out.append("\n\n")
    return " ".join(out)


def _squeeze(text: str) -> str:
    return "".join(text.split())


def _assert_valid_split(text: str, chunks: list[str], limit: int) -> None:
    assert all(0 < len(c) <= limit for c in chunks)
    assert _squeeze("".join(chunks)) == _squeeze(text), "splitting must not lose or add text"
    # Every marker survives intact: same markers, in the same order, none cut in two.
    assert [m.group() for c in chunks for m in CITATION_MARKER.finditer(c)] == [
        m.group() for m in CITATION_MARKER.finditer(text)
    ]
    for chunk in chunks:
        assert not re.search(r"\[\d*$", chunk), f"chunk ends inside a marker: {chunk[-10:]!r}"
        assert not re.match(r"^[\d,\s]*\]", chunk), f"chunk starts inside a marker: {chunk[:10]!r}"


# --- split_message ---------------------------------------------------------------------------------


def test_short_text_is_one_message():
    assert split_message("The unit is being enhanced [1].") == ["The unit is being enhanced [1]."]
    assert split_message("   ") == []
    assert split_message("x" * MESSAGE_LIMIT) == ["x" * MESSAGE_LIMIT]


def test_long_answer_splits_under_the_limit_without_losing_text():
    text = _sentences(400)
    assert len(text) > 5 * MESSAGE_LIMIT
    chunks = split_message(text)
    assert len(chunks) >= 3
    _assert_valid_split(text, chunks, MESSAGE_LIMIT)


def test_prefers_paragraph_breaks():
    first = ("First paragraph sentence [1]. " * 50).strip()  # ~1,500 characters
    second = ("Second paragraph sentence [2]. " * 30).strip()
    chunks = split_message(first + "\n\n" + second)
    assert chunks == [first, second]


def test_prefers_sentence_ends_over_spaces_and_keeps_trailing_markers():
    sentence = "The capacity of the unit is being enhanced by the province [3]. "
    text = (sentence * 40).strip()
    chunks = split_message(text)
    _assert_valid_split(text, chunks, MESSAGE_LIMIT)
    for chunk in chunks:
        assert chunk.endswith("[3]."), chunk[-20:]


def test_marker_following_a_period_stays_with_its_sentence():
    sentence = "The talks were held in Islamabad. [12] "
    text = (sentence * 80).strip()
    chunks = split_message(text)
    _assert_valid_split(text, chunks, MESSAGE_LIMIT)
    assert all(chunk.endswith("[12]") for chunk in chunks)


def test_hard_cut_never_falls_inside_a_marker():
    # No spaces at all, and the limit falls in the middle of "[12]".
    text = "a" * (MESSAGE_LIMIT - 2) + "[12]" + "b" * 100
    chunks = split_message(text)
    assert chunks[0] == "a" * (MESSAGE_LIMIT - 2)
    assert chunks[1].startswith("[12]")
    _assert_valid_split(text, chunks, MESSAGE_LIMIT)


@pytest.mark.parametrize("offset", range(0, 8))
def test_markers_at_every_position_around_the_boundary(offset):
    marker = "[1, 23]"
    head = "word " * ((MESSAGE_LIMIT - 10) // 5)
    text = head[: MESSAGE_LIMIT - offset] + marker + " tail" * 50
    chunks = split_message(text)
    _assert_valid_split(text, chunks, MESSAGE_LIMIT)


def test_space_before_a_marker_is_not_a_preferred_cut():
    text = "x" * 1990 + " claim [4] " + "y" * 50
    chunks = split_message(text)
    _assert_valid_split(text, chunks, MESSAGE_LIMIT)
    assert "claim [4]" in chunks[0] or chunks[1].startswith("claim [4]")


def test_escaped_characters_are_not_split_from_their_backslash():
    text = "a" * (MESSAGE_LIMIT - 1) + "\\*" + "b" * 10
    chunks = split_message(text)
    assert chunks[0].endswith("a")
    assert chunks[1].startswith("\\*")


def test_random_texts_keep_every_invariant():
    rng = random.Random(7)
    for trial in range(300):
        limit = rng.randint(20, 300)
        text = _sentences(rng.randint(1, 60), seed=trial)
        if rng.random() < 0.3:
            text = text.replace(" ", "")  # force hard cuts
        chunks = split_message(text, limit)
        _assert_valid_split(text, chunks, limit)


def test_truncate():
    assert truncate("short", 10) == "short"
    out = truncate("word " * 100, 50)
    assert len(out) <= 50 and out.endswith("\u2026")
    assert not truncate("a" * 48 + "\\*bold", 50).endswith("\\\u2026")


# --- answers -----------------------------------------------------------------------------------------


def test_answer_text_escapes_markdown_but_keeps_markers():
    answer = Answer(question="q", text="# Big *claim* [1] and [a link](https://x.y) [2].")
    text = answer_text(answer)
    assert "[1]" in text and "[2]" in text
    assert "\\*claim\\*" in text
    assert not text.startswith("#")


def test_abstention_lists_related_articles_uncited():
    answer = Answer(
        question="What is the capital of Australia?",
        text="whatever the answerer said",
        abstained=True,
        citations=[_citation(1)],  # must not be shown for an abstention
        related=[RelatedArticle(article_id="a1", title="Punjab security meeting", source="Dawn"),
                 RelatedArticle(article_id="a2", title="", source="")],
    )
    replies = render_answer(answer)
    assert len(replies) == 1 and replies[0].embeds == []
    content = replies[0].content or ""
    assert content.startswith(ABSTAIN_TEXT)
    assert "Possibly related" in content
    assert "Punjab security meeting \u2014 Dawn" in content
    assert "a2" in content  # falls back to the id when there is no title
    assert not CITATION_MARKER.search(content)


def test_short_answer_comes_first_in_bold_and_escaped():
    answer = Answer(question="Who?", text="Two engineers *died* in the attack. [1]", short="Two *engineers*",
                    citations=[_citation(1)])
    content = render_answer(answer)[0].content or ""
    first, rest = content.split("\n", 1)
    assert first == "**Two \\*engineers\\***"  # bold, and the item's own markup is text
    assert rest.startswith("Two engineers \\*died\\* in the attack. [1]")


def test_partial_abstention_names_the_story_and_lists_related_articles():
    text = "The articles cover “Ask Jeeves buys Bloglines” but don't say what the price was."
    answer = Answer(question="How much?", text=text, abstained=True, metadata={"partial": True},
                    related=[RelatedArticle(article_id="a1", title="Ask Jeeves buys Bloglines", source="BBC")])
    content = render_answer(answer)[0].content or ""
    assert content.startswith("The articles cover “Ask Jeeves buys Bloglines” but don't say what the price was.")
    assert "Possibly related" in content and not CITATION_MARKER.search(content)
    # an abstention not marked partial keeps the plain notice whatever its text
    plain = answer.model_copy(update={"metadata": {}})
    assert (render_answer(plain)[0].content or "").startswith(ABSTAIN_TEXT)


def test_render_answer_fits_every_limit_with_long_text_and_many_huge_citations():
    citations = [_citation(n, quote="Q" * 5000 + " end", title="T" * 400) for n in range(1, 61)]
    answer = Answer(question="q", text=_sentences(300), citations=citations)
    replies = render_answer(answer)
    assert all(r.content is None or len(r.content) <= MESSAGE_LIMIT for r in replies)
    embeds = [e for r in replies for e in r.embeds]
    for reply in replies:
        assert len(reply.embeds) <= EMBEDS_PER_MESSAGE
        assert sum(len(e) for e in reply.embeds) <= EMBED_TOTAL_LIMIT
    numbers = [int(re.match(r"\[(\d+)\]", f.name).group(1)) for e in embeds for f in e.fields]
    assert numbers == list(range(1, 61))
    text_replies = [r for r in replies if r.content]
    assert text_replies[-1].embeds, "the first sources embed rides on the last text message"


def test_source_embeds_spill_on_field_count():
    answer = Answer(question="q", text="t [1].", citations=[_citation(n) for n in range(1, 101)])
    embeds = source_embeds(answer)
    assert [len(e.fields) for e in embeds] == [25, 25, 25, 25]
    assert embeds[0].title == "Sources" and embeds[1].title == "Sources (continued)"
    for group in group_embeds(embeds):
        assert len(group) <= EMBEDS_PER_MESSAGE and sum(len(e) for e in group) <= EMBED_TOTAL_LIMIT


def test_source_embeds_spill_on_total_size():
    citations = [_citation(n, quote="word " * 400) for n in range(1, 11)]
    answer = Answer(question="q", text="t", citations=citations)
    embeds = source_embeds(answer)
    assert len(embeds) > 1
    for embed in embeds:
        assert len(embed) <= EMBED_TOTAL_LIMIT
        assert len(embed.fields) <= EMBED_FIELDS_LIMIT
        assert len(embed.title or "") <= 256


def test_no_embeds_without_citations():
    assert source_embeds(Answer(question="q", text="t")) == []
    assert render_answer(Answer(question="q", text="")) [0].content == ABSTAIN_TEXT


def test_citation_field_shows_everything_within_limits():
    name, value = citation_field(_citation(12, quote="The capacity of the unit *is* being enhanced",
                                           title="Punjab meets China", source="Dawn"))
    assert name == "[12] Punjab meets China"
    assert "Dawn" in value and "2024-11-05" in value
    assert "> The capacity of the unit \\*is\\* being enhanced" in value
    assert "(https://example.com/a)" in value


def test_huge_quote_and_title_are_truncated_with_an_ellipsis():
    name, value = citation_field(_citation(3, quote="word " * 2000, title="Title " * 200))
    assert len(name) <= FIELD_NAME_LIMIT and name.startswith("[3] ") and name.endswith("\u2026")
    assert len(value) <= FIELD_VALUE_LIMIT
    assert "\u2026" in value and value.endswith("(https://example.com/a)")


def test_quote_whitespace_is_folded_into_one_blockquote_line():
    _, value = citation_field(_citation(1, quote="line one\n\nline two\n> not a nested quote"))
    assert "> line one line two \\> not a nested quote" in value or "> line one line two > not" in value
    assert value.count("\n") <= 2


def test_unsafe_or_missing_links_are_left_out():
    assert "](" not in citation_field(_citation(1, url="javascript:alert(1)"))[1]
    assert "](" not in citation_field(_citation(1, url=""))[1]
    assert "](" not in citation_field(_citation(1, url="https://x.y/" + "a" * 3000))[1]
    _, value = citation_field(_citation(1, url="https://en.wikipedia.org/wiki/Gwadar_(city)"))
    assert "Gwadar_%28city%29)" in value


def test_missing_metadata_falls_back_gracefully():
    name, value = citation_field(_citation(1, title="", source="", published=None, url=""))
    assert name == "[1] art1"
    assert value.startswith("> ")


# --- other replies ----------------------------------------------------------------------------------


def test_thread_name():
    assert thread_name("  What   is\nhappening?  ") == "What is happening?"
    assert len(thread_name("why " * 100)) <= 100
    assert thread_name("   ") == "Question"


def test_sources_embed_stays_within_limits():
    articles = [{"article_id": f"a{i}", "title": f"Article number {i} " * 5, "source": "Reuters",
                 "published": date(2024, 1, 1 + i % 28)} for i in range(500)]
    embed = sources_embed(articles)
    assert len(embed.description) <= 4096 and len(embed) <= EMBED_TOTAL_LIMIT
    assert "of 500 articles" in embed.footer.text
    small = sources_embed([
        {"article_id": "x", "title": "Old", "published": "2023-01-01"},
        {"article_id": "y", "title": "New", "source": "Dawn", "published": date(2024, 5, 1)},
    ])
    assert small.description.index("New") < small.description.index("Old")
    assert small.footer.text == "2 articles indexed"
    assert "No articles" in sources_embed([]).description


def test_about_embed_counts_articles():
    embed = about_embed(2, "offline")
    assert embed.fields[0].value == "2"
    assert "citation" in embed.description
    assert about_embed(None).fields[0].value == "unknown"


def test_ingest_summary():
    report = IngestReport(added=["a"], unchanged=["b", "c"], chunks_embedded=7, seconds=1.25,
                          failed=[IngestFailure(source="https://x.y/z", error="timed out")] * 50)
    text = ingest_summary(report, "https://x.y/z")
    assert "1 added" in text and "2 unchanged" in text and "50 failed" in text and "7 chunks" in text
    assert "timed out" in text and len(text) <= MESSAGE_LIMIT
    assert "<https://x.y/z>" in text  # no link preview


def test_short_messages():
    assert "incident abc123" in incident_message("abc123")
    assert "limit is 500" in too_long_message(612, 500)
    assert "3 s" in cooldown_message(2.2)
