from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evals import beir
from newsdesk.errors import UsageError
from tests.support import SHARED, needs_shared

SCIFACT = SHARED / "bench" / "scifact"


@pytest.fixture
def eval_app():
    """The real ``newsdesk`` app, where ``eval`` is registered."""
    from newsdesk.app.cli import app

    return app


DOCS = [
    ("d1", "Aspirin and heart attacks", "Daily low-dose aspirin reduces the risk of a first heart attack."),
    ("d2", "Vitamin D", "Vitamin D supplements do not prevent bone fractures in older adults."),
    ("d3", "Coffee", "Moderate coffee drinking is linked to lower mortality."),
    ("d4", "Sleep and memory", "Sleep deprivation impairs the consolidation of new memories."),
    ("d5", "Gut bacteria", "The gut microbiome influences the response to cancer immunotherapy."),
    ("d6", "Exercise", "Aerobic exercise improves insulin sensitivity in adults with type 2 diabetes."),
]
TEST_QUERIES = {
    "q1": "aspirin lowers heart attack risk",
    "q2": "does losing sleep hurt memory formation",
    "q3": "microbiome affects immunotherapy outcomes",
    "q9": "a query without judgements",
}
TRAIN_QUERIES = {"t1": "vitamin D and fractures", "t2": "coffee consumption and death rates"}


def write_beir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, t, x in DOCS) + "\n"
    )
    (root / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": q, "text": t}) for q, t in TEST_QUERIES.items()) + "\n"
    )
    (root / "train_queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": q, "text": t}) for q, t in TRAIN_QUERIES.items()) + "\n"
    )
    (root / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td4\t1\nq3\td5\t1\nq3\td3\t0\n")
    (root / "train.tsv").write_text("query-id\tcorpus-id\tscore\nt1\td2\t1\nt2\td3\t1\n")
    (root / "README.md").write_text(
        "| retriever | nDCG@10 |\n| --- | --- |\n| BM25 | 0.5 |\n| dense | .25 |\n"
    )
    return root


def test_load_beir_reads_splits_and_drops_unjudged_queries(tmp_path: Path):
    root = write_beir(tmp_path / "mini")
    test = beir.load_beir(root, "test")
    assert test.doc_ids == [d[0] for d in DOCS]
    assert (
        test.texts[0]
        == "Aspirin and heart attacks Daily low-dose aspirin reduces the risk of a first heart attack."
    )
    assert set(test.queries) == {"q1", "q2", "q3"}  # q9 has no judgement
    assert test.qrels["q3"] == {"d5": 1}  # score 0 is not relevant
    train = beir.load_beir(root, "train")
    assert train.queries == TRAIN_QUERIES
    with pytest.raises(UsageError, match="no judgements for split 'dev'"):
        beir.load_beir(root, "dev")
    with pytest.raises(UsageError, match="not a BEIR directory"):
        beir.load_beir(tmp_path, "test")


def test_ndcg_and_recall():
    relevant = {"a": 1, "b": 1}
    assert beir.ndcg_at_k(["a", "b", "x"], relevant) == pytest.approx(1.0)
    assert beir.ndcg_at_k(["x", "a"], relevant) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert beir.ndcg_at_k(["x"] * 10 + ["a"], relevant) == 0.0
    assert beir.ndcg_at_k(["a"], {"a": 2, "b": 1}) == pytest.approx(2 / (2 + 1 / math.log2(3)))
    assert beir.recall_at_k(["a", "x"], relevant) == 0.5
    assert beir.recall_at_k(["x", "a"], relevant, k=1) == 0.0


def test_convex_fusion_normalises_each_list_and_falls_back_when_one_is_empty():
    dense = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
    lexical = [("c", 30.0), ("b", 20.0), ("d", 10.0)]
    fused = dict(beir.convex_fusion([dense, lexical], [0.5, 0.5]))
    # minmax: dense a=1, b=0.875, c=0; lexical c=1, b=0.5, d=0; missing -> the list's floor (0)
    assert fused["b"] == pytest.approx(0.5 * 0.875 + 0.5 * 0.5)
    assert fused["a"] == pytest.approx(0.5)
    assert fused["c"] == pytest.approx(0.5)
    assert fused["d"] == pytest.approx(0.0)
    assert [k for k, _ in beir.convex_fusion([dense, lexical], [0.5, 0.5])][0] == "b"
    assert [k for k, _ in beir.convex_fusion([[], lexical], [0.9, 0.1])] == ["c", "b", "d"]
    assert [k for k, _ in beir.convex_fusion([dense, lexical], [1.0, 0.0])][:2] == ["a", "b"]
    z = dict(beir.convex_fusion([dense, lexical], normalise="z"))
    assert max(z, key=z.get) == "b"
    with pytest.raises(ValueError):
        beir.convex_fusion([dense], normalise="rank")


def test_fuse_by_rrf_and_convex():
    dense = [(1, 0.9), (2, 0.8), (4, 0.1)]
    lexical = [(2, 9.0), (3, 1.0)]
    assert beir.fuse(dense, lexical, beir.FusionConfig(method="rrf"))[0] == 2
    assert beir.fuse(dense, lexical, beir.FusionConfig(method="convex", dense_weight=0.5))[0] == 2
    assert beir.fuse(dense, lexical, beir.FusionConfig(method="rrf", depth=1)) in ([1, 2], [2, 1])
    with pytest.raises(ValueError):
        beir.fuse(dense, lexical, beir.FusionConfig(method="max"))


def test_published_figures_parse_the_readme_table(tmp_path: Path):
    assert beir.published_figures(write_beir(tmp_path / "mini")) == {"BM25": 0.5, "dense": 0.25}


@needs_shared("bench", "scifact")
def test_published_figures_of_scifact() -> None:
    figures = beir.published_figures(SCIFACT)
    assert figures["BAAI bge-small-en-v1.5 (MTEB)"] == 0.713
    assert len(figures) == 4


@pytest.mark.slow
def test_run_beir_scores_all_three_and_caches_embeddings(tmp_path: Path, embedder):
    root = write_beir(tmp_path / "mini")
    cache = tmp_path / "cache"
    first = beir.run_beir(root, embedder, cache_dir=cache)
    assert not first.cached_embeddings
    assert list(first.scores) == ["dense", "bm25", "hybrid"]
    assert first.queries == 3 and first.documents == 6
    for name, scores in first.scores.items():
        assert scores["ndcg_at_10"] > 0.9, name  # each query has one obvious answer
        assert scores["recall_at_100"] == 1.0, name
    assert first.published == {"BM25": 0.5, "dense": 0.25}
    assert len(list(cache.glob("*.npy"))) == 1
    second = beir.run_beir(root, embedder, cache_dir=cache)
    assert second.cached_embeddings
    assert second.scores == first.scores
    # a changed corpus must not reuse the cached vectors
    with (root / "corpus.jsonl").open("a") as handle:
        handle.write(json.dumps({"_id": "d7", "title": "New", "text": "A new abstract."}) + "\n")
    third = beir.run_beir(root, embedder, cache_dir=cache)
    assert not third.cached_embeddings and third.documents == 7
    ranked = beir.tune(
        root, embedder, [beir.FusionConfig(), beir.FusionConfig(method="convex")], cache_dir=cache
    )
    assert len(ranked) == 2 and ranked[0][2]["hybrid"]["ndcg_at_10"] >= ranked[1][2]["hybrid"]["ndcg_at_10"]


@pytest.mark.slow
def test_eval_command_beir_json(tmp_path: Path, eval_app):
    from typer.testing import CliRunner

    root = write_beir(tmp_path / "mini")
    result = CliRunner().invoke(
        eval_app, ["eval", "--beir", str(root), "--json", "--data-dir", str(tmp_path / "data")]
    )
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert set(got["scores"]) == {"dense", "bm25", "hybrid"}
    assert got["split"] == "test" and got["queries"] == 3
    assert (tmp_path / "data" / "beir-cache").is_dir()
    bad = CliRunner().invoke(eval_app, ["eval", "--beir", str(tmp_path / "nowhere")])
    assert bad.exit_code == 2
    assert "no such BEIR directory" in bad.output
