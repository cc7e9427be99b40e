"""What every command shares: its options, its settings, errors translated at the edge, the store and model.

The command modules (:mod:`newsdesk.app.cli`, :mod:`newsdesk.app.commands`, :mod:`newsdesk.app.time_commands`,
:mod:`newsdesk.app.eval_commands`) import these; nothing here imports a command module.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from newsdesk.app.console import err, markup
from newsdesk.errors import NewsdeskError, UsageError
from newsdesk.settings import Settings

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


def quiet_libraries() -> None:
    """Keep the libraries under the model and the store from printing to the user's terminal."""
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
    quiet_libraries()
    from newsdesk.embedding import Embedder

    return Embedder.from_settings(settings)


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
