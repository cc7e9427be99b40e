"""BM25 over chunk texts (bm25s), with the tokenizer shared by queries and documents."""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

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


#: Bump when the saved layout of :class:`BM25Index` changes (tokenizer changes are detected by themselves).
INDEX_VERSION = 1
_PROBE = "The 2 ministers met in 2021; Beijing's engineers were killed, sources said, and talks began."


@lru_cache(maxsize=1)
def index_key() -> str:
    """Name the tokenizer and index layout; part of the name under which a saved index is kept.

    It changes with the stop words, the irregular forms, the code of :func:`tokenize` and what it
    makes of a probe sentence (a new stemmer), so an index saved by an older tokenizer is never loaded.
    """
    parts = [str(INDEX_VERSION), " ".join(sorted(STOPWORDS)), json.dumps(IRREGULAR, sort_keys=True),
             _TOKEN.pattern, inspect.getsource(tokenize), " ".join(tokenize(_PROBE))]
    return f"bm25-v{INDEX_VERSION}-{hashlib.sha256(chr(31).join(parts).encode()).hexdigest()[:10]}"


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

    def save(self, directory: Path) -> None:
        """Write the index under ``directory`` (JSON and ``.npy`` files: nothing is pickled)."""
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"size": self.size, "k1": self._bm25.k1, "b": self._bm25.b, "doc_freq": self.doc_freq}
        (directory / "lexical.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        if self.size:
            self._bm25.save(str(directory / "bm25"), show_progress=False)

    @classmethod
    def load(cls, directory: Path) -> BM25Index:
        """Read an index written by :meth:`save`."""
        meta = json.loads((directory / "lexical.json").read_text(encoding="utf-8"))
        index = cls.__new__(cls)
        index.size = int(meta["size"])
        index.doc_freq = Counter(meta["doc_freq"])
        if index.size:
            index._bm25 = bm25s.BM25.load(str(directory / "bm25"), show_progress=False)
            if index._bm25.scores["num_docs"] != index.size:
                held = index._bm25.scores["num_docs"]
                raise ValueError(f"{directory}: the BM25 matrix holds {held} documents, not {index.size}")
        else:
            index._bm25 = bm25s.BM25(k1=meta["k1"], b=meta["b"])
        return index

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
