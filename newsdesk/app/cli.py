"""The ``newsdesk`` console script, the composition root: every command is listed in :func:`build_app`.

The store commands (``ingest``, ``remove``, ``sources``, ``stats``) live here; the others in
:mod:`newsdesk.app.commands`, :mod:`newsdesk.app.time_commands` and :mod:`newsdesk.app.eval_commands`.
Heavy modules (torch, chromadb) are imported inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from typer._click import exceptions as click_errors  # typer vendors click: its exception types live here
from typer.core import TyperGroup

from newsdesk.app import commands, eval_commands, time_commands
from newsdesk.app.common import DataDir, JsonFlag, load_embedder, make_settings, open_store, user_errors
from newsdesk.app.console import emit_json, err, markup, out, progress_bar
from newsdesk.errors import NewsdeskError


class _OneLineErrors(TyperGroup):
    """Usage errors as one line on stderr (exit 2) instead of typer's boxed panel."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:  # noqa: D102
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click_errors.NoArgsIsHelpError as exc:
            sys.stderr.write((exc.ctx.get_help() if exc.ctx else str(exc)) + "\n")
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            hint = ""
            if isinstance(exc, click_errors.UsageError) and exc.ctx is not None:
                hint = f" (see `{exc.ctx.command_path} --help`)"
            err.print(markup("[red]error:[/red] {}{}", " ".join(exc.format_message().split()), hint),
                      highlight=False)
            sys.exit(exc.exit_code)
        except typer.Abort:
            err.print("interrupted", highlight=False)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)


# --- ingest ------------------------------------------------------------------------------------------
def ingest(
    inputs: Annotated[list[str], typer.Argument(help="Files, directories, http(s) URLs or RSS/Atom feeds.",
                                                metavar="PATH_OR_URL...")],
    prune: Annotated[bool, typer.Option("--prune", help="Remove stored articles under these roots whose "
                                        "source is gone.")] = False,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
) -> None:
    """Load articles, chunk and embed what is new or changed, and store them."""
    with user_errors():
        settings = make_settings(data_dir)
        store = open_store(settings, create=True)
        from ingest.sync import ingest as run_ingest
        from newsdesk.embedding import LazyEmbedder

        # loaded only if something needs embedding: an unchanged corpus never imports torch
        embedder = LazyEmbedder(settings.embedding_model, settings.embedding_batch_size,
                                lambda: load_embedder(settings))

        with _progress(enabled=not as_json and err.is_terminal) as progress:
            report = run_ingest(inputs, settings, store, embedder, prune=prune, progress=progress)
        if as_json:
            emit_json({
                "added": report.added, "updated": report.updated, "unchanged": report.unchanged,
                "duplicates": report.duplicates, "removed": report.removed,
                "failed": [f.model_dump() for f in report.failed], "warnings": report.warnings,
                "chunks_embedded": report.chunks_embedded, "sentences_embedded": report.sentences_embedded,
                "seconds": report.seconds,
            })
        else:
            _print_report(report)
    raise typer.Exit(1 if report.failed else 0)


@contextmanager
def _progress(enabled: bool):
    """``ingest``'s progress callback, ``update(stage, done, total)``, drawing one bar per stage."""
    with progress_bar(enabled, err) as bar:
        if bar is None:
            yield None
            return
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            label = {"load": "loading", "embed": "embedding chunks",
                     "sentences": "embedding answer sentences"}.get(stage, stage)
            if stage not in tasks:
                tasks[stage] = bar.add_task(label, total=total or None)
            if stage == "load":
                bar.advance(tasks[stage])
            else:
                bar.update(tasks[stage], completed=done, total=total)

        yield update


def _print_report(report) -> None:
    counts = ", ".join(f"{name} {len(getattr(report, name))}" for name in
                       ("added", "updated", "unchanged", "duplicates", "removed", "failed"))
    sentences = f" (and {report.sentences_embedded} answer sentences)" if report.sentences_embedded else ""
    out.print(f"{counts}; {report.chunks_embedded} chunks embedded in {report.seconds:.1f} s{sentences}",
              highlight=False)
    for warning in report.warnings:
        err.print(markup("[yellow]warning:[/yellow] {}", warning), highlight=False)
    for failure in report.failed:
        err.print(markup("[red]failed:[/red] {}: {}", failure.source, failure.error), highlight=False)


def remove(
    article_ids: Annotated[list[str], typer.Argument(help="Article ids as shown by `newsdesk sources`.",
                                                     metavar="ID...")],
    data_dir: DataDir = None,
) -> None:
    """Remove articles (and their chunks) from the store."""
    with user_errors():
        store = open_store(make_settings(data_dir), write=True)
        missing = [aid for aid in article_ids if not store.delete_article(aid)]
        store.bump_generation()
        for aid in article_ids:
            if aid not in missing:
                out.print(f"removed {aid}", highlight=False)
        if missing:
            raise NewsdeskError(f"no such article: {', '.join(missing)} (see `newsdesk sources`)")


def sources(as_json: JsonFlag = False, data_dir: DataDir = None) -> None:
    """List stored articles."""
    with user_errors():
        records = sorted(open_store(make_settings(data_dir)).records().values(), key=lambda r: r.id)
        if as_json:
            emit_json([r.model_dump(mode="json") for r in records])
            return
        if not records:
            err.print("no articles stored yet: add some with `newsdesk ingest PATH_OR_URL`", highlight=False)
            return
        out.print(_sources_table(records, out.width))


def _sources_table(records: list, width: int):
    """Build the `sources` table; ids are never cut (they are what `remove` takes), the title gives way."""
    from rich.table import Column, Table

    unfinished = any(r.state != "ready" for r in records)  # an interrupted run; the next ingest finishes it
    fixed = {
        "id": max([2, *(len(r.id) for r in records)]),
        "source": min(20, max([6, *(len(r.source) for r in records)])),
        "published": 10,
        "chunks": 6,
        **({"state": 8} if unfinished else {}),
    }
    borders = 3 * (len(fixed) + 1) + 1  # one padding space each side of every cell, plus the rules
    title = min(60, width - sum(fixed.values()) - borders)
    if title < 10:  # too narrow for a table that keeps whole ids: one plain line per article
        from rich.text import Text

        return Text("\n".join(f"{r.id}\t{r.chunks} chunks\t{r.state}\t{r.title}" for r in records))
    columns = [Column(name, width=size, no_wrap=True, overflow="ellipsis") for name, size in fixed.items()]
    columns.insert(1, Column("title", width=title, no_wrap=True, overflow="ellipsis"))
    columns[-1 if not unfinished else -2].justify = "right"
    table = Table(*columns)
    for r in records:
        table.add_row(r.id, r.title, r.source, str(r.published or ""), str(r.chunks),
                      *([r.state] if unfinished else []))
    return table


def stats(as_json: JsonFlag = False, data_dir: DataDir = None) -> None:
    """Show what the store holds."""
    with user_errors():
        settings = make_settings(data_dir)
        store = open_store(settings)
        meta = store.metadata()
        info = {
            "store": settings.chroma_url or str(settings.chroma_path),
            "collection": settings.collection,
            "articles": store.count_articles(),
            "chunks": store.count_chunks(),
            "embedding_model": meta.get("embedding_model"),
            "generation": meta.get("generation", 0),
        }
        if as_json:
            emit_json(info)
        else:
            for key, value in info.items():
                out.print(f"{key:16} {value}", highlight=False)


def build_app() -> typer.Typer:
    """The ``newsdesk`` command line: every command, in the order ``newsdesk --help`` lists them."""
    app = typer.Typer(
        cls=_OneLineErrors,
        help="Ask questions of your team's news articles; every answer sentence cites a verbatim passage.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    for command in (ingest, remove, sources, stats, commands.ask, commands.chat, commands.bot):
        app.command()(command)
    app.command("eval")(eval_commands.eval_command)
    app.command()(time_commands.digest)
    app.command()(time_commands.watch)
    feedback_app = typer.Typer(help="Work with feedback collected by the Discord bot.", no_args_is_help=True)
    feedback_app.command("export")(commands.feedback_export)
    app.add_typer(feedback_app, name="feedback")
    return app


app = build_app()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback as the interface
        if os.environ.get("NEWSDESK_DEBUG"):
            raise
        err.print(markup("[red]internal error:[/red] {}: {} (set NEWSDESK_DEBUG=1 for the traceback)",
                         type(exc).__name__, exc), highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
