from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evals.attribution import AttributionRow, calibrate, fit_logistic, load_rows, score_judge, split_half
from evals.judge import LexicalJudge, NLIJudge, SupportJudge, make_judge, verbatim
from newsdesk.errors import ModelUnavailable, UsageError

PREMISE = (
    "The capacity of the Special Protection Unit is being enhanced to further strengthen security for "
    "Chinese citizens. The meeting focused on the law and order situation in Punjab."
)


def test_verbatim_folds_case_whitespace_markers_and_final_stop():
    assert verbatim(PREMISE, "the capacity of the special   protection unit is being enhanced [1].")
    assert not verbatim(PREMISE, "The capacity of the unit is being reduced.")
    assert not verbatim(PREMISE, " [1] ")


def test_lexical_judge_scores_verbatim_one_and_separates_related_from_unrelated():
    judge = LexicalJudge()
    assert isinstance(judge, SupportJudge)
    scores = judge.scores(
        [
            (PREMISE, "The meeting focused on the law and order situation in Punjab."),
            (PREMISE, "The Special Protection Unit's capacity is being enhanced for Chinese citizens."),
            (PREMISE, "Farmers in Brazil expect a record soybean harvest next spring."),
        ]
    )
    assert scores[0] == 1.0
    assert scores[1] > judge.threshold > scores[2]
    assert judge.supports(PREMISE, "The capacity of the Special Protection Unit is being enhanced.")
    assert not judge.supports(PREMISE, "Farmers in Brazil expect a record soybean harvest next spring.")


def test_lexical_judge_penalises_numbers_the_premise_lacks():
    judge = LexicalJudge()
    premise = "A truck carrying 100 kg of explosives waited for 40 minutes near the airport."
    right, wrong = judge.scores(
        [
            (premise, "The truck waited for 40 minutes near the airport."),
            (premise, "The truck waited for 90 minutes near the airport."),
        ]
    )
    assert right > wrong


def test_make_judge_names():
    assert make_judge("lexical").name == "lexical"
    with pytest.raises(UsageError, match="unknown judge"):
        make_judge("oracle")
    with pytest.raises(ModelUnavailable, match="cannot load NLI model"):
        make_judge("nli:/nonexistent/model-dir")


# --- attribution scoring ---------------------------------------------------------------------------------
def _rows() -> list[AttributionRow]:
    return [
        AttributionRow(
            id="1", claim="The unit is being enhanced.", evidence=PREMISE, label=True, source_dataset="A"
        ),
        AttributionRow(
            id="2",
            claim="Soybean harvests hit a record in Brazil.",
            evidence=PREMISE,
            label=False,
            source_dataset="A",
        ),
        AttributionRow(
            id="3",
            claim="The meeting focused on law and order in Punjab.",
            evidence=PREMISE,
            label=True,
            source_dataset="B",
        ),
        AttributionRow(
            id="4",
            claim="The meeting focused on trade tariffs.",
            evidence=PREMISE,
            label=False,
            source_dataset="B",
        ),
    ]


def test_score_judge_reports_macro_f1_precision_recall_by_source():
    result = score_judge(LexicalJudge(), _rows(), file="x.jsonl")
    assert result.rows == 4
    assert result.macro_f1 == pytest.approx(1.0)
    assert result.precision == 1.0 and result.recall == 1.0
    assert set(result.by_source) == {"A", "B"}


class _SaysYes:
    name = "yes"
    threshold = 0.5

    def scores(self, pairs):
        return np.ones(len(pairs))

    def supports(self, premise, claim):
        return True


def test_score_judge_can_fail_a_judge_that_always_agrees():
    result = score_judge(_SaysYes(), _rows())
    assert result.recall == 1.0 and result.precision == 0.5
    assert result.macro_f1 == pytest.approx((2 / 3 + 0) / 2)


def test_load_rows_and_fixed_split(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"id": f"r{i}", "claim": "c", "evidence": "e", "label": i % 2}) for i in range(200)
        )
        + "\n"
    )
    rows = load_rows(path)
    calibration, held_out = split_half(rows)
    assert len(calibration) + len(held_out) == 200
    assert 60 < len(calibration) < 140
    assert {r.id for r in calibration}.isdisjoint({r.id for r in held_out})
    assert split_half(rows) == (calibration, held_out)  # fixed, not random
    (tmp_path / "bad.jsonl").write_text('{"id": 1, "claim": "c"}\n')
    with pytest.raises(UsageError, match="bad.jsonl:1"):
        load_rows(tmp_path / "bad.jsonl")


def test_fit_logistic_recovers_a_separating_direction():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] - 0.5 * x[:, 1] > 0.2).astype(float)
    w = fit_logistic(x, y, l2=1e-3)
    assert w[0] > 0 > w[1]
    accuracy = ((np.hstack([x, np.ones((400, 1))]) @ w > 0) == (y > 0)).mean()
    assert accuracy > 0.95


def test_calibrate_lexical_on_rows_gives_a_working_judge():
    rows = _rows() * 5
    fitted = calibrate(rows, embedder=None)
    assert fitted.weights[0] > 0  # coverage helps
    assert all(w == 0 for w in fitted.weights[4:6])  # no embedding features without an embedder
    assert score_judge(LexicalJudge(None, fitted), _rows()).macro_f1 == pytest.approx(1.0)


# --- model-backed ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_default_judge_with_embeddings_accepts_a_reworded_sentence(embedder):
    judge = make_judge("default", embedder)
    assert judge.name == "default"
    reworded = "Security for Chinese citizens is being strengthened by enhancing the Special Protection Unit."
    unrelated = "The central bank left interest rates unchanged on Thursday."
    assert judge.supports(PREMISE, reworded)
    assert not judge.supports(PREMISE, unrelated)
    # a synonym-spun copy is far from the original in words and in MiniLM's space: the calibrated judge
    # ranks it above an unrelated claim but does not accept it (an NLI judge is the remedy)
    spun = (
        "The capability of the Particular Safety Unit is being enhanced to additional strengthen safety "
        "for Chinese language residents."
    )
    original = "The capacity of the Special Protection Unit is being enhanced to further strengthen security."
    spun_score, unrelated_score = judge.scores([(spun, original), (spun, unrelated)])
    assert spun_score > unrelated_score


def _tiny_nli(directory: Path, entail_first: bool, bias_to: str) -> Path:
    """A 1-layer BERT NLI cross-encoder with a hand-made vocabulary; its head is biased to one label."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    labels = (
        ["entailment", "neutral", "contradiction"]
        if entail_first
        else ["contradiction", "entailment", "neutral"]
    )
    words = (
        "the unit is being enhanced capacity of special protection meeting focused on law and order".split()
    )
    directory.mkdir(parents=True)
    (directory / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n"
    )
    tokenizer = BertTokenizer(str(directory / "vocab.txt"))
    config = BertConfig(
        vocab_size=5 + len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=3,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([8.0 if label == bias_to else 0.0 for label in labels]))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.slow
def test_nli_judge_reads_the_entailment_label_of_a_local_cross_encoder(tmp_path: Path):
    yes = make_judge(f"nli:{_tiny_nli(tmp_path / 'yes', entail_first=True, bias_to='entailment')}")
    no = make_judge(f"nli:{_tiny_nli(tmp_path / 'no', entail_first=False, bias_to='contradiction')}@0.4")
    assert isinstance(yes, NLIJudge) and yes.entailment_index == 0
    assert isinstance(no, NLIJudge) and no.entailment_index == 1 and no.threshold == 0.4
    claim = "The meeting focused on law and order."
    assert yes.scores([(PREMISE, claim)])[0] > 0.99
    assert yes.supports(PREMISE, claim)
    assert no.scores([(PREMISE, claim)])[0] < 0.01
    assert not no.supports(PREMISE, claim)
    # a verbatim sentence is supported without asking the model
    assert no.supports(PREMISE, "The meeting focused on the law and order situation in Punjab.")
    assert score_judge(no, _rows()).recall == 0.0
