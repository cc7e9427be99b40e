"""A watched archive: re-ingest directories, pages and feeds on a schedule (``newsdesk watch``).

Each run ingests every source incrementally (unchanged articles cost nothing) and logs one line.
A source that fails is retried after a backoff that doubles with each consecutive failure (from the
interval up to ``max_backoff``) while the others carry on. With ``prune``, articles whose file is gone
from a watched directory are removed (as ``ingest --prune`` does), and so are the entries that vanished
from a watched feed: the ids each source gave on its last good run are kept in
``<data_dir>/watch/state.json`` (written atomically), so this also works across restarts.

Stopping: SIGTERM or Ctrl-C asks the watcher to stop; the run in progress finishes the source it is
writing (the store journals every article, so even a hard kill is completed by the next run) and the
process exits 0. A second signal stops at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsdesk.models import IngestReport
from newsdesk.settings import Settings

log = logging.getLogger("newsdesk.watch")
@dataclass
class SourceState:
    """What the watcher remembers about one source."""

    failures: int = 0
    retry_at: float = 0.0
    last_error: str = ""


@dataclass
class RunSummary:
    """One run over every source: what changed, what failed, what waited."""

    number: int
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    backing_off: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False

    def line(self) -> str:
        """The log line for this run."""
        parts = [f"run {self.number}: added {len(self.added)}, updated {len(self.updated)}, removed "
                 f"{len(self.removed)}, unchanged {self.unchanged}, failed {len(self.failed)}"]
        if self.failed:
            parts.append("failed: " + ", ".join(f"{source} ({error})" for source, error in self.failed.items()))
        if self.backing_off:
            parts.append(f"backing off {len(self.backing_off)} ({', '.join(self.backing_off)})")
        if self.stopped:
            parts.append("stopped early on request")
        return "; ".join(parts) + f" in {self.seconds:.1f} s"


class Watcher:
    """Runs incremental ingests of ``sources`` on a schedule.

    Args:
        sources: paths, directories, URLs or feeds, as for ``newsdesk ingest``.
        settings: ingest settings; ``data_dir`` holds the watch state.
        store: the store.
        embedder: the model (a lazy one is fine: loaded only when something changed).
        every: seconds between the starts of two runs.
        prune: remove what vanished from watched directories and feeds.
        max_backoff: the longest a failing source waits before it is tried again (seconds).
        clock: monotonic time source (tests pass their own).
        on_run: called with each run's summary (the bot posts notices of new articles from it).
    """

    def __init__(self, sources: Sequence[str], settings: Settings, store: Any, embedder: Any, *, every: float,
                 prune: bool = False, max_backoff: float = 3600.0, clock: Callable[[], float] = time.monotonic,
                 on_run: Callable[[RunSummary], None] | None = None) -> None:
        self.sources = list(dict.fromkeys(sources))
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.every = every
        self.prune = prune
        self.max_backoff = max(max_backoff, every)
        self.clock = clock
        self.on_run = on_run
        self.state = {source: SourceState() for source in self.sources}
        self.runs = 0
        self.stop_event = threading.Event()
        self._state_file = Path(settings.data_dir) / "watch" / "state.json"

    # --- one run ---------------------------------------------------------------------------------
    def run_once(self) -> RunSummary:
        """Ingest every source that is not backing off; return (and log) the run's summary."""
        from ingest.sync import ingest

        self.runs += 1
        summary = RunSummary(self.runs)
        started = self.clock()
        real_start = time.perf_counter()
        seen = self._load_seen()
        for source in self.sources:
            if self.stop_event.is_set():
                summary.stopped = True
                break
            state = self.state[source]
            if state.retry_at > started:
                summary.backing_off.append(source)
                continue
            try:
                report = ingest([source], self.settings, self.store, self.embedder, prune=self.prune)
            except Exception as exc:  # noqa: BLE001 - one broken source must not stop the watch
                report = IngestReport()
                summary.failed[source] = f"{type(exc).__name__}: {exc}"
            else:
                if report.failed and not (report.added or report.updated or report.unchanged or report.duplicates):
                    summary.failed[source] = report.failed[0].error
                elif self.prune and "://" in source:
                    report.removed += self._prune_feed(source, report, seen)
            summary.added += report.added
            summary.updated += report.updated
            summary.removed += report.removed
            summary.unchanged += len(report.unchanged)
            if source in summary.failed:
                state.failures += 1
                state.last_error = summary.failed[source]
                state.retry_at = started + min(self.every * 2 ** (state.failures - 1), self.max_backoff)
            else:
                state.failures, state.retry_at, state.last_error = 0, 0.0, ""
        summary.seconds = time.perf_counter() - real_start
        log.info(summary.line())
        if self.on_run:
            self.on_run(summary)
        return summary

    def _prune_feed(self, source: str, report: IngestReport, seen: dict[str, list[str]]) -> list[str]:
        """Remove what this feed gave last time but no longer lists; remember what it lists now."""
        key = hashlib.sha256(source.encode()).hexdigest()[:16]
        now = sorted({*report.added, *report.updated, *report.unchanged, *report.duplicates})
        failed = {f.source for f in report.failed}
        gone = [i for i in seen.get(key, []) if i not in now and i not in failed]
        removed = [i for i in gone if self.store.delete_article(i)]
        if removed:
            self.store.bump_generation()
        seen[key] = now
        self._save_seen(seen)
        return removed

    def _load_seen(self) -> dict[str, list[str]]:
        try:
            return json.loads(self._state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _save_seen(self, seen: dict[str, list[str]]) -> None:
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self._state_file.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(seen, handle)
        os.replace(tmp, self._state_file)

    # --- the schedule ----------------------------------------------------------------------------
    def run_forever(self, once: bool = False) -> RunSummary | None:
        """Run now and then every ``every`` seconds until :meth:`stop` (or after one run with ``once``).

        Returns:
            The last run's summary (None when stopped before the first).
        """
        last = None
        while not self.stop_event.is_set():
            started = self.clock()
            last = self.run_once()
            if once:
                return last
            self.stop_event.wait(max(0.0, self.every - (self.clock() - started)))
        log.info("watch stopped after %d run(s)", self.runs)
        return last

    def stop(self) -> None:
        """Ask the watcher to stop after the source being written."""
        self.stop_event.set()


@contextmanager
def stop_on_signals(watcher: Watcher):
    """SIGTERM and SIGINT ask ``watcher`` to stop cleanly; a second one interrupts at once."""
    previous: dict[int, Any] = {}

    def handler(signum: int, _frame: Any) -> None:
        if watcher.stop_event.is_set():
            raise KeyboardInterrupt
        log.info("%s received: stopping after the current source", signal.Signals(signum).name)
        watcher.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield watcher
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
