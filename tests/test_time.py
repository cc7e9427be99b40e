"""Time-aware answers (issue 11): as-of dates, time windows in questions, latest-wins answers, timeline eval."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals import timeline
from evals.harness import QuestionResult
from newsdesk.app import cli
from newsdesk.models import Answer, Citation, Passage
from retrieval.base import SearchFilters
from retrieval.citations import CitationBook
from retrieval.recency import Mention, Timeline, compose, question_mode, stale_note
from retrieval.timeframe import find_window, narrow

AS_OF = date(2024, 3, 13)  # a Wednesday


# --- windows ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("question", "since", "until"),
    [
        ("What did the union say yesterday?", date(2024, 3, 12), date(2024, 3, 13)),
        ("What happened on Monday?", date(2024, 3, 11), date(2024, 3, 12)),
        ("What did they decide on Wednesday?", date(2024, 3, 6), date(2024, 3, 7)),  # the one before as-of
        ("Who resigned last week?", date(2024, 3, 4), date(2024, 3, 10)),  # Monday to Sunday
        ("Who resigned this week?", date(2024, 3, 11), AS_OF),
        ("What was agreed this month?", date(2024, 3, 1), AS_OF),
        ("What was agreed last month?", date(2024, 2, 1), date(2024, 2, 29)),
        ("What was agreed in January?", date(2024, 1, 1), date(2024, 1, 31)),
        ("What was agreed in May?", date(2023, 5, 1), date(2023, 5, 31)),  # May is still to come: last year's
        ("What was reported in the past 3 days?", date(2024, 3, 10), AS_OF),
        ("What changed since March 4?", date(2024, 3, 4), AS_OF),
        ("What was the toll as of 5 March?", None, date(2024, 3, 5)),
        ("What was said after Jan. 22?", date(2024, 1, 22), AS_OF),
        ("What was reported before 2024-02-01?", None, date(2024, 2, 1)),
    ],
)
def test_relative_phrases_become_publication_windows(question: str, since: date | None, until: date) -> None:
    window = find_window(question, AS_OF)
    assert window is not None
    assert (window.since, window.until) == (since, until)
    assert window.phrases


def test_questions_without_time_phrases_have_no_window() -> None:
    assert find_window("What is the latest death toll from the floods?", AS_OF) is None
    assert find_window("On what date did shareholders approve the takeover?", AS_OF) is None
    # bare dates name events, not publication: they are left to ranking
    assert find_window("If the general election is on 5 May, by what date must people register?", AS_OF) is None
    assert find_window("What was the death toll from the 7 July 2005 London bombings?", AS_OF) is None
    assert find_window("How much did it rise between March 4 and March 12?", AS_OF) is None


def test_an_event_named_instead_of_a_date_is_reported_unresolved_and_not_applied() -> None:
    window = find_window("What has the mayor done since the election?", AS_OF)
    assert window is not None and window.since is None and window.until is None
    assert window.unresolved == ("since the election",)
    filters, _ = narrow("What has the mayor done since the election?", SearchFilters(as_of=AS_OF))
    assert filters.since is None and filters.until == AS_OF


def test_the_as_of_date_clamps_until_and_narrow_keeps_explicit_filters() -> None:
    assert SearchFilters(as_of=AS_OF).until == AS_OF
    assert SearchFilters(until=date(2024, 3, 1), as_of=AS_OF).until == date(2024, 3, 1)
    filters, window = narrow("Who resigned last week?", SearchFilters(since=date(2024, 3, 6), sources=["Wire"]),
                             AS_OF)
    assert (filters.since, filters.until, filters.sources, filters.as_of) == (
        date(2024, 3, 6), date(2024, 3, 10), ["Wire"], AS_OF)
    assert window is not None and window.to_json()["since"] == "2024-03-04"


# --- latest wins -----------------------------------------------------------------------------------------
TEXTS = {
    "a": "The toll rose to 24 on Monday, officials said.",
    "b": "The toll has risen to 31, officials said on Tuesday. Officials had put the toll at 24 last week.",
    "c": "Police said 29 people had died.",
}


class _Cand:
    def __init__(self, article: str, start: int, end: int, published: date, source: str) -> None:
        text = TEXTS[article]
        self.passage = Passage(chunk_id=f"{article}::0", article_id=article, text=text, char_start=0,
                               char_end=len(text), source=source, published=published)
        self.start, self.end, self.text, self.relevance = start, end, text[start:end], 0.6


def _mention(article: str, sentence: int, value: str, published: date, source: str, old: bool = False,
             score: float = 1.0) -> Mention:
    spans = [(0, TEXTS[article].index(".") + 1)]
    if article == "b":
        spans.append((spans[0][1] + 1, len(TEXTS[article])))
    start, end = spans[sentence]
    return Mention(_Cand(article, start, end, published, source), value, "count", score, old)


def test_the_newest_value_wins_over_a_background_restatement_and_the_old_one_is_mentioned() -> None:
    found = [
        _mention("a", 0, "24", date(2024, 3, 4), "Wire"),
        _mention("b", 0, "31", date(2024, 3, 12), "Herald", score=1.2),
        _mention("b", 1, "24", date(2024, 3, 12), "Herald", score=0.9),  # background paragraph
    ]
    book = CitationBook(TEXTS)
    sentences = compose("What is the latest toll?", found, "latest", book)
    assert sentences is not None
    assert sentences[0].text == "31, as of 12 March 2024 (Herald);" and sentences[1].text == "earlier reports said 24."
    cited = {c.number: c for c in book.citations}
    assert cited[sentences[0].citations[0]].article_id == "b"
    assert cited[sentences[1].citations[0]].article_id == "a"  # the report that first gave 24
    for c in book.citations:  # every quote verbatim at its offsets
        assert TEXTS[c.article_id][c.char_start:c.char_end] == c.quote
    assert Timeline.build(found).first_seen["24"] == date(2024, 3, 4)


def test_two_outlets_disagreeing_on_the_newest_day_are_shown_side_by_side() -> None:
    found = [
        _mention("a", 0, "24", date(2024, 3, 4), "Wire"),
        _mention("b", 0, "31", date(2024, 3, 12), "Herald", score=1.2),
        _mention("c", 0, "29", date(2024, 3, 12), "Courier"),
    ]
    sentences = compose("How many died?", found, None, CitationBook(TEXTS))
    assert sentences is not None
    lead = " ".join(s.text for s in sentences[:2])
    assert lead.startswith("Reports differ as of 12 March 2024:")
    assert "31 (Herald)" in lead and "29 (Courier)" in lead


def test_a_change_is_computed_from_two_cited_reports() -> None:
    found = [
        _mention("a", 0, "24", date(2024, 3, 4), "Wire"),
        _mention("b", 0, "31", date(2024, 3, 12), "Herald"),
    ]
    question = "By how much did the toll rise between March 4 and March 12?"
    assert question_mode(question) == "change"
    sentences = compose(question, found, question_mode(question), CitationBook(TEXTS))
    assert sentences is not None
    assert sentences[0].text.startswith("7: from 24 (4 March 2024, Wire)")
    assert "to 31 (12 March 2024, Herald)" in sentences[1].text
    same_year = compose(question, found, "change", CitationBook(TEXTS), as_of=date(2024, 3, 20))
    assert same_year is not None and same_year[0].text.startswith("7: from 24 (4 March, Wire)")
    assert sentences[0].citations != sentences[1].citations


def test_one_value_and_no_time_question_leaves_the_answer_alone() -> None:
    found = [_mention("a", 0, "24", date(2024, 3, 4), "Wire")]
    assert compose("How many died?", found, None, CitationBook(TEXTS)) is None
    assert question_mode("What is the current toll?") == "latest"
    assert question_mode("How many people died?") is None


def test_an_answer_resting_only_on_old_articles_says_so() -> None:
    citation = Citation(number=1, article_id="a", quote="x", char_start=0, char_end=1, published=date(2024, 1, 2))
    answer = Answer(question="q", text="x [1]", citations=[citation])
    assert "2 January 2024" in (stale_note(answer, date(2024, 3, 13), 30) or "")
    assert stale_note(answer, date(2024, 1, 20), 30) is None


# --- timeline eval rules -----------------------------------------------------------------------------------
def test_disagreement_needs_every_figure_and_other_kinds_any() -> None:
    assert timeline.matches("Reports differ: 37 (Wire); 33 (Herald).", ["37", "33"], "disagreement") == "37 + 33"
    assert timeline.matches("The toll has risen to 37.", ["37", "33"], "disagreement") is None
    assert timeline.matches("The toll has risen to 37.", ["37", "33"], "latest") == "37"


def test_a_citation_published_after_as_of_is_a_failure_and_kinds_are_scored_apart() -> None:
    late = Citation(number=1, article_id="late", quote="x", char_start=0, char_end=1, published=date(2024, 3, 20))
    answer = Answer(question="q", text="x [1]", citations=[late])
    assert timeline.cited_after(answer, date(2024, 3, 13)) == [
        "cites [1] late, published 2024-03-20 after as_of 2024-03-13"]
    assert timeline.cited_after(answer, date(2024, 3, 20)) == []
    rows = [
        QuestionResult(id="1", question="q", answerable=True, kind="latest", correct=True),
        QuestionResult(id="2", question="q", answerable=True, kind="latest", correct=True,
                       failures=["cites [1] late, published 2024-03-20 after as_of 2024-03-13"]),
        QuestionResult(id="3", question="q", answerable=False, kind="unanswerable", abstained=True),
    ]
    assert timeline.accuracy_by_kind(rows) == {"latest": 0.5, "unanswerable": 1.0}
    assert timeline.overall_accuracy(rows) == pytest.approx(2 / 3)


# --- end to end through `newsdesk ask` ---------------------------------------------------------------------
REVISIONS = [
    {"id": "toll-1", "title": "Floods kill 24 in Brackenford", "source": "Northern Wire", "published": "2024-03-04",
     "text": "BRACKENFORD, March 4 (Northern Wire) - Floods in the Brackenford valley have killed 24 people, "
             "the regional emergency office said on Monday. Rescue teams were searching villages downstream."},
    {"id": "toll-2", "title": "Brackenford flood toll rises to 31", "source": "Coastal Herald",
     "published": "2024-03-12",
     "text": "BRACKENFORD, 12 March (Coastal Herald) - The number of people killed by the floods in the Brackenford "
             "valley has risen to 31, the regional emergency office said on Tuesday. The office had put the toll "
             "at 24 last week. Clean-up work continued in the town centre."},
    {"id": "rail", "title": "Rail line reopens", "source": "Northern Wire", "published": "2024-03-08",
     "text": "The rail line between Brackenford and Osterby reopened on Friday after engineers repaired a "
             "damaged bridge, the operator said."},
]


def invoke(*args: str):
    return CliRunner().invoke(cli.app, list(args))


@pytest.fixture(scope="module")
def dated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = tmp_path_factory.mktemp("time-corpus")
    (corpus / "toll.jsonl").write_text("".join(json.dumps(d) + "\n" for d in REVISIONS), encoding="utf-8")
    data = tmp_path_factory.mktemp("time-data")
    result = invoke("ingest", str(corpus), "--data-dir", str(data))
    assert result.exit_code == 0, result.stderr
    return data


def ask(data: Path, question: str, *options: str) -> Answer:
    result = invoke("ask", question, "--json", *options, "--data-dir", str(data))
    assert result.exit_code == 0, result.stderr
    return Answer.model_validate_json(result.stdout)


@pytest.mark.slow
def test_latest_toll_is_the_newest_report_with_its_date_and_the_superseded_one(dated_store: Path) -> None:
    answer = ask(dated_store, "What is the latest death toll from the Brackenford floods?", "--as-of", "2024-03-20")
    assert not answer.abstained
    assert answer.text.startswith("31, as of 12 March (Coastal Herald);")  # the year only when not as-of's
    assert "earlier reports said 24" in answer.text
    assert answer.metadata["as_of"] == "2024-03-20"
    by_number = {c.number: c for c in answer.citations}
    assert by_number[1].article_id == "toll-2" and by_number[1].published == date(2024, 3, 12)


@pytest.mark.slow
def test_as_of_ignores_later_articles_and_never_cites_them(dated_store: Path) -> None:
    answer = ask(dated_store, "What is the latest death toll from the Brackenford floods?", "--as-of", "2024-03-05")
    assert not answer.abstained and "24" in answer.text and "31" not in answer.text
    assert all(c.published is not None and c.published <= date(2024, 3, 5) for c in answer.citations)


@pytest.mark.slow
def test_the_question_time_window_shows_in_json_and_filters(dated_store: Path) -> None:
    answer = ask(dated_store, "Which rail line reopened last week?", "--as-of", "2024-03-13")
    assert answer.metadata["time_window"]["since"] == "2024-03-04"
    assert answer.metadata["time_window"]["until"] == "2024-03-10"
    assert {c.article_id for c in answer.citations} <= {"rail", "toll-1"}
    old = ask(dated_store, "When did the rail line between Brackenford and Osterby reopen?", "--as-of", "2024-06-30")
    assert not old.abstained
    assert "stale" in old.metadata and old.metadata["stale"] in old.text


@pytest.mark.slow
def test_since_an_event_is_resolved_to_its_first_report(dated_store: Path) -> None:
    answer = ask(dated_store, "How many people have died since the floods?", "--as-of", "2024-03-20")
    assert answer.metadata["time_window"]["since"] == "2024-03-04"  # the first article naming the floods
    assert answer.metadata["time_window"]["phrases"] == ["since the floods"]
    nothing = ask(dated_store, "What has changed since the coronation?", "--as-of", "2024-03-20")
    assert nothing.metadata["time_window"]["unresolved"] == ["since the coronation"]


def test_as_of_rejects_a_malformed_date() -> None:
    result = invoke("ask", "What happened?", "--as-of", "last tuesday")
    assert result.exit_code == 2
    assert "--as-of wants a date like 2024-10-31" in result.stderr
