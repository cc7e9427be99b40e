"""The default answerer: offline, no LLM. It quotes the retrieved sentences that answer the question.

The question is analysed once (:mod:`retrieval.question`). Each sentence of every retrieved passage gets
named features (embedding similarity and term overlap with the question, in the context of its passage;
whether it holds an item of the kind asked for that the question does not name, how close that item stands
to the question's words, how many articles agree on it, passage rank, position in the article...), and one
fitted weights table (:mod:`retrieval.selection`) turns them into the probability that the sentence states
the answer. A second fitted model decides from the best sentence and the question's coverage whether the
articles answer at all; when they cover the subject but not the asked detail the answer says so. The best
sentence is quoted verbatim, with the asked-for item alone first (``Answer.short``) when the evidence is
unambiguous; other articles stating the same fact are cited alongside (corroboration).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from newsdesk.models import ABSTAIN_TEXT, Answer, AnswerSentence, Passage, RelatedArticle
from newsdesk.sentence_vectors import SentenceVectors
from newsdesk.sentences import answer_sentences
from newsdesk.settings import Settings
from newsdesk.store import Store
from newsdesk.text import validate_question
from retrieval import recency, timeframe  # time (issue 11)
from retrieval.answer_types import (
    DATELINE,
    YEAR,
    answer_support,
    complete_dates,
    has_type,
    is_margin,
    item_spans,
    stated_answers,
)
from retrieval.base import SearchFilters, Turn
from retrieval.citations import CitationBook, render
from retrieval.lexical import tokenize
from retrieval.question import Question, analyze
from retrieval.search import HybridSearcher, constraint_share, constraints
from retrieval.selection import Models, load_models

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
    #: the sentence before it in its passage ("" for the first): an answer often follows the sentence
    #: that names the story ("A US company has pulled out ..." / "The firm, Ameco, ...")
    previous: str = ""
    score: float = 0.0
    dense: float = 0.0
    overlap: float = 0.0
    #: the score before answer voting: how well the sentence matches the question (what abstention reads)
    relevance: float = 0.0
    #: support of the best-supported candidate answer the sentence states, relative to the best one (0-1)
    support: float = 0.0
    #: the named features of :data:`retrieval.selection.SENTENCE_FEATURES`
    features: dict[str, float] = field(default_factory=dict)
    #: the selection model's log-odds and probability that the sentence states the answer
    logit: float = 0.0
    probability: float = 0.0


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


def is_follow_up(question: str, history: list[Turn] | None) -> bool:
    """Whether ``question`` leans on the previous turn (short, or "who said that?")."""
    return bool(history) and (len(tokenize(question)) <= 4 or bool(_FOLLOW_UP.search(question)))


def retrieval_query(question: str, history: list[Turn] | None) -> str:
    """The text to retrieve with: a follow-up borrows the previous question's content words."""
    return f"{question} {history[-1].question}" if history and is_follow_up(question, history) else question


def analyze_question(question: str, history: list[Turn] | None) -> Question:
    """The :class:`~retrieval.question.Question` for ``question`` asked after ``history``."""
    previous = history[-1].question if history else None
    return analyze(question, previous, follow_up=is_follow_up(question, history))


class ExtractiveAnswerer:
    """Answers by quoting retrieved sentences verbatim, with verified, code-numbered citations.

    Args:
        searcher: hybrid search over the store.
        store: where article texts are read for verifying citations.
        settings: top_k, max_question_chars.
        models: the fitted selection and abstention tables (default: the ones shipped in
            ``retrieval/selection_weights.json``).
    """

    name = "extractive"
    #: weight of embedding similarity against term overlap in a sentence's relevance (which orders the vote)
    dense_weight = 0.5
    #: a second sentence is quoted when its probability is at least this share of the best one's
    second_ratio = 0.25
    max_sentences = 2
    #: share of a sentence's relevance that comes from the passage around it
    context_weight = 0.3
    #: another article's sentence this similar to a chosen one corroborates it
    corroboration = 0.82
    #: sentences this similar are copies of each other; differing names then mean a disagreement
    near_copy = 0.9
    #: how many of the most relevant sentences vote on the candidate answers
    vote_pool = 12

    def __init__(
        self, searcher: HybridSearcher, store: Store, settings: Settings, models: Models | None = None
    ) -> None:
        self.searcher = searcher
        self.store = store
        self.settings = settings
        self.models = models or load_models()
        #: answer when the abstention model's probability is at least this (NEWSDESK_ABSTAIN_THRESHOLD)
        self.answer_threshold = (
            settings.abstain_threshold if settings.abstain_threshold is not None else self.models.answer_threshold
        )
        self._sentence_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        # the vectors ingest computed for every stored sentence (read-only here; absent: computed as needed)
        self._stored_vectors = SentenceVectors.for_embedder(settings.data_dir, searcher.embedder, read_only=True)

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
        q = analyze_question(validate_question(question, self.settings), history)
        filters, window = timeframe.narrow(q.text, filters, self.settings.as_of, self.searcher)  # time (issue 11)
        passages, candidates, support = self.gather(q, filters=filters, k=k)
        scored = time.perf_counter()
        features = self.question_features(q, candidates, passages)
        answerable = self.models.abstention.probability(features)
        if not candidates or answerable < self.answer_threshold:
            answer = self._abstain(q, passages, candidates, answerable)
        else:
            answer = self._compose(q, candidates, support, answerable)
        answer.metadata["question_features"] = {key: round(v, 4) for key, v in features.items()}
        answer = recency.revise(answer, q, candidates, filters, window, self)  # time (issue 11)
        answer.timings = {
            "retrieve_ms": round(self._retrieve_ms, 2),
            "score_ms": round((scored - started) * 1000 - self._retrieve_ms, 2),
            "total_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        return answer

    def gather(
        self, q: Question, *, filters: SearchFilters | None = None, k: int | None = None
    ) -> tuple[list[Passage], list[Candidate], dict[str, float]]:
        """Retrieve passages for ``q`` and score their sentences: (passages, candidates best first, support)."""
        started = time.perf_counter()
        # read more passages than are shown: sentence scoring is cheap and finds what ranking missed
        passages = self.searcher.search(q.query, k=2 * (k or self.settings.top_k), filters=filters, question=q)
        self._retrieve_ms = (time.perf_counter() - started) * 1000
        candidates, support = self.score(q, passages)
        return passages, candidates, support

    # --- scoring ---------------------------------------------------------------------------------
    def score(self, q: Question, passages: list[Passage]) -> tuple[list[Candidate], dict[str, float]]:
        """Every distinct sentence of ``passages`` with its features and probability, best first.

        Returns:
            (candidates, support): support maps each candidate answer key to how strongly the articles
            agree on it (0-1; empty when the question asks for no particular kind of item).
        """
        candidates = _sentences(passages)
        if not candidates:
            return [], {}
        weight = self._term_weights(q)
        total = sum(weight.values()) or 1.0
        q_vec = self.searcher.embedder.embed_query_array(q.text)
        s_vecs = self._embed([c.text for c in candidates])
        p_vecs = self._passage_vectors(passages)
        wanted = set(q.constraints)
        for cand, vec in zip(candidates, s_vecs, strict=True):
            s_tokens = set(tokenize(cand.text))
            p_tokens = _passage_tokens(cand.passage.text)
            body = DATELINE.sub("", cand.text, count=1)  # a snippet's date is not what it is about
            items = _items_of(cand.text, q)
            f = cand.features
            f["dense"] = float(np.dot(q_vec, vec))
            f["overlap"] = sum(w for t, w in weight.items() if t in s_tokens) / total
            f["context_dense"] = float(np.dot(q_vec, p_vecs[cand.passage.chunk_id]))
            f["context_overlap"] = sum(w for t, w in weight.items() if t in p_tokens) / total
            # a question before it ("Who will win the 2031 Cup?") sets up speculation, not a fact it completes
            asks = bool(cand.previous) and cand.previous.rstrip(" \"'”’").endswith("?")
            prev_tokens = _passage_tokens(cand.previous) if cand.previous and not asks else frozenset()
            f["prev_overlap"] = sum(w for t, w in weight.items() if t in prev_tokens) / total
            f["window_overlap"] = sum(w for t, w in weight.items() if t in prev_tokens or t in s_tokens) / total
            f["predicate"] = (
                sum(w for t, w in weight.items() if t in q.predicate and (t in prev_tokens or t in s_tokens))
                / (sum(w for t, w in weight.items() if t in q.predicate) or 1.0)
                if q.predicate else 1.0
            )
            f["rank"] = 1.0 / (1.0 + cand.rank)
            typed = q.kind is None or (bool(items) if q.unit else has_type(cand.text, q.kind, q.text))
            f["typed"] = float(q.kind is not None and typed)
            f["untyped"] = float(not typed)
            f["typed_window"] = f["typed"] * f["window_overlap"]
            f["typed_predicate"] = f["typed"] * f["predicate"]
            f["ambiguity"] = min(len({key for key, _, _ in items}), 4) / 4
            f["proximity"] = _proximity(cand.text, items, q.tokens)
            f["focus_proximity"] = _proximity(cand.text, items, q.focus) if q.focus else 0.0
            f["novelty"] = min(len(s_tokens - q.tokens - q.borrowed), 6) / 6
            f["question_mark"] = float(cand.text.rstrip(" \"'”’").endswith("?"))
            f["headline"] = float(not cand.text.rstrip(" \"'”’)]").endswith((".", "!", "?", "…")))
            f["constraint_miss"] = (
                (2.0 - constraint_share(wanted, body) - constraint_share(wanted, cand.passage.text)) / 2
                if wanted else 0.0
            )
            f["contradicts"] = float(bool(wanted) and contradicts(wanted, body))
            f["lead"] = 1.0 / (1.0 + cand.start / 1000)
            f["focus"] = float(bool(q.focus & s_tokens))
            f["complete_date"] = float(q.kind == "time" and bool(complete_dates(cand.text)))
            f["length"] = min(len(cand.text.split()), 60) / 60
            sentence = self.dense_weight * f["dense"] + (1 - self.dense_weight) * f["overlap"]
            context = self.dense_weight * f["context_dense"] + (1 - self.dense_weight) * f["context_overlap"]
            cand.relevance = (1 - self.context_weight) * sentence + self.context_weight * context
        best_dense = max(c.features["dense"] for c in candidates)
        best_overlap = max(c.features["overlap"] for c in candidates)
        for cand in candidates:
            cand.features["dense_gap"] = cand.features["dense"] - best_dense
            cand.features["overlap_gap"] = cand.features["overlap"] - best_overlap
        support = self._vote(candidates, q) if q.kind is not None else {}
        for cand in candidates:
            cand.features["support"] = cand.support
            cand.logit = self.models.selection.logit(cand.features)
        # the model is a softmax over a question's candidates: a sentence's probability is its share
        top = max(c.logit for c in candidates)
        mass = sum(float(np.exp(c.logit - top)) for c in candidates)
        for cand in candidates:
            cand.probability = float(np.exp(cand.logit - top)) / mass
        candidates.sort(key=lambda c: -c.logit)
        return candidates, support

    def _term_weights(self, q: Question) -> dict[str, float]:
        idf = self.searcher.idf  # the search just now checked the snapshot is current
        # words borrowed from the previous turn count less
        return {t: idf(t) for t in q.tokens} | {t: 0.5 * idf(t) for t in q.borrowed}

    def _vote(self, candidates: list[Candidate], q: Question) -> dict[str, float]:
        """Each sentence's support: how strongly the relevant articles agree on the item it states.

        Answer redundancy, as in AskMSR (Brill et al., 2002): the ``vote_pool`` most relevant sentences
        propose candidate answers of the kind asked for (see :mod:`retrieval.answer_types`). Each article
        backs a candidate with the relevance of its best sentence stating it, and a candidate's support is
        what its articles give, relative to the best-supported candidate.
        """
        by_relevance = sorted(candidates, key=lambda c: -c.relevance)
        stated = stated_answers([c.text for c in by_relevance], q.kind, q.tokens)
        pool = by_relevance[: self.vote_pool]
        support = answer_support(
            stated[: len(pool)], [c.passage.article_id for c in pool], [c.relevance for c in pool]
        )
        for cand, keys in zip(by_relevance, stated, strict=True):
            cand.support = max((support.get(key, 0.0) for key in keys), default=0.0)
        return support

    def question_features(
        self, q: Question, candidates: list[Candidate], passages: list[Passage]
    ) -> dict[str, float]:
        """The features of :data:`retrieval.selection.QUESTION_FEATURES` for ``q`` and its scored candidates."""
        if not candidates:
            return {}
        best = candidates[0]
        weight = {t: self.searcher.idf(t) for t in q.tokens}
        total = sum(weight.values()) or 1.0
        seen: set[str] = set()
        for passage in passages:
            seen |= _passage_tokens(passage.text)
        missing = [w for t, w in weight.items() if t not in seen]
        return {
            "best_logit": best.logit,
            "best_probability": best.probability,
            "best_dense": best.features["dense"],
            "best_overlap": best.features["overlap"],
            "best_context_overlap": best.features["context_overlap"],
            "best_typed": best.features["typed"],
            "best_support": best.features["support"],
            "max_overlap": max(c.features["overlap"] for c in candidates),
            "best_predicate": best.features["predicate"],
            # the question's predicate said beside an item of the asked kind, anywhere in the candidates
            "max_typed_predicate": max(
                (c.features["predicate"] for c in candidates if c.features["untyped"] == 0.0), default=0.0
            ),
            "covered": sum(w for t, w in weight.items() if t in seen) / total,
            "rare_missing": max(missing, default=0.0) / (max(weight.values(), default=1.0) or 1.0),
            "wants_item": float(q.wants_item),
        }

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
            stored = self._stored_vectors.get_many(missing)
            self._sentence_cache.update(stored)
            missing = [t for t in missing if t not in stored]
        if missing:
            for text, vec in zip(missing, self.searcher.embedder.encode(missing), strict=True):
                self._sentence_cache[text] = vec
        vectors = np.stack([self._sentence_cache[t] for t in texts])
        while len(self._sentence_cache) > 20_000:
            self._sentence_cache.popitem(last=False)
        return vectors

    # --- composing -------------------------------------------------------------------------------
    def _compose(
        self, q: Question, candidates: list[Candidate], support: dict[str, float], answerable: float
    ) -> Answer:
        best = candidates[0]
        if gap := not_stated(q, best, candidates):
            # the best sentence is about the story but does not state the detail asked for
            answer = self._abstain(q, [c.passage for c in candidates], candidates, answerable)
            answer.metadata[gap[0]] = gap[1]
            return answer
        chosen = [best]
        for cand in candidates[1:8]:
            if len(chosen) == self.max_sentences or cand.probability < self.second_ratio * best.probability:
                break
            if not _overlaps(cand, chosen) and not self._same_fact(cand, chosen):
                chosen.append(cand)
        texts = self.store.article_texts(sorted({c.passage.article_id for c in candidates}))
        book = CitationBook(texts)
        sentences: list[AnswerSentence] = []
        conflicts = 0
        for cand in chosen:
            agree, disagree = self._related(cand, candidates, chosen, q)
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
            return self._abstain(q, [c.passage for c in candidates], candidates, answerable)
        short = None
        if not conflicts and sentences[0].text == best.text:
            short = self._short(q, best, support)
        text = render(sentences)
        return Answer(
            question=q.text,
            text=f"{CONFLICT_PREFIX} {text}" if conflicts else text,
            short=short,
            sentences=sentences,
            citations=book.citations,
            answerer=self.name,
            metadata={
                "answer_probability": round(answerable, 4),
                "selection_probability": round(best.probability, 4),
                "support": round(best.support, 4),
                "conflicts": conflicts,
                "kind": q.kind,
                "features": {key: round(value, 4) for key, value in best.features.items()},
            },
        )

    def _short(self, q: Question, best: Candidate, support: dict[str, float]) -> str | None:
        """The asked-for item alone, verbatim from ``best``, when the evidence points at one item."""
        if best.probability < self.models.short_threshold:
            return None
        return self.short_item(q, best, support)

    def short_item(self, q: Question, best: Candidate, support: dict[str, float]) -> str | None:
        """The item of the asked kind that ``best`` states, unless it states rival ones (:func:`short_item`)."""
        return short_item(q, best.text, support)

    def _same_fact(self, cand: Candidate, chosen: list[Candidate]) -> bool:
        vecs = self._embed([cand.text, *(c.text for c in chosen)])
        return bool(np.max(vecs[1:] @ vecs[0]) >= self.corroboration)

    def _related(
        self, cand: Candidate, candidates: list[Candidate], chosen: list[Candidate], q: Question
    ) -> tuple[list[Candidate], list[Candidate]]:
        """Sentences of other articles that state the same as ``cand`` (agree) or a variant of it (disagree).

        A sentence agrees when it says the same with the same numbers and names. Two sentences disagree when
        both state an item of the asked kind and none in common ("37 died" and "41 died"), or, for a question
        asking for no item, when one is a near-copy of the other with other numbers or names. A related
        sentence that merely mentions another number neither agrees nor disagrees.
        """
        others = [c for c in candidates if c.passage.article_id != cand.passage.article_id and c not in chosen]
        if not others:
            return [], []
        vecs = self._embed([cand.text, *(c.text for c in others)])
        sims = vecs[1:] @ vecs[0]
        digits, names = _facts(cand.text, q.text)
        items = _items(cand.text, q)
        wanted = constraints(q.text)
        coverage = constraint_share(wanted, cand.passage.text)
        seen: set[str] = set()
        agree, disagree = [], []
        for other, sim in sorted(zip(others, sims, strict=True), key=lambda x: -x[1]):
            if sim < self.corroboration or other.passage.article_id in seen:
                continue
            seen.add(other.passage.article_id)
            other_digits, other_names = _facts(other.text, q.text)
            same = digits == other_digits and (sim < self.near_copy or names == other_names)
            if items:
                other_items = _items(other.text, q)
                varies = bool(other_items) and not _compatible(items, other_items)
            else:
                varies = sim >= self.near_copy and not same
            if varies:
                # about another year or edition than the one asked for: neither agrees nor disagrees
                if constraint_share(wanted, other.passage.text) >= coverage:
                    disagree.append(other)
            elif same:
                agree.append(other)
        return agree[:3], disagree[:2]

    def _abstain(
        self, q: Question, passages: list[Passage], candidates: list[Candidate], answerable: float | None
    ) -> Answer:
        metadata: dict[str, object] = {
            "answer_probability": round(answerable, 4) if answerable is not None else None
        }
        answer = abstention(q.text, passages, self.name, metadata)
        covering = [c for c in candidates if c.features.get("context_overlap", 0.0) >= 0.5]
        if covering and answer.related:  # the archive covers the story, not the detail asked for
            top = covering[0].passage
            subject = top.title or answer.related[0].title
            if subject:
                answer.text = partial_text(subject, q)
                answer.metadata["partial"] = True
        return answer


def not_stated(q: Question, best: Candidate, candidates: list[Candidate]) -> tuple[str, str] | None:
    """Why the best sentence, though on the story, does not state the item asked for: (reason, detail) or None.

    - ``undisclosed``: it says the detail is not known ("the price was not revealed") and states no item.
    - ``unit_missing``: the question wants money, a percentage or a term, and it states none.
    - ``margin_only``: asked how many votes (points, goals...), it gives only a margin ("412 votes ahead").
    - ``opposed``: it (or the sentence before it) reports the opposite outcome of the question's verb
      ("rejected" for "accept"), and none of the 8 best sentences says the verb itself.
    """
    if not q.wants_item:
        return None
    items = _items_of(best.text, q)
    if _UNDISCLOSED.search(best.text) and not items:
        return "undisclosed", best.text
    if q.unit and not items:
        return "unit_missing", q.unit
    if q.kind == "quantity" and not q.margin and _margins_only(best.text, q):
        return "margin_only", best.text
    if (opposed := _opposed(q, best)) and not any(_states(c, opposed) for c in candidates[:8]):
        return "opposed", best.text
    return None


def short_item(q: Question, text: str, support: Mapping[str, float]) -> str | None:
    """The item of the asked kind that the sentence ``text`` states, verbatim, or None.

    None when the question wants no item (why/how, yes/no, no expected kind), when the sentence holds none
    (of the asked unit: money for "what price"), or when it holds rival items and the noun asked about does
    not stand closer to one of them ("Halep beats Williams" for "who won" names two players: no short answer).
    A single capitalised word opening the sentence ("Currently", "Reuters") is too often no name at all.

    Args:
        q: the analysed question.
        text: the chosen sentence.
        support: how strongly the articles agree on each candidate item (see ``ExtractiveAnswerer._vote``).
    """
    if not q.wants_item:
        return None
    opening = DATELINE.match(text)
    start = opening.end() if opening else 0
    items = [(k, s, e) for k, s, e in _items_of(text, q) if not (s <= start and " " not in k)]
    if not items:
        return None
    ranked = sorted(
        (
            (
                _proximity(text, [(key, s, e)], q.focus) if q.focus else 0.0,
                support.get(key, 0.0),
                _proximity(text, [(key, s, e)], q.tokens),
                key, s, e,
            )
            for key, s, e in items
        ),
        reverse=True,
    )
    keys = {r[3] for r in ranked}
    top = ranked[0]
    rivals = [r for r in ranked[1:] if not (r[3] in top[3] or top[3] in r[3])]
    if len(keys) > 1 and rivals and (top[0] <= rivals[0][0] or top[1] < rivals[0][1]):
        # two items of the asked kind: only the noun asked about, standing closer to one, settles which
        # (how often the articles repeat an item does not: a losing finalist is named as often as the winner)
        return None
    return text[top[4] : top[5]]


def partial_text(subject: str, q: Question) -> str:
    """The honest answer when the story is there and the detail is not: "The articles cover X but don't say Y".

    Y is the question turned indirect where that is a plain swap ("what was the name of the driver" gives
    "what the name of the driver was"), else the question quoted.
    """
    asked = " ".join(q.text.split()).rstrip(" ?")
    if m := _INDIRECT.match(asked):
        wh, verb, rest = m.group(1).lower(), m.group(2).lower(), m.group(3)
        if named := _NAMED_THEN_PARTICIPLE.match(rest):  # "Glenn Hoddle being paid": the verb follows the name
            clause = f"{wh} {named.group(1)} {verb} {rest[named.end(1):].lstrip()}"
        else:
            clause = f"{wh} {rest} {verb}"
    else:
        clause = f"the answer to “{asked}?”"
    return f"The articles cover “{_clip(subject, 90)}” but don't say {clause}."


# A named subject and then the rest of the verb ("Glenn Hoddle being paid", "Nicholas Jacobsen given"); a
# described one ("the man charged with ...") keeps the verb at the end.
_NAMED_THEN_PARTICIPLE = re.compile(
    r"((?:[A-Z][\w’'.-]*\s+)*[A-Z][\w’'.-]*)\s+(?=being\b|\w+(?:ed|en|ing)\b|(?:paid|made|held|sold|bought|told|"
    r"found|built|won|lost|set|put|cut|hit|run|led|sent|spent|kept|left|brought|caught|taught)\b)"
)
_INDIRECT = re.compile(
    r"^((?:[Ww]hat|[Ww]ho|[Ww]hich|[Ww]here|[Ww]hen|[Hh]ow (?:many|much|long|old|far)|[Ww]hose)(?: [\w’'-]+)??) "
    r"(is|was|are|were|has been|have been|will be)\s+"
    r"((?:the|a|an|this|that|these|those|his|her|its|their)\b.+|[A-Z0-9].+)$",
)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


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
    """Sentences of the passages (:func:`~ingest.chunking.answer_sentences`) with absolute offsets.

    A sentence shared by overlapping chunks comes once; ``previous`` is the sentence before it in its passage.
    """
    seen: set[tuple[str, int]] = set()
    out = []
    for rank, passage in enumerate(passages):
        previous = ""
        for start, end in answer_sentences(passage.text):
            key = (passage.article_id, passage.char_start + start)
            text = passage.text[start:end]
            if key not in seen:
                seen.add(key)
                out.append(Candidate(passage, rank, passage.char_start + start, passage.char_start + end, text,
                                     previous=previous))
            previous = text
    return out


_WORDS = re.compile(r"\w+")


@lru_cache(maxsize=4096)
def _passage_tokens(text: str) -> frozenset[str]:
    return frozenset(tokenize(text))


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    tokens = tokenize(word)
    return tokens[0] if tokens else ""


def _proximity(sentence: str, items: list[tuple[str, int, int]], asked: frozenset[str]) -> float:
    """How close the nearest item stands to a word of the question: 1 / (1 + words between), 0 if none."""
    if not items:
        return 0.0
    words = [(m.start(), _stem(m.group(0).lower())) for m in _WORDS.finditer(sentence)]
    anchors = [i for i, (_, stem) in enumerate(words) if stem and stem in asked]
    if not anchors:
        return 0.0
    best = 0.0
    for _, start, end in items:
        inside = [i for i, (pos, _) in enumerate(words) if start <= pos < end]
        if not inside:
            continue
        gap = min(max(0, a - inside[-1], inside[0] - a) for a in anchors if a not in inside) if any(
            a not in inside for a in anchors) else 0
        best = max(best, 1.0 / (1.0 + max(gap - 1, 0)))
    return best


# A sentence saying the asked detail is not known: "the price was not disclosed", "an undisclosed sum",
# "the club declined to say how much".
_UNDISCLOSED = re.compile(
    r"\b(?:not|never) (?:been |yet )?(?:disclosed|revealed|released|made public|announced|confirmed|known)\b"
    r"|\bundisclosed\b|\bunknown\b|\b(?:declined|refused) to (?:say|disclose|reveal|give|confirm|name)\b"
    r"|\b(?:would|will|did|does|do) not (?:say|disclose|reveal|give|confirm)\b",
    re.I,
)
# Outcomes and their opposites, as stemmed tokens: a sentence saying the opposite of the question's verb
# ("rejected" for "accept") does not answer it.
_OPPOSITES: dict[str, frozenset[str]] = {
    verb: frozenset(tokenize(opposites))
    for verb, opposites in {
        "accept": "reject refuse decline", "reject": "accept approve", "approv": "reject block veto",
        "win": "lose", "lose": "win beat", "pass": "fail reject", "agre": "refuse reject",
        "buy": "sell", "sell": "buy", "join": "leave quit", "hire": "sack fire", "convict": "acquit clear",
        "acquit": "convict",
    }.items()
}


def _opposed(q: Question, cand: Candidate) -> frozenset[str]:
    """The question's outcome verbs whose opposite ``cand`` (or the sentence before it) states, not the verb."""
    tokens = set(tokenize(f"{cand.previous or ''} {cand.text}"))
    return frozenset(
        verb for verb in q.predicate & _OPPOSITES.keys() if verb not in tokens and tokens & _OPPOSITES[verb]
    )


def _states(cand: Candidate, verbs: frozenset[str]) -> bool:
    return bool(verbs & set(tokenize(cand.text)))


_CURRENCY = re.compile(r"[$£€¥]")
_MONEY_AFTER = re.compile(
    r"\s*(?:m|bn|k|million|billion|thousand)?\s*(?:pounds?|dollars?|euros?|yen|pence|cents?|rupees?|yuan)\b", re.I
)
_MONEY_WORD = re.compile(r"\b(?:pounds?|dollars?|euros?|yen|pence|cents?|rupees?|yuan)\b", re.I)
_DURATION_UNIT = re.compile(r"[\s-]*(?:years?|months?|weeks?|days?|hours?|minutes?)\b", re.I)
_LEADING_NUMBER = re.compile(r"[^\s-]*")
_PERCENT_AFTER = re.compile(r"\s*(?:%|per ?cent\b)", re.I)


def _items_of(text: str, q: Question) -> list[tuple[str, int, int]]:
    """The items of the asked kind in ``text`` (see :func:`item_spans`), of the asked unit when it has one.

    "What price" wants an amount of money ("A$4.67", "£23,000 apiece"), not "19%" or "10 domains".
    """
    if q.kind is None:
        return []
    items = item_spans(text, q.kind, q.tokens)
    if q.kind == "quantity" and not q.margin:  # "412 votes ahead of" is a margin, not how many she received
        items = [(k, s, e) for k, s, e in items if not is_margin(text, s, e)]
    if q.unit is None:
        return items
    if q.unit == "money":
        return [(k, s, e) for k, s, e in items if "%" not in k and _is_money(text, s, e)]
    if q.unit == "duration":
        return [(k, s, e) for k, s, e in items if _DURATION_UNIT.match(text, _LEADING_NUMBER.match(text, s).end())]
    return [(k, s, e) for k, s, e in items if "%" in k or _PERCENT_AFTER.match(text, e)]


def _margins_only(text: str, q: Question) -> bool:
    """Whether every amount ``text`` states is a contest's margin ("won by 96 votes")."""
    spans = item_spans(text, "quantity", q.tokens)
    return bool(spans) and all(is_margin(text, s, e) for _, s, e in spans)


def _is_money(text: str, start: int, end: int) -> bool:
    """Whether the amount at ``text[start:end]`` is money: a currency sign before it, a currency word in or after."""
    return bool(
        _CURRENCY.search(text[max(0, start - 3) : end]) or _MONEY_WORD.search(text[start:end])
        or _MONEY_AFTER.match(text, end)
    )


def _items(text: str, q: Question) -> set[str] | None:
    """Keys of the items of the asked kind that ``text`` states, or None when the question asks for none."""
    if q.kind is None or not q.wants_item:
        return None
    return {key for key, _, _ in _items_of(text, q)}


def _compatible(items: set[str], others: set[str]) -> bool:
    """Whether two sentences' items share one: equal, one inside the other ("2015" in "dec-2015"), or a word."""
    words = {w for key in items for w in re.split(r"[\s-]+", key) if len(w) > 2}
    return any(
        a == b or a in b or b in a or words & {w for w in re.split(r"[\s-]+", b) if len(w) > 2}
        for a in items
        for b in others
    )


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
