"""Answer-sentence selection and abstention as two small fitted models over named features.

Every candidate sentence gets the features of :data:`SENTENCE_FEATURES` (see
:meth:`retrieval.answer.ExtractiveAnswerer.score`); a logistic model with one weights table turns them into
the probability that the sentence states the answer. Whether to answer at all is a second logistic model
over question-level features (:data:`ABSTENTION_FEATURES`, a few of :data:`QUESTION_FEATURES`). Both tables live in
``retrieval/selection_weights.json``, written by ``benchmarks/fit_answerer.py``, which fits them with
cross-validation over every development set there is and records the held-out figures beside the
weights. Nothing here is tuned by hand per question.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

#: Features of one candidate sentence, in the order of the weights table.
SENTENCE_FEATURES: tuple[str, ...] = (
    "dense",  # cosine similarity of question and sentence embeddings
    "overlap",  # IDF-weighted share of the question's words the sentence has
    "context_dense",  # the same two for the passage around the sentence
    "context_overlap",
    "prev_overlap",  # the overlap of the sentence before it in its passage
    "window_overlap",  # the overlap of it and the sentence before it, together
    "predicate",  # the share of the question's lower-case words (what it asks about its subject) in that window
    "dense_gap",  # dense - the best dense of any candidate of this question (<= 0)
    "overlap_gap",  # overlap - the best overlap of any candidate (<= 0)
    "rank",  # 1 / (1 + the passage's retrieval rank)
    "typed",  # the sentence holds something of the kind asked for that the question does not name
    "typed_window",  # typed x window_overlap: an item of the asked kind said where the question's words are
    "typed_predicate",  # typed x predicate
    "untyped",  # the question asks for a kind and the sentence holds none of it
    "ambiguity",  # how many different items of that kind it holds (0-1, saturating at 4)
    "support",  # answer redundancy: support of its best item across articles (0-1)
    "proximity",  # how close its nearest item stands to a word of the question (0-1)
    "focus_proximity",  # how close its nearest item stands to the noun asked about ("The airline, SpiceJet")
    "novelty",  # content words it adds to the question (0-1, saturating at 6)
    "question_mark",  # it is itself a question
    "headline",  # it ends without a full stop: a title or heading, which names the story but seldom answers
    "constraint_miss",  # share of the question's numbers and years missing from it and its passage
    "contradicts",  # it names another year, edition or quarter than the one asked about
    "lead",  # 1 for a sentence at the top of its article, falling with its offset
    "focus",  # it has the noun the question asks for ("company" for "which company")
    "complete_date",  # a "when" question and it gives day, month and year
    "length",  # its length in words (0-1, saturating at 60)
)

#: Features of a question and its best candidate, for deciding whether to answer.
QUESTION_FEATURES: tuple[str, ...] = (
    "best_logit",  # the selection model's logit of the best sentence
    "best_probability",  # its share of the softmax over the question's candidates
    "best_dense",
    "best_overlap",
    "best_context_overlap",
    "best_typed",
    "best_support",
    "max_overlap",  # the highest overlap of any candidate
    "best_predicate",  # the best sentence's predicate share
    "max_typed_predicate",  # the highest predicate share of a candidate holding an item of the asked kind
    "covered",  # IDF-weighted share of the question's words found in any retrieved passage
    "rare_missing",  # the highest IDF of a question word found in no retrieved passage, over the highest IDF
    "wants_item",  # the question asks for a name, date, amount or place
)

#: The question features the abstention model uses: few, because unanswerable questions are few in the
#: development sets (14 of 172) and a wider model fitted the sets' differences instead (see the README).
ABSTENTION_FEATURES: tuple[str, ...] = ("best_overlap", "best_dense")

#: Sentence features with a fixed weight on their raw value, not fitted: a sentence about another year or
#: edition than the one asked about, or a question itself ("Who will win the Cup?"), is no answer, however
#: well it matches. The development sets hold too few such sentences for a fitted weight to say so reliably.
FIXED_SELECTION: Mapping[str, float] = {"contradicts": -10.0, "question_mark": -10.0}

WEIGHTS_FILE = Path(__file__).with_name("selection_weights.json")


@dataclass(frozen=True)
class Linear:
    """A logistic model: ``sigmoid(bias + sum(weight * feature))`` over named features."""

    weights: Mapping[str, float]
    bias: float
    #: feature means and scales the weights were fitted on (standardised features)
    means: Mapping[str, float]
    scales: Mapping[str, float]
    #: weights on raw (not standardised) feature values, set by hand rather than fitted
    fixed: Mapping[str, float] = field(default_factory=dict)

    def logit(self, features: Mapping[str, float]) -> float:
        """The model's log-odds for ``features`` (missing features count as their mean)."""
        total = self.bias + sum(weight * features.get(name, 0.0) for name, weight in self.fixed.items())
        for name, weight in self.weights.items():
            value = features.get(name, self.means.get(name, 0.0))
            total += weight * (value - self.means.get(name, 0.0)) / (self.scales.get(name, 1.0) or 1.0)
        return total

    def probability(self, features: Mapping[str, float]) -> float:
        """The model's probability for ``features``."""
        z = self.logit(features)
        return 1.0 / (1.0 + math.exp(-z)) if z > -60 else 0.0

    def to_json(self) -> dict[str, object]:
        """The table as written to the weights file."""
        return {"weights": dict(self.weights), "bias": self.bias, "means": dict(self.means),
                "scales": dict(self.scales), "fixed": dict(self.fixed)}

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> Linear:
        """Read a table written by :meth:`to_json`."""
        return cls(dict(raw["weights"]), float(raw["bias"]), dict(raw["means"]), dict(raw["scales"]),
                   dict(raw.get("fixed", {})))


@dataclass(frozen=True)
class Models:
    """The fitted tables: sentence selection, abstention and the short answer's threshold."""

    selection: Linear
    abstention: Linear
    #: answer when the abstention model's probability that the question is answerable is at least this
    answer_threshold: float
    #: show a short answer when the chosen sentence's share of the selection softmax is at least this
    short_threshold: float


@lru_cache(maxsize=4)
def load_models(path: Path = WEIGHTS_FILE) -> Models:
    """Read the fitted tables (cached)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return Models(
        selection=Linear.from_json(raw["selection"]),
        abstention=Linear.from_json(raw["abstention"]),
        answer_threshold=float(raw["answer_threshold"]),
        short_threshold=float(raw["short_threshold"]),
    )
