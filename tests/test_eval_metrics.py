from __future__ import annotations

import numpy as np
import pytest

from evals import metrics as m
from evals.harness import QuestionResult, aggregate, check_gates
from newsdesk.models import Answer, AnswerSentence, Citation

ARTICLE = "The capacity of the Special Protection Unit is being enhanced. Officials met on Monday."


def cite(number: int, quote: str, article: str = "a1", text: str = ARTICLE) -> Citation:
    start = text.find(quote)
    return Citation(
        number=number, article_id=article, quote=quote, char_start=start, char_end=start + len(quote)
    )


def exact(premise: str, claim: str) -> bool:
    """A judge for tests: supported when the claim is literally in the premise."""
    return claim in premise


# --- retrieval -------------------------------------------------------------------------------------------
def test_first_hit_rank_folds_whitespace_and_finds_first_passage():
    passages = ["nothing here", "the   capacity of the\nSpecial Protection Unit is being", "the capacity of"]
    assert m.first_hit_rank(passages, ["capacity of the Special Protection Unit"]) == 2
    assert m.first_hit_rank(passages, ["absent quote", "capacity of"]) == 2
    assert m.first_hit_rank(passages, ["not there"]) is None
    assert m.first_hit_rank(passages, []) is None


def test_first_hit_rank_is_case_sensitive_like_a_verbatim_quote():
    assert m.first_hit_rank(["The Unit"], ["the unit"]) is None


def test_hit_at_k_and_reciprocal_rank():
    assert m.hit_at_k(1, 5) and m.hit_at_k(5, 5) and not m.hit_at_k(6, 5) and not m.hit_at_k(None, 5)
    assert m.reciprocal_rank(1) == 1.0
    assert m.reciprocal_rank(4) == 0.25
    assert m.reciprocal_rank(11) == 0.0
    assert m.reciprocal_rank(None) == 0.0


# --- answers ---------------------------------------------------------------------------------------------
def test_matches_gold_is_case_insensitive_and_whitespace_folded():
    assert m.matches_gold("It is being  ENHANCED\nnow", ["enhanced"]) == "enhanced"
    assert m.matches_gold("Law and\torder", ["nothing", "law and order"]) == "law and order"
    assert m.matches_gold("it is being reduced", ["enhanced"]) is None
    assert m.matches_gold("anything", [""]) is None


def test_answer_text_drops_markers():
    answer = Answer(
        question="q",
        text="Enhanced [1]. Also [2].",
        sentences=[AnswerSentence(text="Enhanced.", citations=[1])],
    )
    assert m.answer_text(answer) == "Enhanced."
    assert m.answer_text(Answer(question="q", text="Law and [1] order [2].")) == "Law and order."
    assert m.markers("a [1] b [12][3]") == [1, 12, 3]


# --- citation validity -----------------------------------------------------------------------------------
def test_valid_citation_has_no_problems():
    quote = "The capacity of the Special Protection Unit is being enhanced."
    answer = Answer(
        question="q",
        text=f"{quote} [1]",
        sentences=[AnswerSentence(text=quote, citations=[1])],
        citations=[cite(1, quote)],
    )
    assert m.citation_problems(answer, {"a1": ARTICLE}) == []
    assert m.has_citations(answer)


def test_citation_problems_name_each_fault():
    good = cite(1, "Officials met on Monday.")
    shifted = good.model_copy(
        update={"number": 2, "char_start": good.char_start - 1, "char_end": good.char_end - 1}
    )
    outside = good.model_copy(update={"number": 3, "char_end": 10_000})
    elsewhere = good.model_copy(update={"number": 4, "article_id": "gone"})
    answer = Answer(
        question="q",
        text="x [1][2][3][4][9]",
        sentences=[AnswerSentence(text="x", citations=[1, 2, 3, 4, 7])],
        citations=[good, shifted, outside, elsewhere],
    )
    problems = m.citation_problems(answer, {"a1": ARTICLE})
    joined = "\n".join(problems)
    assert "marker [9] has no listed source" in joined
    assert "marker [7] has no listed source" in joined
    assert "[2] quote is not verbatim" in joined
    assert "[3] offsets" in joined
    assert "[4] cites 'gone'" in joined
    assert not any(p.startswith("[1]") for p in problems)


def test_duplicate_citation_numbers_are_invalid():
    c = cite(1, "Officials met on Monday.")
    answer = Answer(question="q", text="x [1]", citations=[c, c])
    assert any("listed twice" in p for p in m.citation_problems(answer, {"a1": ARTICLE}))


# --- ALCE ------------------------------------------------------------------------------------------------
def test_alce_recall_joins_citations():
    quotes = {1: "alpha beta", 2: "gamma"}
    # "beta\ngamma" is only in the joined premise: supported together, by neither alone
    verdicts = m.alce_support([("beta\ngamma", [1, 2])], quotes, exact)
    assert verdicts[0].supported
    assert verdicts[0].needed == [1, 2] and verdicts[0].irrelevant == []
    assert m.citation_recall(verdicts) == 1.0
    assert m.citation_precision(verdicts) == 1.0


def test_alce_precision_flags_a_citation_the_others_make_redundant():
    quotes = {1: "the unit is being enhanced", 2: "unrelated text", 3: "the unit is being enhanced too"}
    verdicts = m.alce_support([("unit is being enhanced", [1, 2, 3])], quotes, exact)
    v = verdicts[0]
    assert v.supported
    assert v.irrelevant == [2]  # does not support alone, and [1][3] still do
    assert v.needed == [1, 3]  # each supports alone: never irrelevant
    assert m.citation_precision(verdicts) == pytest.approx(2 / 3)


def test_alce_unsupported_and_uncited_sentences():
    quotes = {1: "alpha", 2: "beta"}
    verdicts = m.alce_support(
        [("gamma", [1]), ("no citation", []), ("alpha", [5]), ("alpha", [1]), ("beta", [1, 2])], quotes, exact
    )
    assert [v.supported for v in verdicts] == [False, False, False, True, True]
    # sentence 5: [1] does not support alone and [2] alone still does -> [1] irrelevant
    assert verdicts[4].irrelevant == [1] and verdicts[4].needed == [2]
    assert m.citation_recall(verdicts) == pytest.approx(2 / 5)
    # citations: 1 (unsupported) + 0 + 1 (unlisted) + 1 (needed) + 2 (one needed) -> 2 of 5 precise
    assert m.citation_precision(verdicts) == pytest.approx(2 / 5)


def test_alce_deduplicates_repeated_numbers():
    verdicts = m.alce_support([("alpha", [1, 1])], {1: "alpha"}, exact)
    assert verdicts[0].citations == [1] and verdicts[0].needed == [1]


def test_empty_denominators_are_none():
    assert m.citation_recall([]) is None
    assert m.citation_precision([]) is None
    assert m.ratio(1, 0) is None


# --- abstention, latency, classification -----------------------------------------------------------------
def test_abstention_precision_and_recall():
    abstained = [True, True, False, False, True]
    answerable = [False, True, False, True, False]
    precision, recall = m.abstention_scores(abstained, answerable)
    assert precision == pytest.approx(2 / 3)
    assert recall == pytest.approx(2 / 3)
    assert m.abstention_scores([False], [True]) == (None, None)


def test_percentile_matches_numpy():
    values = [120.0, 80.0, 4500.0, 95.0, 101.0, 99.0, 130.0]
    for q in (0, 50, 95, 100):
        assert m.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert m.percentile([], 50) is None


def test_binary_scores_macro_f1():
    scores = m.binary_scores([True, True, False, False], [True, False, False, False])
    assert scores["precision"] == 0.5 and scores["recall"] == 1.0
    # positive F1 = 2/3, negative F1 = 0.8 -> macro 0.7333
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


# --- aggregation and gates -------------------------------------------------------------------------------
def test_aggregate_uses_the_right_denominators():
    rows = [
        QuestionResult(
            id="a",
            question="q",
            answerable=True,
            correct=True,
            hit=True,
            rank=1,
            citation_valid=True,
            latency_ms=100,
        ),
        QuestionResult(
            id="b",
            question="q",
            answerable=True,
            correct=False,
            hit=False,
            rank=7,
            citation_valid=False,
            latency_ms=300,
        ),
        QuestionResult(id="c", question="q", answerable=True, correct=False, abstained=True, latency_ms=200),
        QuestionResult(id="u", question="q", answerable=False, abstained=True, latency_ms=50),
    ]
    verdicts = [
        m.SentenceSupport(0, "s", [1], True, needed=[1]),
        m.SentenceSupport(0, "s", [1, 2], True, needed=[1], irrelevant=[2]),
    ]
    got = aggregate(rows, verdicts)
    assert got["n"] == 4
    assert got["answer_accuracy"] == pytest.approx(1 / 3)
    assert got["hit_at_k"] == pytest.approx(1 / 2)  # c has no evidence-based retrieval verdict
    assert got["mrr_at_10"] == pytest.approx((1 + 1 / 7) / 2)
    assert got["citation_validity"] == pytest.approx(1 / 2)
    assert got["citation_recall"] == 1.0
    assert got["citation_precision"] == pytest.approx(2 / 3)
    assert got["abstention_precision"] == pytest.approx(1 / 2)
    assert got["abstention_recall"] == 1.0
    assert got["latency_p50_ms"] == pytest.approx(150.0)


def test_gates_name_the_metric_and_flag():
    metrics = {"answer_accuracy": 0.8, "hit_at_k": 0.9, "abstention_recall": None}
    failed = check_gates(
        metrics, {"answer_accuracy": 0.9, "hit_at_k": 0.9, "citation_recall": None, "abstention_recall": 0.5}
    )
    assert len(failed) == 2
    assert "answer_accuracy 0.800 is below --min-answer-accuracy 0.9" in failed[0]
    assert "abstention_recall is n/a" in failed[1]
    assert check_gates(metrics, {"answer_accuracy": 0.8}) == []
