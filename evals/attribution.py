"""Scoring a support judge on AttributionBench rows (claim, evidence, label).

The paper's metric is macro-F1 over the two classes; precision and recall are those of the
"attributable" class. The default judge's weights are fitted here on a fixed half of a file
(:func:`split_half`, by a hash of the row id) so that the other half and other files stay unseen:

    python -m evals.attribution --calibrate /path/to/test_ood.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evals.jsonl import read_jsonl
from evals.judge import FEATURES, Calibration, LexicalJudge, SupportJudge, verbatim
from evals.metrics import binary_scores
from newsdesk.errors import UsageError

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class AttributionRow:
    """One judgement: whether ``claim`` is fully supported by ``evidence``."""

    id: str
    claim: str
    evidence: str
    label: bool
    source_dataset: str = ""
    question: str = ""


def load_rows(path: Path) -> list[AttributionRow]:
    """Read an AttributionBench JSONL file.

    Raises:
        UsageError: the file is missing or a line is malformed.

    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such attribution file: {path}")
    rows = []
    for number, raw in read_jsonl(path):
        try:
            rows.append(
                AttributionRow(
                    id=str(raw.get("id", number)),
                    claim=str(raw["claim"]),
                    evidence=str(raw["evidence"]),
                    label=bool(int(raw["label"])),
                    source_dataset=str(raw.get("source_dataset", "")),
                    question=str(raw.get("question", "")),
                )
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{path}:{number}: not an attribution row ({type(exc).__name__}: {exc})") from None
    if not rows:
        raise UsageError(f"{path} holds no rows")
    return rows


def split_half(rows: Sequence[AttributionRow]) -> tuple[list[AttributionRow], list[AttributionRow]]:
    """A fixed (calibration, held-out) split: a row goes to calibration when its id's SHA-1 is even."""
    calibration, held_out = [], []
    for row in rows:
        even = hashlib.sha1(row.id.encode("utf-8")).digest()[-1] % 2 == 0
        (calibration if even else held_out).append(row)
    return calibration, held_out


@dataclass
class AttributionResult:
    """A judge's figures on a set of rows."""

    file: str
    judge: str
    rows: int
    macro_f1: float
    precision: float
    recall: float
    accuracy: float
    by_source: dict[str, dict[str, float]]
    subset: str = "all"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (the ``--json`` output)."""
        return asdict(self)


def score_judge(
    judge: SupportJudge,
    rows: Sequence[AttributionRow],
    *,
    file: str = "",
    subset: str = "all",
    batch: int = 64,
    progress: Progress | None = None,
) -> AttributionResult:
    """Run ``judge`` over ``rows`` (premise = evidence, claim = claim) and score its verdicts."""
    predicted: list[bool] = []
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        scores = judge.scores([(r.evidence, r.claim) for r in chunk])
        predicted.extend(bool(s >= judge.threshold) for s in scores)
        if progress:
            progress("judge", min(start + batch, len(rows)), len(rows))
    gold = [r.label for r in rows]
    overall = binary_scores(predicted, gold)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups[row.source_dataset].append(i)
    by_source = {
        name: {"rows": len(idx), **binary_scores([predicted[i] for i in idx], [gold[i] for i in idx])}
        for name, idx in sorted(groups.items())
    }
    return AttributionResult(
        file=file,
        judge=judge.name,
        rows=len(rows),
        macro_f1=overall["macro_f1"],
        precision=overall["precision"],
        recall=overall["recall"],
        accuracy=overall["accuracy"],
        by_source=by_source,
        subset=subset,
    )


# --- calibration -----------------------------------------------------------------------------------------
def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iterations: int = 50) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method; returns weights with the bias last."""
    design = np.hstack([x, np.ones((x.shape[0], 1))])
    weights = np.zeros(design.shape[1])
    penalty = l2 * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        prob = 1.0 / (1.0 + np.exp(-(design @ weights)))
        gradient = design.T @ (prob - y) + penalty @ weights
        hessian = design.T @ (design * (prob * (1 - prob))[:, None]) + penalty
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(weights)), gradient)
        weights -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return weights


def best_threshold(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The probability threshold maximising macro-F1 on the given rows."""
    best, best_f1 = 0.5, -1.0
    gold = [bool(v) for v in labels]
    for threshold in np.linspace(0.2, 0.8, 61):
        f1 = binary_scores([bool(p >= threshold) for p in probabilities], gold)["macro_f1"]
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(threshold), f1
    return round(best, 3)


def calibrate(
    rows: Sequence[AttributionRow], embedder: Any = None, features: np.ndarray | None = None
) -> Calibration:
    """Fit the default judge's weights and decision threshold on ``rows``.

    Args:
        rows: labelled pairs.
        embedder: with it, the embedding features are fitted too; without, they get weight 0.
        features: the rows' feature matrix if already computed (``LexicalJudge(embedder).features``).

    """
    if features is None:
        features = LexicalJudge(embedder).features([(r.evidence, r.claim) for r in rows])
    labels = np.array([r.label for r in rows], dtype=np.float64)
    # verbatim claims are decided before the score is consulted: they do not shape the weights
    fit = ~np.array([verbatim(r.evidence, r.claim) for r in rows], dtype=bool)
    columns = [i for i, name in enumerate(FEATURES) if embedder is not None or "cosine" not in name]
    fitted = fit_logistic(features[fit][:, columns], labels[fit])
    weights = np.zeros(len(FEATURES) + 1)
    weights[columns] = fitted[:-1]
    weights[-1] = fitted[-1]
    calibration = Calibration(tuple(round(float(w), 4) for w in weights), 0.5)
    probabilities = np.where(fit, LexicalJudge(embedder, calibration).probabilities(features), 1.0)
    return Calibration(
        calibration.weights, best_threshold(probabilities, labels), note=f"fitted on {len(rows)} rows"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Print fitted calibrations (with and without embeddings) for the calibration half of a file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", type=Path, required=True, help="AttributionBench JSONL file")
    args = parser.parse_args(argv)
    from newsdesk.embedding import Embedder
    from newsdesk.settings import Settings

    rows = load_rows(args.calibrate)
    calibration_rows, _ = split_half(rows)
    in_calibration = {r.id for r in calibration_rows}
    embedder = Embedder.from_settings(Settings())
    pairs = [(r.evidence, r.claim) for r in rows]
    features = LexicalJudge(embedder).features(pairs)
    exact = np.array([verbatim(p, c) for p, c in pairs])
    labels = np.array([r.label for r in rows])
    fit_mask = np.array([r.id in in_calibration for r in rows])
    for name, model in (("CALIBRATED", embedder), ("CALIBRATED_LEXICAL", None)):
        fitted = calibrate(calibration_rows, model, features[fit_mask])
        print(f"{name} = {fitted!r}")
        probabilities = np.where(exact, 1.0, LexicalJudge(model, fitted).probabilities(features))
        for subset, mask in (("calibration", fit_mask), ("held-out", ~fit_mask)):
            scores = binary_scores(list(probabilities[mask] >= fitted.threshold), list(labels[mask]))
            print(
                f"  {subset:11} macro-F1 {scores['macro_f1']:.3f}  P {scores['precision']:.3f}  "
                f"R {scores['recall']:.3f}"
            )


if __name__ == "__main__":
    main()
