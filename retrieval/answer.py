"""The default answerer: offline, no LLM. It quotes the retrieved sentences that answer the question.

Each sentence of every retrieved passage is scored against the question (embedding similarity plus
IDF-weighted term overlap, with a penalty when the passage lacks a number or year the question names,
or names another one). The best sentences then vote on candidate answers of the kind the question asks
for (names, dates, amounts), and sentences stating the answer most articles give gain (answer
redundancy), so that the sentence quoted states the answer rather than restating the question.
The best sentences are quoted verbatim; other articles stating the same fact are cited alongside
(corroboration), and when no sentence clears the calibrated threshold the answer abstains.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ingest.chunking import sentence_spans
from ingest.store import Store
from newsdesk.errors import UsageError
from newsdesk.models import Answer, AnswerSentence, Passage, RelatedArticle
from newsdesk.settings import Settings
from retrieval import recency, timeframe  # time (issue 11)
from retrieval.answer_types import (
    DATELINE,
    YEAR,
    answer_support,
    complete_dates,
    expected_type,
    has_type,
    stated_answers,
)
from retrieval.base import SearchFilters, Turn
from retrieval.citations import CitationBook, render
from retrieval.lexical import tokenize
from retrieval.search import HybridSearcher, constraint_share, constraints

ABSTAIN_TEXT = "The articles don't say."
CONFLICT_PREFIX = "The articles disagree:"
# Kinds of constraint a question names: years, ordinals ("92nd"), quarters and halves.
_CONSTRAINT_KINDS = (re.compile(YEAR), re.compile(r"\d+(?:st|nd|rd|th)"), re.compile(r"q[1-4]|h[12]"))
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zà-ÿ][\w’'-]*")
# Words that make a question lean on the previous turn ("who said that?", "and the second one?").
_FOLLOW_UP = re.compile(r"\b(that|this|it|they|them|he|she|his|her|those|these|one|ones|there|then)\b", re.I)


@dataclass
class Candidate:
    """A sentence of a retrieved passage, with absolute offsets into its article."""

    passage: Passage
    rank: int
    start: int
    end: int
    text: str
    score: float = 0.0
    dense: float = 0.0
    overlap: float = 0.0
    #: the score before answer voting: how well the sentence matches the question (what abstention reads)
    relevance: float = 0.0
    #: support of the best-supported candidate answer the sentence states, relative to the best one (0-1)
    support: float = 0.0


def contradicts(wanted: set[str], text: str) -> bool:
    """Whether ``text`` names a year, ordinal or quarter, but never the one of that kind in ``wanted``.

    "Hinako Shibuno won the 2019 Women's British Open" contradicts a question about 2020: news about
    the previous edition of an event is the usual near-miss.
    """
    found = constraints(text)
    for kind in _CONSTRAINT_KINDS:
        asked = {w for w in wanted if kind.fullmatch(w)}
        named = {w for w in found if kind.fullmatch(w)}
        if asked and named and not asked & named:
            return True
    return False


def validate_question(question: str, settings: Settings) -> str:
    """Strip the question and enforce the settings' limits.

    Raises:
        UsageError: empty or longer than ``max_question_chars``.
    """
    question = question.strip()
    if not question:
        raise UsageError("the question is empty")
    if len(question) > settings.max_question_chars:
        raise UsageError(
            f"the question is {len(question)} characters long; the limit is {settings.max_question_chars} "
            "(NEWSDESK_MAX_QUESTION_CHARS)"
        )
    return question


def retrieval_query(question: str, history: list[Turn] | None) -> str:
    """The text to retrieve with: a follow-up borrows the previous question's content words."""
    if not history:
        return question
    previous = history[-1].question
    if len(tokenize(question)) <= 4 or _FOLLOW_UP.search(question):
        return f"{question} {previous}"
    return question


class ExtractiveAnswerer:
    """Answers by quoting retrieved sentences verbatim, with verified, code-numbered citations.

    Args:
        searcher: hybrid search over the store.
        store: where article texts are read for verifying citations.
        settings: top_k, abstain_threshold, max_question_chars.
    """

    name = "extractive"
    #: weight of embedding similarity against term overlap in a sentence's score
    dense_weight = 0.5
    #: further sentences are added when they score at least this share of the best one
    second_ratio = 0.8
    max_sentences = 3
    #: share of a sentence's score that comes from the passage around it
    context_weight = 0.3
    #: another article's sentence this similar to a chosen one corroborates it
    corroboration = 0.82
    #: sentences this similar are copies of each other; differing names then mean a disagreement
    near_copy = 0.9
    #: taken off a sentence lacking the kind of answer asked for (a name for "who", a time for "when")
    type_penalty = 0.15
    question_penalty = 0.3
    #: added to a sentence giving a day, month and year (beyond its dateline) when the question asks "when"
    specific_bonus = 0.05
    novelty_penalty = 0.2
    #: taken off a sentence whose passage lacks the numbers and years the question names
    constraint_penalty = 0.2
    #: taken off a sentence naming another year, edition or quarter than the one the question names
    contradiction_penalty = 0.1
    #: added to a sentence times the support of the candidate answer it states (answer redundancy)
    support_weight = 0.3
    #: added to a sentence times the support of the date it gives whole (day, month and year)
    complete_weight = 0.2
    #: how many of the best sentences vote on the candidate answers
    vote_pool = 12

    def __init__(self, searcher: HybridSearcher, store: Store, settings: Settings) -> None:
        self.searcher = searcher
        self.store = store
        self.settings = settings
        self._sentence_cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def answer(
        self,
        question: str,
        *,
        history: list[Turn] | None = None,
        filters: SearchFilters | None = None,
        k: int | None = None,
    ) -> Answer:
        """Answer ``question`` from the store, or abstain."""
        started = time.perf_counter()
        question = validate_question(question, self.settings)
        query = retrieval_query(question, history)
        filters, window = timeframe.narrow(question, filters, self.settings.as_of, self.searcher)  # time (issue 11)
        # read more passages than are shown: sentence scoring is cheap and finds what ranking missed
        passages = self.searcher.search(query, k=2 * (k or self.settings.top_k), filters=filters)
        retrieved = time.perf_counter()
        candidates = self.score(question, query, passages)
        scored = time.perf_counter()
        # whether the articles answer at all is judged on relevance alone: agreement among the articles
        # on some name or date says which sentence to quote, not that they answer this question
        relevance = max((c.relevance for c in candidates), default=None)
        if relevance is None or relevance < self.settings.abstain_threshold:
            answer = self._abstain(question, passages, relevance)
        else:
            answer = self._compose(question, candidates, relevance)
        answer = recency.revise(answer, question, candidates, filters, window, self)  # time (issue 11)
        answer.timings = {
            "retrieve_ms": round((retrieved - started) * 1000, 2),
            "score_ms": round((scored - retrieved) * 1000, 2),
            "total_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        return answer

    # --- scoring ---------------------------------------------------------------------------------
    def score(self, question: str, query: str, passages: list[Passage]) -> list[Candidate]:
        """Every distinct sentence of ``passages``, scored against the question, best first."""
        candidates = _sentences(passages)
        if not candidates:
            return []
        q_tokens = set(tokenize(question))
        extra = set(tokenize(query)) - q_tokens  # words borrowed from the previous turn count less
        idf = self.searcher.idf  # the search just now checked the snapshot is current
        weight = {t: idf(t) for t in q_tokens} | {t: 0.5 * idf(t) for t in extra}
        total = sum(weight.values()) or 1.0
        wanted = constraints(question)
        kind = expected_type(question)
        q_vec = self.searcher.embedder.embed_query_array(question)
        s_vecs = self._embed([c.text for c in candidates])
        p_vecs = self._passage_vectors(passages)
        for cand, vec in zip(candidates, s_vecs, strict=True):
            s_tokens = set(tokenize(cand.text))
            p_tokens = set(tokenize(cand.passage.text))
            cand.dense = float(np.dot(q_vec, vec))
            cand.overlap = sum(w for t, w in weight.items() if t in s_tokens) / total
            sentence = self.dense_weight * cand.dense + (1 - self.dense_weight) * cand.overlap
            context = self.dense_weight * float(np.dot(q_vec, p_vecs[cand.passage.chunk_id])) + (
                1 - self.dense_weight
            ) * sum(w for t, w in weight.items() if t in p_tokens) / total
            cand.score = (1 - self.context_weight) * sentence + self.context_weight * context
            cand.score -= 0.01 * cand.rank  # a gentle prior for what retrieval ranked first
            if not has_type(cand.text, kind, question):
                cand.score -= self.type_penalty
            elif kind == "time" and complete_dates(cand.text):
                cand.score += self.specific_bonus  # "November 10, 2020" answers "when" better than "in 2020"
            if cand.text.rstrip(" \"'”’").endswith("?"):  # a question never answers one
                cand.score -= self.question_penalty
            if len(s_tokens - q_tokens - extra) < 2:  # says nothing the question did not
                cand.score -= self.novelty_penalty
            if wanted:
                body = DATELINE.sub("", cand.text, count=1)  # a snippet's date is not what it is about
                cand.score -= self.constraint_penalty * (
                    2.0 - constraint_share(wanted, body) - constraint_share(wanted, cand.passage.text)
                ) / 2
                if contradicts(wanted, body):
                    cand.score -= self.contradiction_penalty
        candidates.sort(key=lambda c: -c.score)
        for cand in candidates:
            cand.relevance = cand.score
        if kind is not None:
            self._vote(candidates, kind, q_tokens)
        return candidates

    def _vote(self, candidates: list[Candidate], kind: str, asked: set[str]) -> None:
        """Boost the sentences stating the answer that the relevant articles agree on.

        Answer redundancy, as in AskMSR (Brill et al., 2002): the ``vote_pool`` best sentences propose
        candidate answers of the kind asked for (see :mod:`retrieval.answer_types`). Each article backs a
        candidate with the score of its best sentence stating it, and a candidate's support is what its
        articles give, relative to the best-supported candidate. A sentence then gains ``support_weight`` times the
        support of its best candidate, so the sentence quoted states the answer most articles give rather
        than merely restating the question or naming a one-off.
        """
        stated = stated_answers([c.text for c in candidates], kind, asked)
        pool = candidates[: self.vote_pool]
        support = answer_support(
            stated[: len(pool)], [c.passage.article_id for c in pool], [c.score for c in pool]
        )
        for cand, keys in zip(candidates, stated, strict=True):
            cand.support = max((support.get(key, 0.0) for key in keys), default=0.0)
            cand.score += self.support_weight * cand.support
            if kind == "time":  # of the sentences giving the date voted for, quote one that gives its year
                whole = max((support.get(key, 0.0) for key in complete_dates(cand.text)), default=0.0)
                cand.score += self.complete_weight * whole
        candidates.sort(key=lambda c: -c.score)

    def _passage_vectors(self, passages: list[Passage]) -> dict[str, np.ndarray]:
        """Each passage's embedding: the one stored at ingest (a chunk is embedded as its text), else computed."""
        vectors = self.store.chunk_embeddings([p.chunk_id for p in passages])
        missing = [p for p in passages if p.chunk_id not in vectors]  # deleted meanwhile by another process
        if missing:
            vectors.update(zip([p.chunk_id for p in missing], self._embed([p.text for p in missing]), strict=True))
        return vectors

    def _embed(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._sentence_cache]
        if missing:
            for text, vec in zip(missing, self.searcher.embedder.encode(missing), strict=True):
                self._sentence_cache[text] = vec
            while len(self._sentence_cache) > 20_000:
                self._sentence_cache.popitem(last=False)
        return np.stack([self._sentence_cache[t] for t in texts])

    # --- composing -------------------------------------------------------------------------------
    def _compose(self, question: str, candidates: list[Candidate], relevance: float) -> Answer:
        best = candidates[0]
        chosen = [best]
        for cand in candidates[1:8]:
            if len(chosen) == self.max_sentences or cand.score < self.second_ratio * best.score:
                break
            if not _overlaps(cand, chosen) and not self._same_fact(cand, chosen):
                chosen.append(cand)
        texts = self.store.article_texts(sorted({c.passage.article_id for c in candidates}))
        book = CitationBook(texts)
        sentences: list[AnswerSentence] = []
        conflicts = 0
        for cand in chosen:
            agree, disagree = self._related(cand, candidates, chosen, question)
            numbers = [book.cite(cand.passage, cand.start, cand.end, cand.text)]
            numbers += [book.cite(o.passage, o.start, o.end, o.text) for o in agree]
            numbers = list(dict.fromkeys(n for n in numbers if n is not None))
            if not numbers:  # a sentence whose own quote does not verify is never shown
                continue
            sentences.append(AnswerSentence(text=cand.text, citations=numbers))
            for other in disagree:  # show the other version beside it, never pick a side silently
                number = book.cite(other.passage, other.start, other.end, other.text)
                if number is not None and all(other.text != s.text for s in sentences):
                    sentences.append(AnswerSentence(text=other.text, citations=[number]))
                    conflicts += 1
        if not sentences:
            return self._abstain(question, [c.passage for c in candidates], relevance)
        text = render(sentences)
        return Answer(
            question=question,
            text=f"{CONFLICT_PREFIX} {text}" if conflicts else text,
            sentences=sentences,
            citations=book.citations,
            answerer=self.name,
            metadata={"best_score": round(relevance, 4), "support": round(best.support, 4), "conflicts": conflicts},
        )

    def _same_fact(self, cand: Candidate, chosen: list[Candidate]) -> bool:
        vecs = self._embed([cand.text, *(c.text for c in chosen)])
        return bool(np.max(vecs[1:] @ vecs[0]) >= self.corroboration)

    def _related(
        self, cand: Candidate, candidates: list[Candidate], chosen: list[Candidate], question: str
    ) -> tuple[list[Candidate], list[Candidate]]:
        """Sentences of other articles that state the same as ``cand`` (agree) or a variant of it (disagree).

        A close paraphrase with other numbers, or a near-copy with other names, disagrees.
        """
        others = [c for c in candidates if c.passage.article_id != cand.passage.article_id and c not in chosen]
        if not others:
            return [], []
        vecs = self._embed([cand.text, *(c.text for c in others)])
        sims = vecs[1:] @ vecs[0]
        digits, names = _facts(cand.text, question)
        wanted = constraints(question)
        coverage = constraint_share(wanted, cand.passage.text)
        seen: set[str] = set()
        agree, disagree = [], []
        for other, sim in sorted(zip(others, sims, strict=True), key=lambda x: -x[1]):
            if sim < self.corroboration or other.passage.article_id in seen:
                continue
            seen.add(other.passage.article_id)
            other_digits, other_names = _facts(other.text, question)
            if digits != other_digits or (sim >= self.near_copy and names != other_names):
                # about another year or edition than the one asked for: neither agrees nor disagrees
                if constraint_share(wanted, other.passage.text) >= coverage:
                    disagree.append(other)
            else:
                agree.append(other)
        return agree[:3], disagree[:2]

    def _abstain(self, question: str, passages: list[Passage], relevance: float | None) -> Answer:
        best_score = round(relevance, 4) if relevance is not None else None
        return abstention(question, passages, self.name, {"best_score": best_score})


def abstention(question: str, passages: list[Passage], answerer: str, metadata: dict[str, object]) -> Answer:
    """An "articles don't say" answer citing nothing, listing the top passages' articles as possibly related."""
    related = {
        p.article_id: RelatedArticle(article_id=p.article_id, title=p.title, source=p.source) for p in passages[:3]
    }
    return Answer(
        question=question,
        text=ABSTAIN_TEXT,
        abstained=True,
        related=list(related.values()),
        answerer=answerer,
        metadata=metadata,
    )


def _sentences(passages: list[Passage]) -> list[Candidate]:
    """Sentences of the passages with absolute offsets; a sentence shared by overlapping chunks once.

    A fragment (a dateline such as "Oct 19, 2021 ...", a heading) is joined to the sentence after it,
    so what it says is scored, and quoted, in context.
    """
    seen: set[tuple[str, int]] = set()
    out = []
    for rank, passage in enumerate(passages):
        spans = sentence_spans(passage.text)
        merged: list[tuple[int, int]] = []
        for span in spans:
            if merged and _is_fragment(passage.text[merged[-1][0] : merged[-1][1]]):
                merged[-1] = (merged[-1][0], span.end)
            else:
                merged.append((span.start, span.end))
        for start, end in merged:
            key = (passage.article_id, passage.char_start + start)
            if key in seen or end - start < 12:
                continue
            seen.add(key)
            out.append(Candidate(passage, rank, passage.char_start + start, passage.char_start + end,
                                 passage.text[start:end]))
    return out


def _is_fragment(text: str) -> bool:
    words = text.replace("...", " ").replace("…", " ").split()
    return len(words) <= 4


def _facts(text: str, question: str) -> tuple[set[str], set[str]]:
    """Numbers and proper nouns of ``text`` that the question does not already name."""
    asked = {w.lower() for w in re.findall(r"[\w’'-]+", question)}
    digits = {d.rstrip(".,") for d in re.findall(r"\d[\d,.]*", text)} - asked
    names = {m.group(0).lower() for m in _CAPITALISED.finditer(text.strip())} - asked
    return digits, names


def _overlaps(cand: Candidate, chosen: list[Candidate]) -> bool:
    return any(
        c.passage.article_id == cand.passage.article_id and c.start < cand.end and cand.start < c.end
        for c in chosen
    )


def build_answerer(settings: Settings, searcher: HybridSearcher, store: Store):
    """The configured answerer: the LLM one when ``settings.llm`` is set, else the extractive one."""
    extractive = ExtractiveAnswerer(searcher, store, settings)
    if not settings.llm:
        return extractive
    from retrieval.llm import LLMAnswerer, chat_model_from_settings

    return LLMAnswerer(chat_model_from_settings(settings), searcher, store, settings, fallback=extractive)
