"""Commands that answer questions or serve them: ``ask``, ``chat``, ``bot``, ``feedback export``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from newsdesk.app.common import (
    DataDir,
    JsonFlag,
    check_text,
    make_settings,
    open_store,
    parse_date,
    quiet_libraries,
    user_errors,
)
from newsdesk.app.console import err, markup, out
from newsdesk.errors import UsageError
from newsdesk.models import Answer
from newsdesk.text import validate_question


def build_services(settings, *, create: bool = False):
    """Store, model, searcher and answerer for one command (``create``: make the store if missing)."""
    quiet_libraries()
    from newsdesk.app.runtime import Services

    # opened here rather than by Services so that a mistyped --data-dir is refused, not created
    return Services.from_settings(settings, store=open_store(settings, create=create))


def print_answer(answer: Answer) -> None:
    """The answer, then its numbered sources with the quoted passages (every value escaped by markup())."""
    if answer.abstained:
        out.print(markup("[bold]{}[/bold]", answer.text))
        if answer.related:
            out.print("\nPossibly related (not cited):")
            for rel in answer.related:
                label = rel.title or rel.article_id
                out.print(f"  - {label}" + (f" ({rel.source})" if rel.source else ""), highlight=False)
    else:
        if answer.short:  # the asked-for item alone, verbatim from the first quote, when the evidence is clear
            out.print(markup("[bold]{}[/bold]", answer.short), highlight=False)
        out.print(answer.text, highlight=False)
        out.print(markup("\n[bold]Sources[/bold]"))
        for c in answer.citations:
            head = " — ".join(x for x in [c.title or c.article_id, c.source, str(c.published or "undated")] if x)
            out.print(markup("[bold]\\[{}][/bold] {}  [dim]{} @{}-{}[/dim]", c.number, head, c.article_id,
                             c.char_start, c.char_end), highlight=False)
            out.print(markup("    [dim]│[/dim] {}", c.quote), highlight=False)
            if c.url:
                out.print(f"    {c.url}", highlight=False)
    if fallback := answer.metadata.get("fallback"):
        err.print(markup("[yellow]note:[/yellow] the LLM was not used: {}", fallback), highlight=False)


def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    k: Annotated[int | None, typer.Option("-k", help="Passages to use (default: NEWSDESK_TOP_K).", min=1,
                                          max=50)] = None,
    source: Annotated[list[str] | None, typer.Option("--source", help="Only this outlet (repeatable).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only articles published on/after DATE.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Only articles published on/before DATE.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Answer as of DATE: later articles are ignored "
                                              "and 'last week' is read from it (default: today).")] = None,
    as_json: JsonFlag = False,
    data_dir: DataDir = None,
) -> None:
    """Answer a question with citations to the stored articles (or say they don't say)."""
    from retrieval.base import SearchFilters

    with user_errors():
        settings = make_settings(data_dir, as_of=parse_date(as_of, "--as-of"))
        check_text(question, "the question")
        validate_question(question, settings)  # before the model loads: a bad question fails fast
        filters = SearchFilters(sources=source or [], since=parse_date(since, "--since"),
                                until=parse_date(until, "--until"))
        if filters.since and filters.until and filters.since > filters.until:
            raise UsageError(f"--since {filters.since} is after --until {filters.until}: nothing can match")
        services = build_services(settings)
        if services.store.count_chunks() == 0:
            raise UsageError("the store is empty: run `newsdesk ingest PATH` first")
        answer = services.answerer.answer(question, filters=filters, k=k)
        if as_json:
            sys.stdout.write(answer.model_dump_json(indent=2) + "\n")
        else:
            print_answer(answer)


def chat(
    as_of: Annotated[str | None, typer.Option("--as-of", help="Answer as of DATE (default: today).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Ask questions in a loop; follow-ups ("who said that?") use the earlier turns. Ctrl-D quits."""
    from retrieval.base import Turn

    with user_errors():
        settings = make_settings(data_dir, as_of=parse_date(as_of, "--as-of"))
        services = build_services(settings)
        history: list[Turn] = []
        out.print("Ask about the articles. Empty line or Ctrl-D to quit.", highlight=False)
        while True:
            try:
                question = input("? ").strip()
            except EOFError:
                break
            if not question or question.lower() in {"exit", "quit"}:
                break
            try:
                check_text(question, "the question")
                answer = services.answerer.answer(question, history=history[-settings.history_turns:])
            except UsageError as exc:
                err.print(markup("[red]error:[/red] {}", exc), highlight=False)
                continue
            print_answer(answer)
            out.print()
            history.append(Turn(question=question, answer=answer.text))


def bot(
    as_of: Annotated[str | None, typer.Option("--as-of", help="Answer as of DATE (default: today; "
                                              "NEWSDESK_AS_OF).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Run the Discord bot (needs DISCORD_TOKEN)."""
    with user_errors():
        settings = make_settings(data_dir, as_of=parse_date(as_of, "--as-of"))
        from bot.app import run_bot, validate_token

        validate_token(settings.discord_token)  # before the model loads
        services = build_services(settings, create=True)  # a new deployment fills it with /ingest

        def ingest_url(url: str):
            from ingest.sync import ingest

            return ingest([url], settings, services.store, services.embedder)

        def list_sources() -> list[dict]:
            return [r.model_dump(mode="json") | {"article_id": r.id} for r in services.store.records().values()]

        run_bot(settings, services.answerer, ingest=ingest_url, sources=list_sources)


def feedback_export(
    out_file: Annotated[Path, typer.Option("--out", help="JSONL file to write the 👎 items to.")],
    data_dir: DataDir = None,
) -> None:
    """Write thumbs-down answers as stub evaluation questions for a maintainer to complete."""
    with user_errors():
        settings = make_settings(data_dir)
        from bot.feedback import FeedbackStore

        count = FeedbackStore(settings.feedback_db).export_stubs(out_file)
        out.print(f"wrote {count} stub question(s) to {out_file}", highlight=False)
