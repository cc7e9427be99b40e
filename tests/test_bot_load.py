"""Load check: 50 questions at once; each gets an answer or a busy reply, and no more run at once than allowed.

How responsive the event loop stays under this load (its largest stall) and how many answers a second
the bot gives are timings, measured by ``benchmarks/bot_load.py``: tests never time anything.
"""

from __future__ import annotations

import pytest

from bot.formatting import BUSY_MESSAGE
from tests.bot_support import QUESTIONS, ConcurrencyProbe, make_settings, start_harness

pytestmark = pytest.mark.slow

N = 50


@pytest.mark.parametrize("queue", [8, 48], ids=["default-queue", "queue-fits-all"])
async def test_fifty_questions_at_once(tmp_path, answerer, queue):
    settings = make_settings(tmp_path, cooldown_seconds=10.0, bot_concurrency=2, bot_queue=queue)
    probe = ConcurrencyProbe(answerer)
    h = await start_harness(settings, probe, members=N)
    try:
        messages = [h.post(f"{h.bot.user.mention} {QUESTIONS[i % len(QUESTIONS)]}", member=h.members[i])
                    for i in range(N)]
        await h.settle(timeout=300)
    finally:
        await h.close()

    busy_for = {s.payload["message_reference"]["message_id"] for s in h.sent_to(h.channel.id)
                if s.content == BUSY_MESSAGE}
    answered = {m.id for m in messages
                if any(s.embeds or (s.content and "incident" not in s.content) for s in h.sent_to(m.id))}
    ids = {m.id for m in messages}
    assert answered | busy_for == ids, "every question gets an answer or a busy reply"
    assert not answered & busy_for, "never both"
    assert len(answered) == min(N, settings.bot_concurrency + settings.bot_queue) == probe.calls
    assert probe.max_active <= settings.bot_concurrency
