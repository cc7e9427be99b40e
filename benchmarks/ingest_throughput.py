"""Ingest throughput: the real pipeline against the bare model's ``encode`` of the same chunks.

Ingests a corpus (default: the 989 RGB articles; ``--corpus ../shared/bench/bbc/articles`` for BBC) into
a fresh temporary data dir through ``ingest.sync.ingest``, encodes the very texts it embedded with the bare
model (same batch size): the chunks, and the answer sentences ingest precomputes for the answerer (unless
``--no-sentences``; a sentence that is a whole chunk reuses the chunk's vector in the pipeline, while the bare
side encodes every one), then ingests the unchanged corpus again. Aims: pipeline/bare <= 1.3, re-ingest < 10%
of the first run.
The model runs on the configured backend (ONNX Runtime by default; ``--backend torch`` for
sentence-transformers), the same one for the pipeline and the bare encode.

    .venv/bin/python benchmarks/ingest_throughput.py [--corpus PATH] [--rounds N] [--backend B] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_CORPUS = ROOT.parent / "shared" / "bench" / "rgb" / "articles.jsonl"


class Stopwatch:
    """Accumulates the time spent inside wrapped callables, by stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, stage: str, func):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

        return timed


def one_round(corpus: Path, embedder, workdir: Path, precompute: bool = True) -> dict:
    import ingest.loaders
    import ingest.sync
    from newsdesk.settings import Settings
    from newsdesk.store import Store

    settings = Settings(data_dir=workdir, precompute_sentences=precompute)
    store = Store.from_settings(settings)
    watch = Stopwatch()
    originals = (ingest.loaders.load_sources, ingest.sync.chunk_article, embedder.encode,
                 store.write_articles)
    ingest.loaders.load_sources = watch.wrap("load", originals[0])
    ingest.sync.chunk_article = watch.wrap("chunk", originals[1])
    embedder.encode = watch.wrap("encode", originals[2])
    store.write_articles = watch.wrap("store", originals[3])
    try:
        started, cpu = time.perf_counter(), time.process_time()
        report = ingest.sync.ingest([str(corpus)], settings, store, embedder)
        first, first_cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        ingest.loaders.load_sources, ingest.sync.chunk_article = originals[0], originals[1]
        del embedder.encode, store.write_articles
    assert not report.failed, report.failed
    texts = [doc for _, doc, _ in store.iter_chunks()]
    assert len(texts) == report.chunks_embedded

    started, cpu = time.perf_counter(), time.process_time()
    embedder.model.encode(texts, batch_size=settings.embedding_batch_size, normalize_embeddings=True,
                          convert_to_numpy=True, show_progress_bar=False)
    bare_chunks, bare_chunks_cpu = time.perf_counter() - started, time.process_time() - cpu
    # the answer sentences ingest also embeds (newsdesk/sentence_vectors.py): the same texts, encoded bare
    from newsdesk.sentences import answer_sentences

    sentences = list(dict.fromkeys(t[a:b] for t in texts for a, b in answer_sentences(t)))
    # a sentence that is a whole chunk reuses the chunk's vector: ingest encodes fewer than it stores
    assert len(sentences) >= report.sentences_embedded or not settings.precompute_sentences
    started, cpu = time.perf_counter(), time.process_time()
    if settings.precompute_sentences:
        embedder.model.encode(sentences, batch_size=settings.embedding_batch_size, normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=False)
    bare_sentences, bare_sentences_cpu = time.perf_counter() - started, time.process_time() - cpu
    bare, bare_cpu = bare_chunks + bare_sentences, bare_chunks_cpu + bare_sentences_cpu

    started, cpu = time.perf_counter(), time.process_time()
    again = ingest.sync.ingest([str(corpus)], settings, store, embedder)
    second, second_cpu = time.perf_counter() - started, time.process_time() - cpu
    assert again.chunks_embedded == 0 and len(again.unchanged) == len(report.added) + len(report.updated)

    stages = {k: round(v, 2) for k, v in watch.seconds.items()}
    stages["other"] = round(first - sum(watch.seconds.values()), 2)
    return {
        "articles": len(report.added), "duplicates": len(report.duplicates), "chunks": report.chunks_embedded,
        "sentences": report.sentences_embedded,
        "sentences_reused": len(sentences) - report.sentences_embedded if settings.precompute_sentences else 0,
        "bare_chunks_seconds": bare_chunks,
        "bare_sentences_seconds": bare_sentences,
        "pipeline_seconds": first, "bare_encode_seconds": bare, "reingest_seconds": second,
        "pipeline_cpu_seconds": first_cpu, "bare_encode_cpu_seconds": bare_cpu,
        "reingest_cpu_seconds": second_cpu,
        "stages_seconds": stages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=1, help="repeat and report medians (noisy machines)")
    parser.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto",
                        help="what runs the model (NEWSDESK_EMBEDDING_BACKEND)")
    parser.add_argument("--no-sentences", action="store_true",
                        help="ingest without precomputing answer sentences (NEWSDESK_PRECOMPUTE_SENTENCES=false)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    from newsdesk.embedding import Embedder
    from newsdesk.settings import Settings

    started = time.perf_counter()
    embedder = Embedder.from_settings(Settings(embedding_backend=args.backend))
    load_seconds = time.perf_counter() - started
    embedder.encode(["warm-up so that neither side pays for the first call"])

    rounds = []
    with tempfile.TemporaryDirectory(prefix="newsdesk-bench-") as tmp:
        for number in range(args.rounds):
            rounds.append(one_round(args.corpus, embedder, Path(tmp) / f"round-{number}", not args.no_sentences))

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    pipeline, bare = median("pipeline_seconds"), median("bare_encode_seconds")
    second = median("reingest_seconds")
    pipeline_cpu, bare_cpu = median("pipeline_cpu_seconds"), median("bare_encode_cpu_seconds")
    second_cpu = median("reingest_cpu_seconds")
    chunks = rounds[0]["chunks"]
    result = {
        "corpus": str(args.corpus),
        "rounds": args.rounds,
        "articles": rounds[0]["articles"],
        "duplicates": rounds[0]["duplicates"],
        "chunks": chunks,
        "batch_size": embedder.batch_size,
        "backend": embedder.backend,
        "model_load_seconds": round(load_seconds, 2),
        "pipeline_seconds": round(pipeline, 2),
        "pipeline_chunks_per_second": round(chunks / pipeline, 1),
        "answer_sentences": rounds[0]["sentences"],
        "answer_sentences_reused": rounds[0]["sentences_reused"],
        "bare_chunks_seconds": round(median("bare_chunks_seconds"), 2),
        "bare_sentences_seconds": round(median("bare_sentences_seconds"), 2),
        "bare_encode_seconds": round(bare, 2),
        "bare_chunks_per_second": round(chunks / bare, 1),
        "pipeline_over_bare": round(pipeline / bare, 3),
        "reingest_seconds": round(second, 2),
        "reingest_share_of_first": round(second / pipeline, 4),
        # CPU seconds of this process (all its threads): steadier than wall time on a shared machine
        "pipeline_cpu_seconds": round(pipeline_cpu, 2),
        "bare_encode_cpu_seconds": round(bare_cpu, 2),
        "pipeline_over_bare_cpu": round(pipeline_cpu / bare_cpu, 3),
        "reingest_cpu_seconds": round(second_cpu, 2),
        "reingest_share_of_first_cpu": round(second_cpu / pipeline_cpu, 4),
        "stages_seconds": {
            stage: round(statistics.median(r["stages_seconds"][stage] for r in rounds), 2)
            for stage in rounds[0]["stages_seconds"]
        },
        "load_average": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("measure", "value", title=f"ingest throughput: {Path(args.corpus).name}")
    table.add_row("articles stored / duplicates", f"{result['articles']} / {result['duplicates']}")
    table.add_row("chunks embedded", str(chunks))
    table.add_row("pipeline (load+chunk+embed+store)",
                  f"{pipeline:.2f} s  ({result['pipeline_chunks_per_second']} chunks/s)")
    table.add_row("answer sentences embedded too (whole chunks, reused)",
                  f"{result['answer_sentences']} ({result['answer_sentences_reused']})")
    table.add_row(f"bare model encode ({embedder.backend}): chunks + sentences",
                  f"{result['bare_chunks_seconds']:.2f} + {result['bare_sentences_seconds']:.2f} = {bare:.2f} s")
    table.add_row("pipeline / bare  (aim <= 1.3)",
                  f"{result['pipeline_over_bare']:.3f} wall, {result['pipeline_over_bare_cpu']:.3f} CPU "
                  f"({result['pipeline_cpu_seconds']:.1f} / {result['bare_encode_cpu_seconds']:.1f} CPU s)")
    table.add_row("re-ingest unchanged", f"{second:.2f} s ({result['reingest_cpu_seconds']:.2f} CPU s)")
    table.add_row("re-ingest / first run  (aim < 10%)",
                  f"{100 * result['reingest_share_of_first']:.1f}% wall, "
                  f"{100 * result['reingest_share_of_first_cpu']:.1f}% CPU")
    stages = ", ".join(f"{k} {v:.2f}" for k, v in result["stages_seconds"].items())
    table.add_row("first run by stage (s)", stages)
    table.add_row("model load (not in the above)", f"{load_seconds:.2f} s")
    table.add_row("machine", f"{result['cpus']} CPUs, load average {result['load_average']}")
    Console().print(table)


if __name__ == "__main__":
    main()
