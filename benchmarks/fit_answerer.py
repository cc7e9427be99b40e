"""Fit the answerer's weights tables with cross-validation over every development set, and report held-out figures.

Two steps:

``dump``  runs every question of each development set through retrieval and sentence scoring (the real
          answerer, the real stores) and writes each candidate sentence's named features, whether it holds a
          gold answer, and the short answer it would give, to a JSONL file.
``fit``   reads the dumps, fits the sentence-selection model (logistic regression over
          ``retrieval.selection.SENTENCE_FEATURES``), the abstention model (over ``ABSTENTION_FEATURES``) and
          the short-answer threshold with grouped k-fold cross-validation (folds are whole questions,
          stratified by dataset), prints the held-out figures per dataset, then refits on everything and
          writes ``retrieval/selection_weights.json`` with the held-out figures recorded beside the weights.

    python benchmarks/fit_answerer.py dump --set bbc=../shared/bench/bbc/dev.jsonl@STORE_BBC \
        --set rgb=../shared/bench/rgb/questions.jsonl@STORE_RGB --out /tmp/dump.jsonl
    python benchmarks/fit_answerer.py fit /tmp/dump.jsonl [--write]

(STORE_BBC, STORE_RGB: data directories holding those articles, made by ``newsdesk ingest``; the shipped
tables are fitted on all four development sets: sample, RGB, BBC and timeline.)

Held-out means: the figures for a question come from models fitted without any question of its fold. The
answerer's fixed "not stated" rules (``retrieval.answer.not_stated``, not fitted) are recorded per candidate
by ``dump`` and applied to the held-out best sentence, so the abstention figures are the shipped answerer's.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# --- dump -----------------------------------------------------------------------------------------------------
def dump(sets: list[str], out: Path, k: int) -> None:
    from evals.harness import load_dataset
    from evals.metrics import matches_gold
    from newsdesk.app.runtime import Services
    from newsdesk.settings import Settings
    from retrieval import timeframe
    from retrieval.answer import ExtractiveAnswerer, analyze_question, not_stated
    from retrieval.base import SearchFilters

    rows = 0
    with out.open("w", encoding="utf-8") as sink:
        for spec in sets:
            name, rest = spec.split("=", 1)
            dataset, data_dir = rest.split("@", 1)
            settings = Settings(data_dir=Path(data_dir))
            services = Services.from_settings(settings)
            answerer = services.answerer
            assert isinstance(answerer, ExtractiveAnswerer)
            for item in load_dataset(Path(dataset)):
                q = analyze_question(item.question, None)
                # as the answerer does: the question's as-of date and time window narrow the search
                filters, _ = timeframe.narrow(
                    q.text, SearchFilters(as_of=item.as_of) if item.as_of else None, settings.as_of,
                    answerer.searcher,
                )
                passages, candidates, support = answerer.gather(q, filters=filters, k=k)
                qf = answerer.question_features(q, candidates, passages)
                record = {
                    "dataset": name,
                    "id": item.id,
                    "answerable": item.answerable,
                    "question": {key: qf.get(key, 0.0) for key in ("max_overlap", "covered", "rare_missing",
                                                                    "wants_item", "max_typed_predicate")},
                    "candidates": [],
                }
                for cand in candidates:
                    short = answerer.short_item(q, cand, support)
                    gap = not_stated(q, cand, candidates)
                    record["candidates"].append({
                        "features": cand.features,
                        "label": bool(item.answerable and matches_gold(cand.text, item.answers)),
                        "short": short,
                        "short_label": bool(short and item.answerable and matches_gold(short, item.answers)),
                        # the answerer's rules say this sentence, were it the best, does not state the item
                        # (the 8 best under the shipped table stand in for the "none of the best" checks)
                        "not_stated": gap[0] if gap else None,
                        "text": cand.text[:300],
                    })
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                rows += 1
            print(f"{name}: dumped", file=sys.stderr)
    print(f"{rows} questions -> {out}", file=sys.stderr)


# --- fit ------------------------------------------------------------------------------------------------------
def _folds(records: list[dict], n_folds: int, seed: int) -> list[int]:
    """A fold per question, stratified by dataset and by answerable."""
    rng = random.Random(seed)
    fold = [0] * len(records)
    groups: dict[tuple[str, bool], list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        groups[(r["dataset"], r["answerable"])].append(i)
    for members in groups.values():
        rng.shuffle(members)
        for j, i in enumerate(members):
            fold[i] = j % n_folds
    return fold


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    means = x.mean(axis=0)
    scales = x.std(axis=0)
    scales[scales < 1e-9] = 1.0
    return means, scales


def _fit_linear(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], c: float, balanced: bool) -> dict:
    from sklearn.linear_model import LogisticRegression

    means, scales = _standardise(x)
    model = LogisticRegression(C=c, class_weight="balanced" if balanced else None, max_iter=2000)
    model.fit((x - means) / scales, y)
    return {
        "weights": {n: float(w) for n, w in zip(names, model.coef_[0], strict=True)},
        "bias": float(model.intercept_[0]),
        "means": {n: float(m) for n, m in zip(names, means, strict=True)},
        "scales": {n: float(s) for n, s in zip(names, scales, strict=True)},
    }


def _fit_listwise(records: list[dict], names: tuple[str, ...], l2: float) -> dict:
    """Sentence selection as a conditional logit: per question, a softmax over its candidate sentences.

    Maximises the probability mass the model puts on the sentences holding a gold answer, with an L2
    penalty (``l2``) on the standardised weights. Questions with no such candidate carry no information
    about which sentence to pick and are left out.
    """
    from scipy.optimize import minimize

    from retrieval.selection import FIXED_SELECTION

    names = tuple(n for n in names if n not in FIXED_SELECTION)
    groups = []
    for r in records:
        labels = np.asarray([c["label"] for c in r["candidates"]], dtype=bool)
        if r["answerable"] and labels.any():
            x = np.asarray([[c["features"].get(n, 0.0) for n in names] for c in r["candidates"]])
            offset = np.asarray([sum(w * c["features"].get(n, 0.0) for n, w in FIXED_SELECTION.items())
                                 for c in r["candidates"]])
            groups.append((x, offset, labels))
    stacked = np.vstack([x for x, _, _ in groups])
    means, scales = _standardise(stacked)
    groups = [((x - means) / scales, o, y) for x, o, y in groups]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = l2 * float(w @ w), 2 * l2 * w
        for z, o, y in groups:
            s = z @ w + o
            e = np.exp(s - s.max())
            p = e / e.sum()
            mass = p[y].sum()
            total -= math.log(mass + 1e-12)
            grad = grad - (p[y] @ z[y]) / (mass + 1e-12) + p @ z
        return total, grad

    w = minimize(loss, np.zeros(len(names)), jac=True, method="L-BFGS-B").x
    # the table's logit is bias + sum(w * (x - mean) / scale); the bias does not change the choice within a
    # question, so it is set to make the best candidate's probability calibrated enough for the short threshold
    return {
        "weights": {n: float(v) for n, v in zip(names, w, strict=True)},
        "bias": 0.0,
        "means": {n: float(m) for n, m in zip(names, means, strict=True)},
        "scales": {n: float(v) for n, v in zip(names, scales, strict=True)},
        "fixed": dict(FIXED_SELECTION),
    }


def _logit(table: dict, feats: dict) -> float:
    from retrieval.selection import Linear

    return Linear.from_json(table).logit(feats)


def _question_features(record: dict, best: dict, best_logit: float, best_prob: float) -> dict[str, float]:
    f = best["features"]
    return {
        "best_logit": best_logit,
        "best_probability": best_prob,
        "best_dense": f["dense"],
        "best_overlap": f["overlap"],
        "best_context_overlap": f["context_overlap"],
        "best_typed": f["typed"],
        "best_support": f["support"],
        "best_predicate": f.get("predicate", 0.0),
        **record["question"],
    }


def _best(record: dict, table: dict) -> tuple[dict | None, float, float]:
    """The best candidate under ``table``, its logit and its share of the softmax over the candidates."""
    scored = [(_logit(table, c["features"]), c) for c in record["candidates"]]
    if not scored:
        return None, -math.inf, 0.0
    logit, cand = max(scored, key=lambda x: x[0])
    mass = sum(math.exp(z - logit) for z, _ in scored)
    return cand, logit, 1.0 / mass


def _second_holds(record: dict, table: dict) -> bool:
    """Whether the best sentence, or the second one the answerer would also quote, holds a gold answer.

    The answerer quotes a second sentence when its probability is at least ``ExtractiveAnswerer.second_ratio``
    times the best's; this is the held-out counterpart of the lenient answer accuracy.
    """
    from retrieval.answer import ExtractiveAnswerer

    ratio = ExtractiveAnswerer.second_ratio
    scored = sorted(((_logit(table, c["features"]), c) for c in record["candidates"]), key=lambda x: -x[0])
    if not scored:
        return False
    if scored[0][1]["label"]:
        return True
    return len(scored) > 1 and scored[1][1]["label"] and math.exp(scored[1][0] - scored[0][0]) >= ratio


def _choose_threshold(probs: list[float], answerable: list[bool], correct: list[bool]) -> float:
    """The answering threshold that maximises a utility on the training questions.

    Utility: +1 for a correct answer and 0 for a wrong one to an answerable question, -0.5 for abstaining on
    it (an answer lost, and an abstention that was not needed); +1 for abstaining on an unanswerable question
    and -1 for answering it.
    """
    best_t, best_u = 0.5, -math.inf
    for t in sorted(set([0.0, *probs])):
        u = 0.0
        for p, ok, right in zip(probs, answerable, correct, strict=True):
            answered = p >= t
            if ok:
                u += (1.0 if right else 0.0) if answered else -0.5
            else:
                u += -1.0 if answered else 1.0
        if u > best_u + 1e-9:
            best_t, best_u = t, u
    return _between(best_t, probs)


def _between(t: float, values: list[float]) -> float:
    """``t`` moved halfway down to the next lower of ``values``: a threshold exactly on a training question's
    score would flip that question (and its like) on the least numerical noise."""
    lower = [v for v in values if v < t]
    return (t + max(lower)) / 2 if lower else t


def _choose_short(pairs: list[tuple[float, bool]], precision: float) -> float:
    """The lowest selection probability from which shown short answers keep ``precision`` on training data."""
    for t in sorted({p for p, _ in pairs}):
        shown = [ok for p, ok in pairs if p >= t]
        if shown and sum(shown) / len(shown) >= precision:
            return _between(t, [p for p, _ in pairs])
    return 1.01


def fit(
    paths: list[Path], n_folds: int, seed: int, c: float, l2: float, write: bool, short_precision: float,
    repeats: int = 1,
) -> dict:
    from retrieval.selection import ABSTENTION_FEATURES as QUESTION_FEATURES
    from retrieval.selection import SENTENCE_FEATURES, WEIGHTS_FILE

    records = [json.loads(line) for p in paths for line in p.read_text(encoding="utf-8").splitlines() if line]

    def selection_table(idx: list[int]) -> dict:
        return _fit_listwise([records[i] for i in idx], SENTENCE_FEATURES, l2)

    def stage(train: list[int]) -> dict:
        """Every model fitted on ``train`` questions alone (inner folds for the abstention features)."""
        selection = selection_table(train)
        # abstention features of the training questions come from selection models that did not see them
        inner = _folds([records[i] for i in train], n_folds, seed + 1)
        q_rows, q_y, correct, shorts = [], [], [], []
        for f in range(n_folds):
            inner_train = [i for i, g in zip(train, inner, strict=True) if g != f]
            inner_test = [i for i, g in zip(train, inner, strict=True) if g == f]
            table = selection_table(inner_train)
            for i in inner_test:
                best, logit, prob = _best(records[i], table)
                if best is None:
                    continue
                q_rows.append([_question_features(records[i], best, logit, prob)[n] for n in QUESTION_FEATURES])
                q_y.append(int(records[i]["answerable"]))
                correct.append(bool(best["label"]))
                if records[i]["answerable"] and best["short"]:
                    shorts.append((prob, bool(best["short_label"])))
        qx = np.asarray(q_rows, dtype=np.float64)
        abstention = _fit_linear(qx, np.asarray(q_y), QUESTION_FEATURES, c, balanced=True)
        probs = [1 / (1 + math.exp(-_logit(abstention, dict(zip(QUESTION_FEATURES, row, strict=True)))))
                 for row in q_rows]
        threshold = _choose_threshold(probs, [bool(v) for v in q_y], correct)
        return {"selection": selection, "abstention": abstention, "answer_threshold": threshold,
                "short_threshold": _choose_short(shorts, short_precision)}

    reports = []
    for repeat in range(repeats):
        fold = _folds(records, n_folds, seed + 100 * repeat)
        reports.append(_report(records, _held_out(records, fold, n_folds, stage)))
        print(f"repeat {repeat + 1}/{repeats}: bbc strict {reports[-1].get('bbc', {}).get('strict_top1_answered')}",
              file=sys.stderr)
    report = _mean_report(reports)
    print(json.dumps(report, indent=2))
    final = stage(list(range(len(records))))
    if write:
        final["note"] = (f"fitted by benchmarks/fit_answerer.py on {sorted({r['dataset'] for r in records})}, "
                         f"selection L2={l2}, abstention C={c}, {n_folds}-fold grouped CV repeated {repeats} "
                         "times; held-out figures (mean, min, max over the repeats) below")
        final["held_out"] = report
        WEIGHTS_FILE.write_text(json.dumps(final, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {WEIGHTS_FILE}", file=sys.stderr)
    return report


def _mean_report(reports: list[dict]) -> dict:
    """Each figure's mean over the repeats, with its range: {"mean": m, "min": a, "max": b}."""
    out: dict = {}
    for name in reports[0]:
        out[name] = {}
        for key, value in reports[0][name].items():
            values = [r[name][key] for r in reports if r[name][key] is not None]
            if key == "questions" or not values:
                out[name][key] = value
            else:
                out[name][key] = {"mean": round(sum(values) / len(values), 3), "min": min(values), "max": max(values)}
    return out


def _held_out(records: list[dict], fold: list[int], n_folds: int, stage) -> list[dict]:
    """Each question's outcome under models fitted on the other folds."""
    held: list[dict] = [{} for _ in records]
    for f in range(n_folds):
        train = [i for i in range(len(records)) if fold[i] != f]
        models = stage(train)
        for i in (i for i in range(len(records)) if fold[i] == f):
            best, logit, prob = _best(records[i], models["selection"])
            if best is None:
                held[i] = {"answered": False, "correct": False, "short": None}
                continue
            qf = _question_features(records[i], best, logit, prob)
            p = 1 / (1 + math.exp(-_logit(models["abstention"], qf)))
            answered = p >= models["answer_threshold"] and not best.get("not_stated")
            short = best["short"] if answered and prob >= models["short_threshold"] else None
            held[i] = {"answered": answered, "correct": answered and bool(best["label"]),
                       "top1": bool(best["label"]), "short": short,
                       "any_quoted": answered and _second_holds(records[i], models["selection"]),
                       "short_ok": bool(short) and bool(best["short_label"])}
    return held


def _report(records: list[dict], held: list[dict]) -> dict:
    out = {}
    for name in sorted({r["dataset"] for r in records}) + ["all"]:
        idx = [i for i, r in enumerate(records) if name in ("all", r["dataset"])]
        ans = [i for i in idx if records[i]["answerable"]]
        una = [i for i in idx if not records[i]["answerable"]]
        abst = [i for i in idx if not held[i]["answered"]]
        shown = [i for i in ans if held[i].get("short")]
        out[name] = {
            "questions": len(idx),
            "strict_top1_answered": round(sum(held[i]["correct"] for i in ans) / len(ans), 3) if ans else None,
            "top1_sentence": round(sum(held[i].get("top1", False) for i in ans) / len(ans), 3) if ans else None,
            "any_quoted_answered": (round(sum(held[i].get("any_quoted", False) for i in ans) / len(ans), 3)
                                    if ans else None),
            "abstention_recall": round(sum(not held[i]["answered"] for i in una) / len(una), 3) if una else None,
            "abstention_precision": (round(sum(not records[i]["answerable"] for i in abst) / len(abst), 3)
                                     if abst else None),
            "short_coverage": round(len(shown) / len(ans), 3) if ans else None,
            "short_precision": round(sum(held[i]["short_ok"] for i in shown) / len(shown), 3) if shown else None,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="score every question's candidates and write their features")
    d.add_argument("--set", action="append", required=True, help="NAME=QUESTIONS.jsonl@DATA_DIR (repeatable)")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--k", type=int, default=5)
    f = sub.add_parser("fit", help="fit with grouped k-fold CV, print held-out figures, optionally --write")
    f.add_argument("dumps", type=Path, nargs="+")
    f.add_argument("--folds", type=int, default=5)
    f.add_argument("--seed", type=int, default=13)
    f.add_argument("--repeats", type=int, default=5, help="repeat the k-fold CV with other fold assignments")
    f.add_argument("--c", type=float, default=0.1, help="abstention model: inverse regularisation strength")
    f.add_argument("--l2", type=float, default=3.0, help="selection model: L2 penalty on standardised weights")
    f.add_argument("--short-precision", type=float, default=0.95,
                   help="precision the short-answer threshold aims for on training folds")
    f.add_argument("--write", action="store_true", help="write retrieval/selection_weights.json")
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.set, args.out, args.k)
    else:
        fit(args.dumps, args.folds, args.seed, args.c, args.l2, args.write, args.short_precision, args.repeats)


if __name__ == "__main__":
    main()
