"""The ``newsdesk`` console script: every front end starts here.

Heavy modules (torch, chromadb) are imported inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click import exceptions as click_errors  # typer vendors click: its exception types live here
from typer.core import TyperGroup

from newsdesk.app.console import SafeConsole, markup
from newsdesk.errors import NewsdeskError, UsageError
from newsdesk.settings import Settings


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


app = typer.Typer(
    cls=_OneLineErrors,
    help="Ask questions of your team's news articles; every answer sentence cites a verbatim passage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
feedback_app = typer.Typer(help="Work with feedback collected by the Discord bot.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")

# Every line printed goes through these: plain strings are text, never markup or terminal codes.
out = SafeConsole(soft_wrap=True)
err = SafeConsole(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: $NEWSDESK_DATA_DIR or ./.newsdesk).",
                 show_default=False),
]
#: The settings of the command being run (one per process; tests reset it by running another command).
_current: dict[str, Settings] = {}

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def make_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings once per command, applying command-line overrides."""
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except Exception as exc:  # noqa: BLE001 - pydantic's message is long; keep the first line
        raise UsageError(f"invalid settings: {str(exc).splitlines()[0]}") from None
    _current["settings"] = settings  # names the data dir or server in storage errors (user_errors)
    return settings


@contextmanager
def user_errors():
    """Translate errors at the edge: one line on stderr and an exit code, never a traceback."""
    try:
        yield
    except UsageError as exc:
        err.print(markup("[red]error:[/red] {}", exc), highlight=False)
        raise typer.Exit(2) from None
    except NewsdeskError as exc:
        err.print(markup("[red]error:[/red] {}", exc), highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:
        from newsdesk.store import describe_store_error  # a full disk, a damaged store, a lost server

        message = describe_store_error(exc, _current.get("settings"))
        if message is None or os.environ.get("NEWSDESK_DEBUG"):
            raise
        err.print(markup("[red]error:[/red] {}", message), highlight=False)
        raise typer.Exit(1) from None


def _quiet_libraries() -> None:
    # environment rather than imports: transformers is imported only if the model runs on torch
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("chromadb", "sentence_transformers", "transformers", "httpx", "trafilatura"):
        logging.getLogger(name).setLevel(logging.ERROR)


def open_store(settings: Settings, *, create: bool = False, write: bool = False):
    """Open the configured store (raises StoreUnavailable with an actionable message).

    Only commands that add articles pass ``create=True``: the others, given a data dir that holds no
    store, say so instead of creating an empty one (a mistyped ``--data-dir``). Without ``create`` or
    ``write`` the store is only read, which also works on a read-only disk.
    """
    from newsdesk.store import Store

    return Store.from_settings(settings, create=create, read_only=not (create or write))


def load_embedder(settings: Settings):
    """Load the configured embedding model, checksum verified."""
    _quiet_libraries()
    from newsdesk.embedding import Embedder

    return Embedder.from_settings(settings)


def _emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")


# --- ingest ------------------------------------------------------------------------------------------
@app.command()
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
            _emit_json({
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
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
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


@app.command()
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


@app.command()
def sources(as_json: JsonFlag = False, data_dir: DataDir = None) -> None:
    """List stored articles."""
    with user_errors():
        records = sorted(open_store(make_settings(data_dir)).records().values(), key=lambda r: r.id)
        if as_json:
            _emit_json([r.model_dump(mode="json") for r in records])
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


@app.command()
def stats(as_json: JsonFlag = False, data_dir: DataDir = None) -> None:
    """Show what the store holds."""
    with user_errors():
        settings = make_settings(data_dir)
        store = open_store(settings)
        meta = store._meta()
        info = {
            "store": settings.chroma_url or str(settings.chroma_path),
            "collection": settings.collection,
            "articles": store.count_articles(),
            "chunks": store.count_chunks(),
            "embedding_model": meta.get("embedding_model"),
            "generation": meta.get("generation", 0),
        }
        if as_json:
            _emit_json(info)
        else:
            for key, value in info.items():
                out.print(f"{key:16} {value}", highlight=False)


def check_text(value: str, what: str) -> str:
    """Refuse a command-line value that is not valid UTF-8 (its undecodable bytes arrive as surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} is not valid UTF-8 text: check the terminal's encoding") from None
    return value


def parse_date(value: str | None, option: str) -> date | None:
    """Parse an ISO date given on the command line."""
    if value is None:
        return None
    check_text(value, option)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} wants a date like 2024-10-31, not {value!r}") from None


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


from newsdesk.app import commands  # noqa: E402,F401 - registers ask, chat, bot, eval, feedback

if __name__ == "__main__":
    main()
