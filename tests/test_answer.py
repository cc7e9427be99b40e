"""The offline extractive answerer over the real sample store: verified quotes, numbering, abstention."""

from __future__ import annotations

import json
import re

import pytest

from newsdesk.errors import UsageError
from newsdesk.models import Answer
from newsdesk.runtime import Services
from retrieval.answer import ABSTAIN_TEXT, ExtractiveAnswerer, retrieval_query
from retrieval.base import Answerer, SearchFilters, Turn
from retrieval.citations import check, render
from tests.conftest import SHARED

DEV = [json.loads(line) for line in (SHARED / "eval" / "dev.jsonl").read_text(encoding="utf-8").splitlines()
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
    assert answer.text == ABSTAIN_TEXT
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
