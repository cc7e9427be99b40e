"""BM25 over chunk texts (bm25s), with the tokenizer shared by queries and documents."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import bm25s
import numpy as np
import Stemmer

_TOKEN = re.compile(r"\w+", re.UNICODE)
# Small on purpose: question words matter less than in prose, but "not", "no" and numbers stay.
STOPWORDS = frozenset(
    """a an and are as at be been being but by can could did do does for from had has have he her his how i
    if in into is it its itself me my of on or our she should so than that the their them then there these
    they this those to too was we were what when where which while who whom why will with would you your
    about also just said says""".split()
)


# Irregular past forms the stemmer leaves alone, so "won" matches "wins" and "bought" matches "buys".
IRREGULAR = {
    "won": "win", "began": "begin", "begun": "begin", "became": "become", "bought": "buy", "brought": "bring",
    "built": "build", "chose": "choose", "chosen": "choose", "fell": "fall", "fallen": "fall", "found": "find",
    "gave": "give", "given": "give", "held": "hold", "kept": "keep", "led": "lead", "left": "leave",
    "lost": "lose", "made": "make", "met": "meet", "paid": "pay", "ran": "run", "sold": "sell",
    "sent": "send", "spent": "spend", "stood": "stand", "struck": "strike", "taken": "take", "took": "take",
    "told": "tell", "went": "go", "gone": "go", "wrote": "write", "written": "write", "killed": "kill",
}


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-word-free, stemmed word tokens; numbers are kept whole ("2021", "100")."""
    words = [IRREGULAR.get(w, w) for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS]
    return _stemmer().stemWords(words)


class BM25Index:
    """An in-memory BM25 index over a fixed list of texts.

    Args:
        texts: the documents, addressed by position.
        k1: term-frequency saturation.
        b: length normalisation.
    """

    def __init__(self, texts: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.size = len(texts)
        self._bm25 = bm25s.BM25(k1=k1, b=b)
        tokenized = [tokenize(t) for t in texts]
        self.doc_freq: Counter[str] = Counter(tok for toks in tokenized for tok in set(toks))
        if self.size:
            self._bm25.index([toks or [""] for toks in tokenized], show_progress=False)

    def idf(self, token: str) -> float:
        """Inverse document frequency of a (tokenized) term; unseen terms get the highest value."""
        return math.log(1.0 + (self.size - self.doc_freq.get(token, 0) + 0.5) / (self.doc_freq.get(token, 0) + 0.5))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (zeros when nothing matches)."""
        tokens = [t for t in tokenize(query) if t in self._bm25.vocab_dict] if self.size else []
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return self._bm25.get_scores(tokens)

    def search(self, query: str, n: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top ``n`` (position, score) pairs with a positive score, best first.

        Args:
            query: the query text.
            n: how many to return at most.
            mask: optional boolean array; documents where it is False are left out.
        """
        scores = self.scores(query)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        positive = np.flatnonzero(scores > 0)
        if positive.size == 0 or n <= 0:
            return []
        top = positive[np.argsort(-scores[positive], kind="stable")[:n]]
        return [(int(i), float(scores[i])) for i in top]
