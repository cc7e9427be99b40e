"""``newsdesk eval``: the evaluation harness, the BEIR benchmark and the judge benchmark on the command line.

:func:`newsdesk.app.cli.build_app` registers :func:`eval_command`; the harness itself is :mod:`evals`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from newsdesk.app.common import load_embedder, make_settings, open_store, parse_date, user_errors
from newsdesk.app.console import emit_json, err, markup, out, progress_bar
from newsdesk.errors import UsageError


def _gate(flag: str) -> Any:
    return typer.Option(
        flag, min=0.0, show_default=False, help="Exit 1 when the metric falls below this share (0-1)."
    )


def eval_command(
    ctx: typer.Context,
    dataset: Annotated[
        Path | None,
        typer.Argument(help="Questions in the layout of shared/eval/README.md (JSONL).", show_default=False),
    ] = None,
    corpus: Annotated[
        list[str] | None,
        typer.Option(
            "--corpus",
            help="Articles to ingest into a fresh temporary index (repeatable); with --data-dir "
            "they are synced into that index instead.",
            show_default=False,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Reuse this data directory's index (default without --corpus: "
            "$NEWSDESK_DATA_DIR or ./.newsdesk).",
            show_default=False,
        ),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="Passages per answer and the k of hit@k.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write report.md, results.json and metrics.png into this directory.",
            show_default=False,
        ),
    ] = None,
    judge: Annotated[
        str,
        typer.Option(
            "--judge",
            help="Support judge: 'default' (verbatim, else lexical + embedding), 'lexical', or "
            "'nli:MODEL[@THRESHOLD]' (a local CrossEncoder NLI model).",
        ),
    ] = "default",
    min_answer_accuracy: Annotated[float | None, _gate("--min-answer-accuracy")] = None,
    min_strict_accuracy: Annotated[float | None, _gate("--min-strict-accuracy")] = None,
    min_short_precision: Annotated[float | None, _gate("--min-short-precision")] = None,
    min_hit_at_k: Annotated[float | None, _gate("--min-hit-at-k")] = None,
    min_citation_precision: Annotated[float | None, _gate("--min-citation-precision")] = None,
    min_citation_recall: Annotated[float | None, _gate("--min-citation-recall")] = None,
    min_citation_validity: Annotated[float | None, _gate("--min-citation-validity")] = None,
    min_abstention_recall: Annotated[float | None, _gate("--min-abstention-recall")] = None,
    min_abstention_precision: Annotated[float | None, _gate("--min-abstention-precision")] = None,
    beir: Annotated[
        Path | None,
        typer.Option(
            "--beir",
            help="Instead: score dense, BM25 and hybrid retrieval on a BEIR-layout directory.",
            show_default=False,
        ),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="BEIR split: test or train.")] = "test",
    attribution: Annotated[
        list[Path] | None,
        typer.Option(
            "--attribution",
            help="Instead: score the judge on AttributionBench JSONL file(s) (repeatable).",
            show_default=False,
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="'Today' (YYYY-MM-DD) for questions without an as_of of their own; default: today.",
            show_default=False,
        ),
    ] = None,
    held_out: Annotated[
        bool,
        typer.Option(
            "--held-out",
            help="With --attribution: score only the half of each file that calibration never sees.",
        ),
    ] = False,
) -> None:
    """Evaluate answers, citations and retrieval on a question set, with optional gates (exit 1 below)."""
    from evals.harness import GATES
    from evals.judge import check_judge_spec

    with user_errors():
        modes = [
            name
            for name, given in (("DATASET", dataset), ("--beir", beir), ("--attribution", attribution))
            if given
        ]
        if len(modes) != 1:
            raise UsageError(
                "give exactly one of DATASET, --beir DIR or --attribution FILE"
                + (f" (got {', '.join(modes)})" if modes else "")
            )
        check_judge_spec(judge)
        if beir is not None:
            _run_beir(beir, split, make_settings(data_dir), as_json)
            return
        if attribution:
            _run_attribution(attribution, judge, held_out, make_settings(data_dir), as_json)
            return
        # one option per gate, named after it: --min-hit-at-k fills min_hit_at_k (evals.harness.GATES)
        gates = {key: ctx.params[flag.removeprefix("--").replace("-", "_")] for flag, key in GATES.items()}
        assert dataset is not None
        failures = _run_dataset(
            dataset, corpus or [], data_dir, k, judge, gates, report, as_json, make_settings,
            as_of=parse_date(as_of, "--as-of"),
        )
    if failures:
        raise typer.Exit(1)


# --- dataset -----------------------------------------------------------------------------------------------
@contextmanager
def _index_dir(corpus: list[str], data_dir: Path | None) -> Iterator[Path | None]:
    """A fresh temporary data dir when only a corpus is given; else the given (or default) one."""
    if corpus and data_dir is None:
        with tempfile.TemporaryDirectory(prefix="newsdesk-eval-", ignore_cleanup_errors=True) as tmp:
            yield Path(tmp)
    else:
        yield data_dir


def _run_dataset(
    dataset: Path,
    corpus: list[str],
    data_dir: Path | None,
    k: int,
    judge_spec: str,
    gates: dict[str, float | None],
    report: Path | None,
    as_json: bool,
    make_settings: Any,
    as_of: Any = None,
) -> list[str]:
    from evals.harness import check_gates, evaluate, load_dataset
    from evals.judge import make_judge

    items = load_dataset(dataset)
    with _index_dir(corpus, data_dir) as index_dir:
        settings = make_settings(index_dir)
        store = open_store(settings, create=bool(corpus))
        embedder = load_embedder(settings)
        show = not as_json and err.is_terminal
        if corpus:
            from ingest.sync import ingest

            ingested = ingest(corpus, settings, store, embedder)
            for failure in ingested.failed:
                err.print(markup("[yellow]warning:[/yellow] not ingested: {}: {}", failure.source, failure.error),
                          highlight=False)
        if store.count_articles() == 0:
            raise UsageError(f"the index at {settings.data_dir} holds no articles: pass --corpus PATH")
        from newsdesk.app.runtime import Services

        services = Services.from_settings(settings, embedder=embedder, store=store)
        judge = make_judge(judge_spec, services.embedder)
        with _bar(show, len(items), "answering") as progress:
            result = evaluate(
                items,
                answerer=services.answerer,
                searcher=services.searcher,
                store=services.store,
                judge=judge,
                k=k,
                progress=progress,
                dataset=dataset.name,
                as_of=as_of,
            )
    failures = check_gates(result.metrics, gates)
    if report is not None:
        from evals.report import write_report

        written = write_report(
            result, report, failures if any(v is not None for v in gates.values()) else None
        )
        if not as_json:
            err.print(f"report written to {', '.join(str(p) for p in written)}", highlight=False)
    if as_json:
        emit_json(result.to_json())
    else:
        _print_result(result)
    for failure in failures:
        err.print(markup("[red]gate failed:[/red] {}", failure), highlight=False)
    return failures


@contextmanager
def _bar(enabled: bool, total: int, label: str) -> Iterator[Any]:
    """One progress bar, ``update(done, total, item)``, that also shows the item being worked on."""
    with progress_bar(enabled, err, item=True) as bar:
        if bar is None:
            yield None
            return
        task = bar.add_task(label, total=total, item="")

        def update(done: int, _total: int, item: str) -> None:
            bar.update(task, completed=done, item=item)

        yield update


def _print_result(result: Any) -> None:
    from rich.table import Table

    from evals.harness import METRIC_KEYS
    from evals.report import fmt

    rows = Table("id", "ok", "rank", "latency", "answer", "failures", title="questions", title_justify="left")
    for q in result.questions:
        answer = q.answer if len(q.answer) <= 70 else q.answer[:67] + "…"
        rows.add_row(
            q.id,
            markup("[green]yes[/green]") if q.passed else markup("[red]no[/red]"),
            str(q.rank or "-"),
            f"{q.latency_ms:.0f} ms",
            answer,
            "; ".join(q.failures),
        )
    out.print(rows)
    overall = Table(
        "metric",
        "value",
        title=f"overall (k={result.k}, judge={result.judge}, {result.seconds:.1f} s)",
        title_justify="left",
    )
    for key in METRIC_KEYS:
        overall.add_row(key, fmt(result.metrics.get(key), key))
    if "accuracy_by_kind" in result.metrics:  # dated sets (evals/timeline.py)
        overall.add_row("accuracy (all kinds)", fmt(result.metrics.get("accuracy")))
        for kind, value in result.metrics["accuracy_by_kind"].items():
            overall.add_row(f"accuracy: {kind}", fmt(value))
    out.print(overall)


# --- BEIR --------------------------------------------------------------------------------------------------
def _run_beir(root: Path, split: str, settings: Any, as_json: bool) -> None:
    from evals.beir import run_beir

    if split not in ("test", "train", "dev"):
        raise UsageError(f"--split wants test, train or dev, not {split!r}")
    if not root.is_dir():
        raise UsageError(f"no such BEIR directory: {root}")
    embedder = load_embedder(settings)
    with _bar(not as_json and err.is_terminal, 0, "queries") as bar:
        progress = (lambda stage, done, total: bar(done, total, stage)) if bar else None
        result = run_beir(
            root, embedder, split=split, cache_dir=settings.data_dir / "beir-cache", progress=progress
        )
    if as_json:
        emit_json(result.to_dict())
        return
    from rich.table import Table

    table = Table(
        "retriever",
        "nDCG@10",
        "recall@100",
        title=f"{result.dataset} {result.split}: {result.queries} queries, {result.documents} docs, "
        f"{result.seconds:.1f} s (embeddings {'cached' if result.cached_embeddings else 'computed'})",
        title_justify="left",
    )
    for name, scores in result.scores.items():
        label = f"{name} ({result.fusion})" if name == "hybrid" else name
        table.add_row(label, f"{scores['ndcg_at_10']:.3f}", f"{scores['recall_at_100']:.3f}")
    out.print(table)
    if result.published:
        published = Table(
            "published retriever", "nDCG@10", title="published figures (README)", title_justify="left"
        )
        for name, value in result.published.items():
            published.add_row(name, f"{value:.3f}")
        out.print(published)


# --- AttributionBench --------------------------------------------------------------------------------------
def _run_attribution(
    files: list[Path], judge_spec: str, held_out: bool, settings: Any, as_json: bool
) -> None:
    from evals.attribution import load_rows, score_judge, split_half
    from evals.judge import make_judge

    embedder = load_embedder(settings) if judge_spec.strip() in ("default", "") else None
    judge = make_judge(judge_spec, embedder)
    results = []
    for path in files:
        rows = load_rows(path)
        subset = "all"
        if held_out:
            rows, subset = split_half(rows)[1], "held-out half"
        with _bar(not as_json and err.is_terminal, len(rows), path.name) as bar:
            progress = (lambda stage, done, total: bar(done, total, "")) if bar else None
            results.append(score_judge(judge, rows, file=str(path), subset=subset, progress=progress))
    if as_json:
        emit_json([r.to_dict() for r in results] if len(results) > 1 else results[0].to_dict())
        return
    from rich.table import Table

    for r in results:
        table = Table(
            "source",
            "rows",
            "macro-F1",
            "precision",
            "recall",
            title=f"{Path(r.file).name} ({r.subset}, {r.rows} rows), judge {r.judge}",
            title_justify="left",
        )
        for name, s in r.by_source.items():
            table.add_row(
                name,
                str(int(s["rows"])),
                f"{s['macro_f1']:.3f}",
                f"{s['precision']:.3f}",
                f"{s['recall']:.3f}",
            )
        table.add_row(
            markup("[bold]all[/bold]"),
            str(r.rows),
            markup("[bold]{}[/bold]", f"{r.macro_f1:.3f}"),
            f"{r.precision:.3f}",
            f"{r.recall:.3f}",
        )
        out.print(table)
