"""Support judges, deciding whether a cited passage supports an answer sentence.

Two judges share one interface (:class:`SupportJudge`):

* :class:`LexicalJudge`, the offline default. A sentence found verbatim in the passage (case and whitespace
  folded) is supported. Otherwise a logistic score combines term and bigram coverage, numbers the passage
  lacks, and embedding similarity (best passage sentence and whole passage) when an embedder is given; its
  weights were fitted on a fixed half of AttributionBench's out-of-distribution file (see
  :func:`evals.attribution.calibrate`) and are kept below as constants.
* :class:`NLIJudge` (``--judge nli:MODEL``): a sentence-transformers ``CrossEncoder`` NLI model loaded from a
  local path or the local cache; supported when the entailment probability reaches the threshold.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from evals.metrics import strip_markers
from newsdesk.errors import ModelUnavailable, UsageError
from newsdesk.text import fold
from retrieval.lexical import tokenize

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_PREMISE_SENTENCES = 60  # enough for any cited passage; bounds the work on very long evidence


@runtime_checkable
class SupportJudge(Protocol):
    """Decides whether a premise (cited passages, joined) supports a claim (an answer sentence)."""

    name: str
    threshold: float

    def scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Support score in [0, 1] of each (premise, claim) pair."""
        ...

    def supports(self, premise: str, claim: str) -> bool:
        """True when ``premise`` supports ``claim``."""
        ...


class _Batching:
    """``supports`` and ``supports_many`` in terms of ``scores`` and ``threshold``, with a small cache."""

    name: str
    threshold: float

    def scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def supports_many(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """Verdicts for many pairs at once (one batched model call)."""
        return [bool(s >= self.threshold) for s in self.scores(pairs)] if pairs else []

    def supports(self, premise: str, claim: str) -> bool:
        """True when ``premise`` supports ``claim``."""
        cache: dict[tuple[str, str], bool] = self.__dict__.setdefault("_verdicts", {})
        key = (premise, claim)
        if key not in cache:
            if len(cache) > 10_000:
                cache.clear()
            cache[key] = self.supports_many([key])[0]
        return cache[key]


# --- the default judge -----------------------------------------------------------------------------------
FEATURES = (
    "coverage",  # share of the claim's content words found in the premise
    "bigram_coverage",  # share of the claim's word bigrams found in the premise
    "missing_numbers",  # share of the claim's numbers absent from the premise
    "claim_words",  # log(1 + number of content words in the claim)
    "best_sentence_cosine",  # embedding cosine with the closest premise sentence
    "premise_cosine",  # embedding cosine with the whole premise
)


@dataclass(frozen=True)
class Calibration:
    """Logistic weights over :data:`FEATURES` (bias last) and the decision threshold on the probability."""

    weights: tuple[float, ...]
    threshold: float
    note: str = ""


#: Fitted by ``python -m evals.attribution --calibrate shared/bench/attribution/test_ood.jsonl`` on the
#: calibration half of that file (851 rows; verbatim rows left out). Macro-F1 0.809 on the held-out half,
#: 0.691 on test.jsonl (in-distribution sources, never seen).
CALIBRATED = Calibration(
    weights=(2.5038, 3.3091, -0.4642, -0.1487, -0.092, 1.0291, -3.1032),
    threshold=0.44,
    note="test_ood.jsonl calibration half",
)
#: The same without the embedding features (no embedder given): held-out 0.809, test.jsonl 0.688.
CALIBRATED_LEXICAL = Calibration(
    weights=(2.8855, 3.2517, -0.4668, -0.0187, 0.0, 0.0, -3.0922),
    threshold=0.44,
    note="test_ood.jsonl calibration half",
)


def normalise(text: str) -> str:
    """Case- and whitespace-folded text without citation markers or closing punctuation."""
    return fold(strip_markers(text)).casefold().rstrip(" .!?;:")


def verbatim(premise: str, claim: str) -> bool:
    """True when the claim lies verbatim in the premise (case and whitespace folded)."""
    needle = normalise(claim)
    return bool(needle) and needle in fold(premise).casefold()


def premise_sentences(premise: str) -> list[str]:
    """The premise split into sentences (a cheap rule: end punctuation or a line break)."""
    parts = [fold(p) for p in _SENTENCE_END.split(premise)]
    return [p for p in parts if p][:_PREMISE_SENTENCES] or [fold(premise)]


def lexical_features(premise: str, claim: str) -> list[float]:
    """The lexical part of :data:`FEATURES` for one pair."""
    claim_tokens = tokenize(strip_markers(claim))
    premise_tokens = tokenize(premise)
    premise_set = set(premise_tokens)
    coverage = (sum(t in premise_set for t in claim_tokens) / len(claim_tokens)) if claim_tokens else 0.0
    claim_bigrams = list(zip(claim_tokens, claim_tokens[1:], strict=False))
    premise_bigrams = set(zip(premise_tokens, premise_tokens[1:], strict=False))
    bigram = (
        (sum(b in premise_bigrams for b in claim_bigrams) / len(claim_bigrams)) if claim_bigrams else coverage
    )
    numbers = set(_NUMBER.findall(claim))
    premise_numbers = set(_NUMBER.findall(premise))
    missing = (len(numbers - premise_numbers) / len(numbers)) if numbers else 0.0
    return [coverage, bigram, missing, math.log1p(len(claim_tokens))]


class LexicalJudge(_Batching):
    """The offline default: verbatim containment, else a calibrated lexical (+ embedding) score.

    Args:
        embedder: an :class:`newsdesk.embedding.Embedder` (anything with ``encode(texts)`` returning unit
            vectors); without one only the lexical features are used, with their own calibration.
        calibration: weights and threshold; defaults to the shipped calibration for the mode.

    """

    def __init__(self, embedder: Any = None, calibration: Calibration | None = None) -> None:
        self.embedder = embedder
        self.calibration = calibration or (CALIBRATED if embedder is not None else CALIBRATED_LEXICAL)
        self.threshold = self.calibration.threshold
        self.name = "default" if embedder is not None else "lexical"

    def features(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """The (n, len(FEATURES)) feature matrix of the pairs."""
        rows = [lexical_features(premise, claim) + [0.0, 0.0] for premise, claim in pairs]
        out = np.asarray(rows, dtype=np.float64).reshape(len(pairs), len(FEATURES))
        if self.embedder is None or not pairs:
            return out
        claims = [fold(strip_markers(c)) for _, c in pairs]
        sentences = [premise_sentences(p) for p, _ in pairs]
        wholes = [fold(p) for p, _ in pairs]
        unique = list(dict.fromkeys([*claims, *wholes, *(s for group in sentences for s in group)]))
        vectors = np.asarray(self.embedder.encode(unique), dtype=np.float32)
        index = {text: i for i, text in enumerate(unique)}
        for row, (claim, group, whole) in enumerate(zip(claims, sentences, wholes, strict=True)):
            claim_vec = vectors[index[claim]]
            group_vecs = vectors[[index[s] for s in group]]
            out[row, 4] = float(np.max(group_vecs @ claim_vec))
            out[row, 5] = float(vectors[index[whole]] @ claim_vec)
        return out

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Logistic probability of support for each feature row."""
        weights = np.asarray(self.calibration.weights, dtype=np.float64)
        logits = features @ weights[:-1] + weights[-1]
        return 1.0 / (1.0 + np.exp(-logits))

    def scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """1.0 for a verbatim claim, else the calibrated probability."""
        if not pairs:
            return np.zeros(0)
        exact = np.array([verbatim(p, c) for p, c in pairs])
        out = np.ones(len(pairs))
        rest = [pair for pair, hit in zip(pairs, exact, strict=True) if not hit]
        if rest:
            out[~exact] = self.probabilities(self.features(rest))
        return out


# --- NLI judge -------------------------------------------------------------------------------------------
class NLIJudge(_Batching):
    """Support by a CrossEncoder NLI model: the entailment probability of (premise, claim).

    Args:
        model: a loaded ``sentence_transformers.CrossEncoder`` with 3 labels (or 1: a support logit).
        name: shown in reports.
        threshold: entailment probability needed for support.
        entailment_index: the entailment label's index; found from ``id2label`` when not given, else the
            common ``contradiction, entailment, neutral`` order is assumed.

    """

    def __init__(
        self,
        model: Any,
        name: str = "nli",
        threshold: float = 0.5,
        entailment_index: int | None = None,
        batch_size: int = 16,
    ) -> None:
        self.model = model
        self.name = name
        self.threshold = threshold
        self.batch_size = batch_size
        labels = getattr(getattr(model, "config", None), "id2label", None) or {}
        if entailment_index is None:
            found = [int(i) for i, label in labels.items() if "entail" in str(label).lower()]
            entailment_index = found[0] if found else 1
        self.entailment_index = entailment_index

    def scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Entailment probability of each pair (verbatim claims short-cut to 1.0)."""
        if not pairs:
            return np.zeros(0)
        exact = np.array([verbatim(p, c) for p, c in pairs])
        out = np.ones(len(pairs))
        rest = [(p, fold(strip_markers(c))) for (p, c), hit in zip(pairs, exact, strict=True) if not hit]
        if rest:
            logits = np.asarray(
                self.model.predict(
                    rest,
                    batch_size=self.batch_size,
                    show_progress_bar=False,
                    apply_softmax=False,
                    convert_to_numpy=True,
                ),
                dtype=np.float64,
            )
            if logits.ndim == 1:
                probs = 1.0 / (1.0 + np.exp(-logits))
            else:
                shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
                probs = (shifted / shifted.sum(axis=1, keepdims=True))[:, self.entailment_index]
            out[~exact] = probs
        return out


def load_nli(spec: str, threshold: float = 0.5) -> NLIJudge:
    """Load ``MODEL`` (a local directory or a name in the local Hugging Face cache) as an NLI judge.

    Raises:
        ModelUnavailable: the model cannot be loaded without the network.

    """
    path = Path(spec).expanduser()
    if spec.startswith(("/", ".", "~")) and not path.is_dir():
        raise ModelUnavailable(f"cannot load NLI model {spec!r}: no such directory")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import CrossEncoder

    try:
        model = CrossEncoder(str(path) if path.is_dir() else spec, device="cpu", local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any loader failure reads the same to a user
        raise ModelUnavailable(
            f"cannot load NLI model {spec!r} offline ({type(exc).__name__}); give a local CrossEncoder "
            "directory or a model already in the Hugging Face cache, or use --judge default"
        ) from None
    return NLIJudge(model, name=f"nli:{spec}", threshold=threshold)


def check_judge_spec(spec: str | None) -> None:
    """Reject an unknown judge name before any model is loaded.

    Raises:
        UsageError: not 'default', 'lexical' or 'nli:MODEL'.

    """
    spec = (spec or "default").strip()
    if spec not in ("default", "lexical") and not (spec.startswith("nli:") and len(spec) > 4):
        raise UsageError(
            f"unknown judge {spec!r}: use 'default', 'lexical' or 'nli:MODEL' (a local CrossEncoder)"
        )


def make_judge(spec: str | None, embedder: Any = None) -> SupportJudge:
    """Build a judge from its command-line name.

    ``default`` (lexical + embedding, needs ``embedder``), ``lexical`` (no model), or ``nli:MODEL`` with an
    optional ``@THRESHOLD`` suffix (``nli:/models/nli@0.6``).

    Raises:
        UsageError: an unknown name.
        ModelUnavailable: the NLI model cannot be loaded.

    """
    check_judge_spec(spec)
    spec = (spec or "default").strip()
    if spec == "default":
        return LexicalJudge(embedder)
    if spec == "lexical":
        return LexicalJudge(None)
    model, threshold = spec[4:], 0.5
    head, sep, tail = model.rpartition("@")
    if sep and _is_float(tail):
        model, threshold = head, float(tail)
    return load_nli(model, threshold)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
