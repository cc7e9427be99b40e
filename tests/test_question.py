"""Question analysis (retrieval/question.py) and the answer pieces built on it: items, short answers, partial text.

No model is loaded: these are the rules the fitted answerer's features and its short answer rest on.
"""

from __future__ import annotations

import pytest

from retrieval.answer import _compatible, _items_of, partial_text, short_item
from retrieval.answer_types import has_type, item_spans
from retrieval.question import analyze


@pytest.mark.parametrize(
    ("question", "kind", "unit", "focus"),
    [
        ("Which US company walked away from the Iraq contract?", "place", None, {"compani"}),
        ("Who took over as coach after Lewis was sacked?", "name", None, set()),
        ("How many quarries does Aggregate Industries operate?", "quantity", None, {"quarri"}),
        ("What price did Multiplex shares close at?", "quantity", "money", set()),
        ("How much did Ask Jeeves pay for Bloglines?", "quantity", "money", set()),
        ("What percentage of voters backed the plan?", "quantity", "percent", set()),
        ("What share of union members backed the deal?", "quantity", "percent", set()),
        ("When was the stadium finished?", "time", None, set()),
        ("What sentence was Nicholas Jacobsen given?", "quantity", "duration", {"sentenc"}),
        ("How long was the striker banned for?", "quantity", "duration", set()),
        ("How many people did the ban affect?", "quantity", None, {"peopl"}),
        ("What pay rise did the dock workers accept?", "quantity", None, {"pay"}),  # a % as often as money
        ("Which ministries did not reply to requests for comment?", None, None, {"ministri"}),
        ("Why did India order the deportation of the actress?", None, None, set()),
    ],
)
def test_question_kind_unit_and_focus(question: str, kind, unit, focus) -> None:
    q = analyze(question)
    assert (q.kind, q.unit) == (kind, unit)
    assert focus <= set(q.focus)


def test_question_words_constraints_and_predicate() -> None:
    q = analyze("What is the latest death toll from the 2024 Brackenford floods?")
    assert "latest" not in q.tokens  # a temporal word asks when, not what: no sentence needs to say it
    assert {"death", "toll", "brackenford"} <= q.tokens
    assert q.constraints == {"2024"}
    assert "brackenford" not in q.predicate and {"death", "toll"} <= q.predicate  # names are the subject


def test_follow_up_borrows_the_previous_question_for_the_query_only() -> None:
    q = analyze("And in Lahore?", "How many police guard Chinese workers in Karachi?", follow_up=True)
    assert "Karachi" in q.query and "karachi" in q.borrowed and "karachi" not in q.tokens
    assert q.explanatory is False and analyze("How did it happen?").explanatory
    assert analyze("Has either government confirmed the deal?").yes_no


def test_items_keep_their_unit_and_money_questions_want_money() -> None:
    text = "Shares fell 16% to a four month low of A$4.50, and 142 quarries were sold for £1.8bn."
    spans = {text[s:e] for _, s, e in item_spans(text, "quantity", frozenset())}
    assert {"16%", "A$4.50", "142 quarries", "£1.8bn"} <= spans
    money = {text[s:e] for _, s, e in _items_of(text, analyze("What price did the shares close at?"))}
    assert money == {"A$4.50", "£1.8bn"}
    percent = {text[s:e] for _, s, e in _items_of(text, analyze("What percentage did the shares fall?"))}
    assert percent == {"16%"}
    text = "He was jailed for 18 months and banned for two years after hacking 400 accounts."
    terms = {text[s:e] for _, s, e in _items_of(text, analyze("What sentence was he given?"))}
    assert terms == {"18 months", "two years"}


def test_a_possessive_ends_a_name() -> None:
    q = analyze("Who won the women's singles title in 2019?")
    text = "Romania's Simona Halep beats Serena Williams to win the title."
    assert {text[s:e] for _, s, e in _items_of(text, q)} >= {"Simona Halep", "Serena Williams"}


@pytest.mark.parametrize(
    ("question", "sentence", "expected"),
    [
        # one item of the asked kind: shown verbatim
        ("How much did each applicant pay Icann?", "Applicants paid £23,000 apiece to be considered.", "£23,000"),
        ("What price did the shares close at?", "The shares recovered to close 16% down at A$4.67.", "A$4.67"),
        # the noun asked about stands beside one of two items
        ("Which airline agreed to buy the jets?", "The airline, SpiceJet, agreed to buy jets, Boeing said.",
         "SpiceJet"),
        # two players and nothing to tell which won: no short answer
        ("Who won the women's singles title in 2019?",
         "Romania's Simona Halep beats Serena Williams to win the 2019 title.", None),
        # a why question keeps a sentence answer
        ("Why did the shares fall?", "The shares fell 19% after the firm said it would make no money.", None),
        # an opening capitalised word is no name
        ("Who runs the project?", "Currently the project has no leader.", None),
    ],
)
def test_short_item(question: str, sentence: str, expected) -> None:
    assert short_item(analyze(question), sentence, {}) == expected


def test_items_agree_when_one_contains_the_other_or_they_share_a_word() -> None:
    assert _compatible({"2015"}, {"dec-2015"})
    assert _compatible({"ashleigh barty"}, {"barty"})
    assert not _compatible({"37"}, {"41"})


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What was the name of the truck driver?", "don't say what the name of the truck driver was."),
        ("Who is the man charged with the murder?", "don't say who the man charged with the murder is."),
        ("How many people were killed?", "don't say the answer to “How many people were killed?”."),
        ("What salary is Glenn Hoddle being paid?", "don't say what salary Glenn Hoddle is being paid."),
        ("What sentence was Nicholas Jacobsen given?", "don't say what sentence Nicholas Jacobsen was given."),
        ("What was the price of Bloglines?", "don't say what the price of Bloglines was."),
    ],
)
def test_partial_text_names_the_story_and_the_missing_detail(question: str, expected: str) -> None:
    text = partial_text("Karachi airport attack kills two", analyze(question))
    assert text.startswith("The articles cover “Karachi airport attack kills two” but ")
    assert text.endswith(expected)


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Hideki Matsuyama Wins The Masters!", True),
        ("Tiger Woods of the PGA Tour won again.", True),
        ("Qazi said the talks had failed.", True),
        # a club, a list, a league: capitalised runs that are no person's name, also where the question's
        # own words cut the run ("Augusta National" of "Augusta National Golf Club")
        ("The 2021 Masters Tournament runs April 8-11 at Augusta National Golf Club.", False),
        ("Who's making Assassin's Creed: Crew List ; Director.", False),
        ("The Premier League said it would appeal.", False),
    ],
)
def test_a_who_question_wants_a_person_not_an_organisation(sentence: str, expected: bool) -> None:
    assert has_type(sentence, "name", "Who won the Masters golf tournament in 2021?") is expected
