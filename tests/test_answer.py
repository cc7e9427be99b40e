"""The offline extractive answerer over the real sample store: verified quotes, numbering, abstention."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from newsdesk.app.runtime import Services
from newsdesk.errors import UsageError
from newsdesk.models import ABSTAIN_TEXT, Answer
from retrieval.answer import ExtractiveAnswerer, analyze_question, contradicts, retrieval_query
from retrieval.answer_types import answer_keys, answer_support, complete_dates, expected_type, stated_answers
from retrieval.base import Answerer, SearchFilters, Turn
from retrieval.citations import check, render
from retrieval.lexical import tokenize
from retrieval.search import constraints
from retrieval.selection import load_models
from tests.support import CUP, DEV_QUESTIONS

DEV = [json.loads(line) for line in DEV_QUESTIONS.read_text(encoding="utf-8").splitlines()
       if line.strip()]
ANSWERABLE = [item for item in DEV if item["answerable"]]
UNANSWERABLE = [item for item in DEV if not item["answerable"]]
QAZI = "000_70bec7e4b0fc20fc.txt"  # the Punjab home department's account
REUTERS = "004_ad935d4100d70209.txt"  # the Reuters report
KARACHI = "How many Chinese engineers were killed in the Karachi airport bombing?"
SPU = "What is happening to the capacity of the Special Protection Unit?"


@pytest.fixture(scope="module")
def services(sample_settings, embedder, sample_store) -> Services:
    return Services.from_settings(sample_settings, embedder=embedder, store=sample_store)


def assert_well_formed(answer: Answer, store) -> None:
    """Every quote verbatim at its offsets; numbers 1..n by first use; markers and citations agree."""
    texts = store.article_texts([c.article_id for c in answer.citations])
    for c in answer.citations:
        assert texts[c.article_id][c.char_start : c.char_end] == c.quote
        assert check(c, texts[c.article_id])
    assert [c.number for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    first_use = list(dict.fromkeys(n for s in answer.sentences for n in s.citations))
    assert first_use == list(range(1, len(answer.citations) + 1))
    markers = [int(m) for m in re.findall(r"\[(\d+)\]", answer.text)]
    assert list(dict.fromkeys(markers)) == first_use
    assert answer.text == render(answer.sentences)
    for sentence in answer.sentences:
        assert sentence.citations, "an answer sentence without a source"
        own = answer.citations[sentence.citations[0] - 1]
        assert own.quote == sentence.text  # the sentence shown is the quote cited first for it
    spans = [(c.article_id, c.char_start, c.char_end) for c in answer.citations]
    assert len(set(spans)) == len(spans)


@pytest.mark.slow
def test_services_build_the_extractive_answerer(services: Services) -> None:
    assert isinstance(services.answerer, ExtractiveAnswerer)
    assert isinstance(services.answerer, Answerer)
    assert services.answerer.searcher is services.searcher


@pytest.mark.slow
@pytest.mark.parametrize("item", ANSWERABLE, ids=[item["id"] for item in ANSWERABLE])
def test_dev_answers_quote_verbatim_with_consistent_numbering(services: Services, sample_store, item) -> None:
    answer = services.answerer.answer(item["question"])
    assert not answer.abstained, answer.metadata
    assert answer.citations and answer.sentences
    assert_well_formed(answer, sample_store)
    assert answer.answerer == "extractive" and answer.question == item["question"]
    assert set(answer.timings) >= {"retrieve_ms", "score_ms", "total_ms"}


@pytest.mark.slow
@pytest.mark.parametrize("item", ANSWERABLE, ids=[item["id"] for item in ANSWERABLE])
def test_dev_answers_cite_the_evidence_and_contain_an_accepted_answer(services: Services, item) -> None:
    answer = services.answerer.answer(item["question"])
    evidence = {e["doc"] for e in item["evidence"]}
    assert evidence & {c.article_id for c in answer.citations}
    assert any(alias.lower() in answer.text.lower() for alias in item["answers"]), answer.text


@pytest.mark.slow
def test_a_fact_both_articles_report_is_cited_from_both(services: Services, sample_store) -> None:
    # the home department's account and the Reuters report both tell of the two engineers killed
    answer = services.answerer.answer(KARACHI)
    assert_well_formed(answer, sample_store)
    assert {c.article_id for c in answer.citations} == {QAZI, REUTERS}
    assert all("killed two Chinese" in c.quote for c in answer.citations)


@pytest.mark.slow
@pytest.mark.parametrize("item", UNANSWERABLE, ids=[item["id"] for item in UNANSWERABLE])
def test_unanswerable_questions_abstain_without_citations(services: Services, item) -> None:
    answer = services.answerer.answer(item["question"])
    assert answer.abstained
    # either the plain abstention or the partial one naming the story covered, never a quote
    assert answer.text == ABSTAIN_TEXT or (
        answer.text.startswith("The articles cover “") and answer.metadata.get("partial")
    ), answer.text
    assert answer.citations == [] and answer.sentences == []
    assert "[" not in answer.text


@pytest.mark.slow
def test_capital_of_australia_abstains_and_lists_related_articles_uncited(services: Services) -> None:
    answer = services.answerer.answer("What is the capital of Australia?")
    assert answer.abstained and answer.citations == []
    assert {r.article_id for r in answer.related} <= {QAZI, REUTERS}


@pytest.mark.slow
@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_is_a_usage_error(services: Services, question: str) -> None:
    with pytest.raises(UsageError, match="empty"):
        services.answerer.answer(question)


@pytest.mark.slow
def test_over_long_question_is_a_usage_error(services: Services, sample_settings) -> None:
    limit = sample_settings.max_question_chars
    with pytest.raises(UsageError) as caught:
        services.answerer.answer("Why " + "x" * limit + "?")
    assert str(limit) in str(caught.value) and "\n" not in str(caught.value)
    at_limit = "Why" + "?" * (limit - 3)
    answer = services.answerer.answer(f"  {at_limit}\n")  # the limit applies once stripped
    assert answer.question == at_limit


def test_retrieval_query_borrows_the_previous_question_for_follow_ups() -> None:
    history = [Turn(question="Who met the consul?"), Turn(question=SPU, answer="It is being enhanced [1].")]
    assert retrieval_query("Who said that?", history) == f"Who said that? {SPU}"
    assert retrieval_query("and why?", history) == f"and why? {SPU}"
    long_own = "Which Pakistani ministries did not reply to Reuters' requests for comment?"
    assert retrieval_query(long_own, history) == long_own
    assert retrieval_query("Who said that?", []) == "Who said that?"
    assert retrieval_query("Who said that?", None) == "Who said that?"


@pytest.mark.slow
def test_follow_up_retrieves_with_the_previous_question(services: Services, sample_store) -> None:
    alone = services.answerer.answer("Who said that?")
    assert alone.abstained
    followed = services.answerer.answer("Who said that?", history=[Turn(question=SPU)])
    assert not followed.abstained
    assert_well_formed(followed, sample_store)
    assert any("Special Protection Unit" in c.quote and c.article_id == QAZI for c in followed.citations)


@pytest.mark.slow
def test_filters_restrict_what_is_cited(services: Services, sample_store) -> None:
    question = KARACHI
    answer = services.answerer.answer(question, filters=SearchFilters(sources=["Reuters"]))
    assert not answer.abstained
    assert_well_formed(answer, sample_store)
    assert {c.article_id for c in answer.citations} == {REUTERS}
    only_qazi = services.answerer.answer(question, filters=SearchFilters(article_ids=[QAZI]))
    assert {c.article_id for c in only_qazi.citations} == {QAZI}
    nothing = services.answerer.answer(question, filters=SearchFilters(sources=["Nobody"]))
    assert nothing.abstained and nothing.citations == [] and nothing.related == []


# --- answer types, candidate answers and answer voting ---------------------------------------------------
@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("What movie won the Oscar for Best Animated Film in 2020?", "place"),
        ("What is the premiere date of Grey's Anatomy Season 17?", "time"),
        ("What was Tesla's revenue in Q1 2021?", "quantity"),
        ("Who is the CEO of Tesla in 2021?", "name"),
        ("What is happening to the capacity of the Special Protection Unit?", None),
        # "the name of" a person wants a person's name; of anything else, any proper noun
        ("What was the name of the truck driver in the attack?", "name"),
        ("What is the name of the man who fired the shot?", "name"),
        ("What is the name of Microsoft's AR headset?", "place"),
        ("What was the name of the ship?", "place"),
    ],
)
def test_expected_type(question: str, kind: str | None) -> None:
    assert expected_type(question) == kind


def test_answer_keys_fold_spellings_of_a_date_and_skip_the_dateline() -> None:
    asked = set(tokenize("When does the season premiere?"))
    keys, _ = answer_keys("Sep 17, 2020 ... The season returns on Thursday, Nov. 12 at 9/8c.", "time", asked)
    assert keys == {"nov-12"}  # the dateline's Sep 17 is when the snippet was written
    keys, _ = answer_keys("The season premiered November 12, 2020 on ABC.", "time", asked)
    assert keys == {"nov-12"}
    assert complete_dates("The season premiered November 12, 2020 on ABC.") == {"nov-12"}
    assert complete_dates("Sep 17, 2020 ... The season returns on Thursday, Nov. 12.") == set()


def test_answer_keys_cut_names_where_the_question_speaks() -> None:
    asked = set(tokenize("Who is the CEO of Tesla?"))
    keys, _ = answer_keys("Tesla CEO Elon Musk spoke to investors in Austin.", "name", asked)
    assert keys == {"elon musk", "austin"}
    keys, _ = answer_keys("The reigning champion remains Shane Lowry of Ireland.", "name", set())
    assert {"shane lowry of ireland", "shane lowry", "ireland"} <= keys
    keys, unsure = answer_keys("Norway came out on top, ahead of Germany.", "place", set())
    assert keys == {"germany"} and unsure == {"norway"}  # a sentence's first word may just be capitalised


def test_answer_keys_read_amounts_but_not_years_or_dates() -> None:
    asked = set(tokenize("What was the revenue in Q1 2021?"))
    keys, _ = answer_keys("Revenue was $10.4 billion in Q1 2021, up 74 percent, reported on April 26, 2021.",
                          "quantity", asked)
    assert keys == {"$10.4billion", "74%"}
    keys, _ = answer_keys("The bombing killed two Chinese engineers; 2 more were hurt.", "quantity", set())
    assert keys == {"2"}  # "two" and "2" are one answer


def test_contradicts_another_year_or_edition() -> None:
    wanted = constraints("Who won the British Open in 2020?")
    assert contradicts(wanted, "Hinako Shibuno won the 2019 Women's British Open.")
    assert not contradicts(wanted, "The 2020 Open was cancelled; the 2019 champion remains.")
    assert not contradicts(wanted, "Shane Lowry remains the champion.")
    assert contradicts(constraints("Best Actor at the 92nd Academy Awards"), "Winners of the 91st Academy Awards")


def test_stated_answers_and_their_support_across_articles() -> None:
    stated = stated_answers(
        ["Norway came out on top.", "The winner was Norway, ahead of Germany.", "Sweden finished third."],
        "place", set(),
    )
    # "Norway" opening a sentence counts because another text has it mid-sentence; "Sweden" does not
    assert stated == [{"norway"}, {"norway", "germany"}, set()]
    support = answer_support(
        [{"tim buckley"}, {"buckley"}, {"bill mcnabb"}, {"tim buckley"}], ["a", "b", "c", "a"], [0.6, 0.5, 0.9, 0.8]
    )
    # article a backs Tim Buckley with its best text (0.8), b with a partial name (0.5): 1.3 against 0.9
    assert support["tim buckley"] == support["buckley"] == 1.0
    assert support["bill mcnabb"] == pytest.approx(0.9 / 1.3)
    assert answer_support([], [], []) == {}


@pytest.fixture
def services_of(settings, embedder, tmp_path) -> Callable[..., Services]:
    """Ingest ``(id, text)`` articles (``title`` formatted with ``{id}``) into a real store; its services."""
    from ingest.sync import ingest
    from newsdesk.store import Store

    def build(articles: list[tuple[str, str]], title: str = "") -> Services:
        corpus = tmp_path / "articles.jsonl"
        corpus.write_text("".join(json.dumps({"id": i, "title": title.format(id=i), "source": "Test Wire",
                                              "text": t}) + "\n" for i, t in articles), encoding="utf-8")
        store = Store.from_settings(settings)
        assert not ingest([str(corpus)], settings, store, embedder).failed
        return Services.from_settings(settings, embedder=embedder, store=store)

    return build


@pytest.fixture
def cup_services(services_of) -> Services:
    return services_of(CUP)


@pytest.mark.slow
def test_the_answer_most_articles_give_is_quoted_first(cup_services: Services) -> None:
    question = "Who won the Harbour Cup in 2031?"
    answer = cup_services.answerer.answer(question)
    assert_well_formed(answer, cup_services.store)
    assert "Selma Varga" in answer.sentences[0].text, answer.text
    assert answer.metadata["support"] == 1.0 and answer.metadata["features"]["support"] == 1.0
    assert "Tomas Reed" not in answer.text  # the 2030 edition, and a preview's guess after "Who will win?"
    # the vote is one named feature of the fitted table, and agreement across articles counts for a sentence
    models = load_models()
    assert models.selection.weights["support"] > 0
    features = answer.metadata["features"]
    assert models.selection.logit(features) > models.selection.logit({**features, "support": 0.0})


DEAL = [
    ("deal", "Harlow Search has bought Feedly Park, a service for reading blogs and news feeds. How much Harlow "
             "Search paid for Feedly Park was not revealed. The firm said the service would keep its name and "
             "its staff of twelve."),
    ("other", "Harlow Town beat Stevenage 2-1 on Saturday to go top of the league. The winning goal came in "
              "the final minute from a corner."),
]


@pytest.mark.slow
def test_an_article_saying_the_detail_was_not_revealed_gives_a_partial_answer(services_of) -> None:
    services = services_of(DEAL, title="Harlow Search buys Feedly Park")
    answer = services.answerer.answer("How much did Harlow Search pay for Feedly Park?")
    assert answer.abstained and not answer.citations, answer.text
    assert "was not revealed" in answer.metadata["undisclosed"]
    assert answer.text.startswith("The articles cover “Harlow Search buys Feedly Park” but don't say")


@pytest.mark.parametrize(
    ("sentence", "undisclosed"),
    [
        ("How much Harlow Search paid for Feedly Park was not revealed.", True),
        ("The club sold him for an undisclosed fee.", True),
        ("The company declined to say how much it paid.", True),
        # an amount stated beside the words is an answer, not a gap
        ("The deal, worth $20m, was not announced until Monday.", False),
        ("Harlow Search paid £4.5m for Feedly Park.", False),
    ],
)
def test_a_sentence_says_the_amount_asked_for_is_not_known(sentence: str, undisclosed: bool) -> None:
    from retrieval.answer import _UNDISCLOSED, _items_of

    q = analyze_question("How much did Harlow Search pay for Feedly Park?", None)
    assert (bool(_UNDISCLOSED.search(sentence)) and not _items_of(sentence, q)) is undisclosed


STRIKE = [
    ("talks", "Dock workers at the Port of Harwick rejected a pay offer of 4 percent on Monday and said a 48-hour "
              "strike would go ahead. The Harwick Port Company then raised its offer to 5 percent and added a "
              "one-off payment of £300 for every worker."),
    ("count", "Challenger Mira Osk finished 412 votes ahead of the sitting mayor Piet Laar in the Harwick mayoral "
              "election, and Laar asked for a recount. After the recount Osk was confirmed the winner by 96 votes."),
]


@pytest.fixture
def strike_services(services_of) -> Callable[[list[tuple[str, str]]], Services]:
    return lambda articles: services_of(articles, title="Harwick {id}")


@pytest.mark.slow
def test_an_outcome_reported_only_as_its_opposite_is_not_an_answer(strike_services) -> None:
    services = strike_services(STRIKE)
    answer = services.answerer.answer("What pay rise did Harwick dock workers accept?")
    assert answer.abstained and not answer.citations, answer.text
    assert "rejected" in answer.metadata["opposed"] or "raised its offer" in answer.metadata["opposed"]
    # once an article says they accepted one, that is the answer
    services = strike_services([*STRIKE, ("deal", "Harwick dock workers on Friday accepted a pay rise of 6 percent, "
                                                  "ending the dispute.")])
    answer = services.answerer.answer("What pay rise did Harwick dock workers accept?")
    assert not answer.abstained and "6 percent" in answer.text, answer.text


@pytest.mark.slow
def test_a_winning_margin_is_not_the_number_of_votes_received(strike_services) -> None:
    services = strike_services(STRIKE)
    answer = services.answerer.answer("How many votes did Mira Osk receive in the Harwick mayoral election?")
    assert "412" not in (answer.short or "") and "96" not in (answer.short or ""), answer.short
    assert answer.abstained and answer.metadata.get("margin_only"), answer.text
    # asked for the margin, the same sentence answers
    answer = services.answerer.answer("By how many votes did Mira Osk win the Harwick mayoral election?")
    assert not answer.abstained and ("412" in answer.text or "96" in answer.text), answer.text


@pytest.mark.parametrize(
    ("sentence", "number", "margin"),
    [
        ("Osk finished 412 votes ahead of Laar.", "412", True),
        ("Laar lost to Osk by 389 votes.", "389", True),
        ("Osk won, but by just 96 votes.", "96", True),
        ("A 96-vote margin is not a mandate.", "96", True),
        ("She won with a majority of 2,000.", "2,000", True),
        ("City are 12 points clear at the top.", "12", True),
        ("Osk received 12,000 votes.", "12,000", False),
        ("Profits rose by 5% to £20m.", "5", False),
        ("More than 200 people were hurt.", "200", False),
    ],
)
def test_a_contests_margin_is_told_from_a_total(sentence: str, number: str, margin: bool) -> None:
    from retrieval.answer_types import is_margin

    start = sentence.index(number)
    assert is_margin(sentence, start, start + len(number)) is margin


def test_a_question_asking_for_a_margin_is_told_from_one_asking_for_a_total() -> None:
    assert analyze_question("By how many votes did Osk win?", None).margin
    assert analyze_question("What was Osk's majority?", None).margin
    assert not analyze_question("How many votes did Osk receive?", None).margin


@pytest.mark.slow
def test_a_sentence_without_an_amount_of_the_asked_unit_is_no_answer(strike_services) -> None:
    question = "What salary is Piet Laar paid as mayor of Harwick?"
    raise_ = ("raise", "Harwick council voted on Monday to raise the salary paid to the mayor, Piet Laar, from next "
                       "April. Councillors said the mayor of Harwick had not had a pay rise since 2019.")
    answer = strike_services([*STRIKE, raise_]).answerer.answer(question)
    assert answer.abstained and answer.metadata["unit_missing"] == "money", answer.text
    assert "don't say what salary Piet Laar is paid as mayor of Harwick" in answer.text or answer.text == ABSTAIN_TEXT
    pay = ("pay", "Harwick's mayor Piet Laar is paid a salary of £85,000 a year, the council said.")
    answer = strike_services([*STRIKE, raise_, pay]).answerer.answer(question)
    assert not answer.abstained and "£85,000" in answer.sentences[0].text, answer.text
