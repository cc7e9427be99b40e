"""Load check: 50 questions at once; each gets an answer or a busy reply, and the event loop stays responsive.

The stall bound (100 ms) is a responsiveness check that catches a blocking call on the event loop,
not a benchmark. Run with ``-s`` to see the figures (answers/second, largest stall).
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import Any

import pytest
from bot_support import make_settings, start_harness

from bot.formatting import BUSY_MESSAGE
from newsdesk.models import Answer

QUESTIONS = [
    "What is happening to the capacity of the Special Protection Unit?",
    "Which Pakistani ministries did not reply to Reuters' requests for comment?",
    "What did the Punjab home department say the meeting focused on?",
    "Who did the home secretary of Punjab meet?",
    "What killed two Chinese engineers in Karachi?",
]
pytestmark = pytest.mark.slow

N = 50
MAX_STALL = 0.100


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """As `run_bot` does: each worker thread encodes on one core, leaving the event loop room."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def bot_answerer(answerer):
    """The real offline answerer over the sample corpus."""
    return answerer


class ConcurrencyProbe:
    """Wraps an answerer and records how many calls overlapped."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.name = getattr(inner, "name", "probe")
        self.active = 0
        self.max_active = 0
        self.calls = 0
        self._lock = threading.Lock()

    def answer(self, question: str, **kwargs: Any) -> Answer:
        with self._lock:
            self.active += 1
            self.calls += 1
            self.max_active = max(self.max_active, self.active)
        try:
            return self.inner.answer(question, **kwargs)
        finally:
            with self._lock:
                self.active -= 1


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


@pytest.mark.parametrize("queue", [8, 48], ids=["default-queue", "queue-fits-all"])
async def test_fifty_questions_at_once(tmp_path, bot_answerer, queue):
    settings = make_settings(tmp_path, cooldown_seconds=10.0, bot_concurrency=2, bot_queue=queue)
    probe = ConcurrencyProbe(bot_answerer)
    h = await start_harness(settings, probe, members=N)
    ticker = StallTicker()
    await asyncio.to_thread(bot_answerer.answer, QUESTIONS[0])  # warm up: measure answering, not loading
    # As run_bot does: freeze the long-lived heap, so a full collection of everything other tests
    # imported (torch, chromadb) is not mistaken for the bot blocking the loop.
    gc.collect()
    gc.freeze()
    try:
        start = time.perf_counter()
        messages = [h.post(f"{h.bot.user.mention} {QUESTIONS[i % len(QUESTIONS)]}", member=h.members[i])
                    for i in range(N)]
        h.exclude(ticker.start())
        await h.settle(timeout=300)
        elapsed = time.perf_counter() - start
    finally:
        await ticker.stop()
        await h.close()
        gc.unfreeze()

    busy_for = {s.payload["message_reference"]["message_id"] for s in h.sent_to(h.channel.id)
                if s.content == BUSY_MESSAGE}
    answered = {m.id for m in messages
                if any(s.embeds or (s.content and "incident" not in s.content) for s in h.sent_to(m.id))}
    ids = {m.id for m in messages}
    assert answered | busy_for == ids, "every question gets an answer or a busy reply"
    assert not answered & busy_for, "never both"
    assert len(answered) == min(N, settings.bot_concurrency + settings.bot_queue) == probe.calls
    assert probe.max_active <= settings.bot_concurrency

    rate = len(answered) / elapsed
    print(
        f"\nbot load ({queue=}): {N} questions at once -> {len(answered)} answered, {len(busy_for)} busy "
        f"in {elapsed:.2f} s = {rate:.1f} answers/s; max event-loop stall {ticker.max_stall * 1000:.1f} ms; "
        f"max concurrent answerer calls {probe.max_active}"
    )
    assert ticker.max_stall < MAX_STALL, f"event loop stalled {ticker.max_stall * 1000:.0f} ms"
