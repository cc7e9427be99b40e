"""Commands about news over time: ``digest`` (and ``watch``, when present)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.markup import escape

from newsdesk.app.common import (
    DataDir,
    JsonFlag,
    load_embedder,
    make_settings,
    open_store,
    parse_date,
    user_errors,
)
from newsdesk.app.console import emit_json, err, out
from newsdesk.errors import UsageError


def format_group(index: int, group) -> list[str]:
    """Lines (rich markup, article text escaped) for one digest group."""
    lines = []
    if group.lead is not None:
        lines.append(f"[bold]{index}.[/bold] {escape(group.lead.quote)} [{group.lead.number}]")
    else:
        lines.append(f"[bold]{index}.[/bold] {escape(group.articles[0].title or group.articles[0].id)}")
    copies = ", ".join(f"{a.source or 'unknown outlet'} {a.published}" for a in group.articles)
    lines.append(f"    [dim]{group.size} article{'s' if group.size != 1 else ''}: {escape(copies)}[/dim]")
    return lines


def digest(
    since: Annotated[str, typer.Option("--since", help="Period: 7d, 2w, 1m or a date like 2024-03-01.")] = "7d",
    source: Annotated[list[str] | None, typer.Option("--source", help="Only this outlet (repeatable).")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Last day of the period (default: today).")] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
) -> None:
    """The new articles of a period, copies and near-duplicates grouped, biggest stories first."""
    from retrieval.digest import digest_groups, parse_since

    with user_errors():
        settings = make_settings(data_dir, as_of=parse_date(as_of, "--as-of"))
        until = settings.as_of or date.today()
        try:
            start = parse_since(since, until)
        except ValueError:
            raise UsageError(f"--since wants 7d, 2w, 1m or a date like 2024-03-01, not {since!r}") from None
        groups = digest_groups(open_store(settings), start, until, source or [])
        if as_json:
            emit_json({"since": start.isoformat(), "until": until.isoformat(),
                        "articles": sum(g.size for g in groups), "groups": [g.to_json() for g in groups]})
            return
        if not groups:
            err.print(f"no articles published between {start} and {until}", highlight=False)
            return
        out.print(f"[bold]{len(groups)} stories from {sum(g.size for g in groups)} articles, {start} to {until}"
                  "[/bold]", highlight=False)
        for index, group in enumerate(groups, start=1):
            for line in format_group(index, group):
                out.print(line, highlight=False)


def watch(
    inputs: Annotated[list[str], typer.Argument(help="Files, directories, http(s) URLs or RSS/Atom feeds.",
                                                metavar="PATH_OR_URL...")],
    every: Annotated[str, typer.Option("--every", help="Interval between runs: 30s, 15m, 2h.")] = "15m",
    prune: Annotated[bool, typer.Option("--prune", help="Also remove articles that vanished from watched "
                                        "directories and feeds.")] = False,
    once: Annotated[bool, typer.Option("--once", help="Run once and exit (for cron).")] = False,
    data_dir: DataDir = None,
) -> None:
    """Re-ingest sources on a schedule: incremental, with backoff for failing sources; SIGTERM stops cleanly.

    With --once: one run, exit 1 when a source failed (the others are ingested), as `ingest` does.
    """
    import logging
    import sys

    from ingest.watch import Watcher, stop_on_signals
    from newsdesk.settings import parse_every

    with user_errors():
        try:
            seconds = parse_every(every)
        except ValueError:
            raise UsageError(f"--every wants an interval like 30s, 15m or 2h, not {every!r}") from None
        settings = make_settings(data_dir)
        store = open_store(settings, create=True)  # watching fills the store, as ingest does
        from newsdesk.embedding import LazyEmbedder

        embedder = LazyEmbedder(settings.embedding_model, settings.embedding_batch_size,
                                lambda: load_embedder(settings))
        logger = logging.getLogger("newsdesk.watch")
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s watch %(message)s", "%Y-%m-%dT%H:%M:%S"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        watcher = Watcher(inputs, settings, store, embedder, every=seconds, prune=prune,
                          max_backoff=settings.watch_max_backoff)
        logger.info("watching %d source(s) every %s%s", len(watcher.sources), every, " (once)" if once else "")
        with stop_on_signals(watcher):
            last = watcher.run_forever(once=once)
    if once and last is not None and last.failed:
        raise typer.Exit(1)  # for cron: some source failed (the others were ingested)
