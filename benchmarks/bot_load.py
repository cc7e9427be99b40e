"""The bot under load: 50 questions at once over the sample corpus; answers per second and the event loop's stall.

    .venv/bin/python benchmarks/bot_load.py [--questions 50] [--queue 8] [--concurrency 2] [--json]

Moved from tests/test_bot_load.py, which keeps the checks that need no clock (every question gets an
answer or a busy reply, never more answers at once than allowed): tests never time anything. The bot
runs on dpytest's fake Discord (``tests/bot_support.py``, so the dev dependencies are needed) with the
real offline answerer. A stall over the target means something blocks the event loop (a call that
should run in a worker thread); it is a responsiveness figure, not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

#: The largest event-loop stall that still reads as responsive.
TARGET_STALL_MS = 100.0


class StallTicker:
    """Sleeps in short steps and records how late it wakes: the event loop's largest stall."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.max_stall = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(self.interval)
            now = time.perf_counter()
            self.max_stall = max(self.max_stall, now - last - self.interval)
            last = now

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run())
        return self._task

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


async def run(answerer, data: Path, questions: int, queue: int, concurrency: int) -> dict:
    """Post ``questions`` at once to a bot on dpytest and time how it copes."""
    from bot.formatting import BUSY_MESSAGE
    from tests.bot_support import QUESTIONS, ConcurrencyProbe, make_settings, start_harness

    settings = make_settings(data, cooldown_seconds=10.0, bot_concurrency=concurrency, bot_queue=queue)
    probe = ConcurrencyProbe(answerer)
    h = await start_harness(settings, probe, members=questions)
    ticker = StallTicker()
    await asyncio.to_thread(answerer.answer, QUESTIONS[0])  # warm up: measure answering, not loading
    gc.collect()
    gc.freeze()  # as run_bot does: a full collection of the long-lived heap is not the bot blocking the loop
    try:
        start = time.perf_counter()
        messages = [h.post(f"{h.bot.user.mention} {QUESTIONS[i % len(QUESTIONS)]}", member=h.members[i])
                    for i in range(questions)]
        h.exclude(ticker.start())
        await h.settle(timeout=300)
        elapsed = time.perf_counter() - start
    finally:
        await ticker.stop()
        await h.close()
        gc.unfreeze()
    busy = {s.payload["message_reference"]["message_id"] for s in h.sent_to(h.channel.id)
            if s.content == BUSY_MESSAGE}
    answered = [m for m in messages if m.id not in busy]
    return {"questions": questions, "queue": queue, "concurrency": concurrency, "answered": len(answered),
            "busy": len(busy), "seconds": round(elapsed, 3), "answers_per_second": round(len(answered) / elapsed, 2),
            "max_stall_ms": round(ticker.max_stall * 1000, 1), "target_stall_ms": TARGET_STALL_MS,
            "max_concurrent_calls": probe.max_active}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--queue", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from ingest.sync import ingest
    from newsdesk.app.runtime import Services
    from newsdesk.settings import Settings
    from newsdesk.store import Store

    with tempfile.TemporaryDirectory(prefix="newsdesk-bot-load-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "index")
        services = Services.from_settings(settings, store=Store.from_settings(settings, create=True))
        ingest([str(ROOT / "data" / "sample")], settings, services.store, services.embedder)
        result = asyncio.run(run(services.answerer, Path(tmp), args.questions, args.queue, args.concurrency))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"bot load: {result['questions']} questions at once (concurrency {result['concurrency']}, queue "
          f"{result['queue']}) -> {result['answered']} answered, {result['busy']} busy in {result['seconds']:.2f} s "
          f"= {result['answers_per_second']:.1f} answers/s; max event-loop stall {result['max_stall_ms']:.1f} ms "
          f"(target < {TARGET_STALL_MS:.0f} ms); max concurrent answerer calls {result['max_concurrent_calls']}")


if __name__ == "__main__":
    main()
