"""The real bot driven through dpytest: mentions, threads, follow-ups, guardrails, slash commands, errors.

Interactions (slash commands) are real INTERACTION_CREATE payloads routed by the bot's own command
tree; see tests/bot_support.py for what was added around dpytest.
"""

from __future__ import annotations

import logging
import re

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext.test import backend, factories
from pydantic import SecretStr

from bot.app import validate_token
from bot.formatting import BUSY_MESSAGE
from newsdesk.errors import IngestError, UsageError
from newsdesk.models import ABSTAIN_TEXT, IngestReport
from retrieval.base import Turn
from tests.bot_support import FailingAnswerer, RecordingAnswerer, StubAnswerer, make_settings, start_harness

pytestmark = pytest.mark.slow

Q1 = "What is happening to the capacity of the Special Protection Unit?"
Q2 = "Which Pakistani ministries did not reply to Reuters' requests for comment?"
Q3 = "What did the Punjab home department say the meeting focused on?"
UNANSWERABLE = "What is the capital of Australia?"
NO_PINGS = {"parse": []}


@pytest.fixture
def bot_answerer(answerer):
    """The real offline answerer over the sample corpus."""
    return answerer


@pytest.fixture
def recorder(bot_answerer):
    return RecordingAnswerer(bot_answerer)


@pytest.fixture
async def harness(tmp_path, recorder):
    """A bot with default guardrails (no cooldown); tests needing other settings build their own."""
    h = await start_harness(make_settings(tmp_path), recorder)
    yield h
    await h.close()


def _shown(answer) -> str:
    return ABSTAIN_TEXT if answer.abstained else answer.text


def _assert_no_errors_logged(caplog) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


# --- mentions and threads --------------------------------------------------------------------------


async def test_mention_opens_a_thread_with_the_answer_and_sources(harness, recorder, caplog):
    message = await harness.mention(Q1)

    [thread] = harness.threads()
    assert thread.id == message.id and thread.name == Q1
    sent = harness.sent_to(thread.id)
    assert sent, "the answer goes into the thread"
    assert "".join(s.content for s in sent).strip()
    embeds = [e for s in sent for e in s.embeds]
    assert embeds and embeds[0]["title"] == "Sources"
    assert re.match(r"\[1\] ", embeds[0]["fields"][0]["name"])
    assert any(cid.startswith("newsdesk:fb:up:") for cid in sent[-1].custom_ids)
    assert all(s.allowed_mentions == NO_PINGS for s in harness.sent)
    assert harness.sent_to(harness.channel.id) == [], "nothing is posted in the channel itself"
    # The answerer ran in the bot's worker thread, not on the event loop.
    [call] = recorder.calls
    assert call.question == Q1 and call.history == []
    assert call.thread.startswith("newsdesk-answer")
    _assert_no_errors_logged(caplog)


async def test_follow_up_in_the_thread_passes_earlier_turns(harness, recorder):
    await harness.mention(Q1)
    [thread] = harness.threads()
    await harness.say(Q2, channel=thread)  # no mention needed inside the bot's thread

    assert [c.question for c in recorder.calls] == [Q1, Q2]
    assert recorder.calls[1].history == [Turn(question=Q1, answer=_shown(recorder.answers[0]))]
    assert len(harness.threads()) == 1, "a follow-up does not open another thread"
    assert len([s for s in harness.sent_to(thread.id) if s.embeds]) == 2


async def test_history_is_capped_at_history_turns(tmp_path, recorder):
    h = await start_harness(make_settings(tmp_path, history_turns=2), recorder)
    try:
        await h.mention(Q1)
        [thread] = h.threads()
        for question in (Q2, Q3, "And what about Karachi?"):
            await h.say(question, channel=thread)
        last = recorder.calls[-1]
        assert [t.question for t in last.history] == [Q2, Q3]
        assert last.history[-1].answer == _shown(recorder.answers[2])
    finally:
        await h.close()


async def test_bot_threads_are_recognised_after_a_restart(harness, recorder):
    from bot.app import Conversations

    await harness.mention(Q1)
    [thread] = harness.threads()
    harness.bot.conversations = Conversations(harness.bot.settings.history_turns)  # memory lost
    await harness.say(Q2, channel=thread)
    assert [c.question for c in recorder.calls] == [Q1, Q2]  # still a follow-up, by thread owner
    assert recorder.calls[1].history == []


async def test_threads_keep_separate_histories(harness, recorder):
    await harness.mention(Q1)
    await harness.mention(Q3, member=harness.members[1])
    _, second = sorted(harness.threads(), key=lambda t: t.id)
    await harness.say(Q2, channel=second)
    assert [t.question for t in recorder.calls[-1].history] == [Q3]


async def test_messages_without_mention_are_ignored(harness, recorder):
    await harness.say(Q1)
    assert harness.sent == [] and recorder.calls == []


async def test_empty_mention_gets_a_hint(harness, recorder):
    await harness.say(harness.bot.user.mention)
    [reply] = harness.sent
    assert "Ask me a question" in reply.content and recorder.calls == []


async def test_thread_creation_failure_answers_inline(harness, recorder):
    harness.http.fail_threads = True
    message = await harness.mention(Q1)
    sent = harness.sent_to(harness.channel.id)
    assert sent and sent[0].payload["message_reference"]["message_id"] == message.id
    assert any(s.embeds for s in sent)


async def test_abstention_is_shown_as_such(harness):
    await harness.mention(UNANSWERABLE)
    [thread] = harness.threads()
    sent = harness.sent_to(thread.id)
    assert sent[0].content.startswith(ABSTAIN_TEXT)
    assert not any(s.embeds for s in sent)


# --- guardrails ------------------------------------------------------------------------------------


async def test_cooldown_refuses_a_second_question(tmp_path, recorder):
    h = await start_harness(make_settings(tmp_path, cooldown_seconds=60), recorder)
    try:
        await h.mention(Q1)
        await h.mention(Q2)
        assert len(recorder.calls) == 1
        refusal = h.sent_to(h.channel.id)[-1]
        assert "please wait" in refusal.content and refusal.allowed_mentions == NO_PINGS
        await h.mention(Q2, member=h.members[1])  # the cooldown is per user
        assert len(recorder.calls) == 2
    finally:
        await h.close()


async def test_disallowed_channel_is_ignored(tmp_path, recorder):
    h = await start_harness(make_settings(tmp_path), recorder)
    h.bot.settings.allowed_channels = [h.channels[1].id]
    try:
        await h.mention(Q1, channel=h.channels[0])
        assert h.sent == [] and recorder.calls == []
        await h.mention(Q1, channel=h.channels[1])
        assert len(recorder.calls) == 1
        [thread] = h.threads()
        await h.say(Q2, channel=thread)  # threads under an allowed channel are allowed
        assert len(recorder.calls) == 2
    finally:
        await h.close()


async def test_disallowed_guild_is_ignored(tmp_path, recorder):
    h = await start_harness(make_settings(tmp_path, allowed_guilds=[1234]), recorder)
    try:
        await h.mention(Q1)
        assert h.sent == [] and recorder.calls == []
    finally:
        await h.close()


async def test_bot_messages_are_ignored(harness, recorder):
    state = harness.state
    other = state.store_user(factories.make_user_dict("OtherBot", "0042", None, bot=True))
    other_member = backend.make_member(other, harness.guild)
    await harness.mention(Q1, member=other_member)
    assert harness.sent == [] and recorder.calls == []

    # The bot's own answer in its thread must not be taken as a follow-up.
    await harness.mention(Q1)
    [thread] = harness.threads()
    await harness.say("A message from the bot itself", channel=thread, member=harness.guild.me)
    assert len(recorder.calls) == 1


async def test_over_long_question_is_refused(tmp_path, recorder):
    h = await start_harness(make_settings(tmp_path, max_question_chars=50), recorder)
    try:
        await h.mention("Why " * 20)
        assert recorder.calls == [] and h.threads() == []
        [reply] = h.sent
        assert "79 characters" in reply.content and "limit is 50" in reply.content
    finally:
        await h.close()


async def test_everyone_and_role_mentions_do_not_ping(harness):
    role = backend.make_role("editors", harness.guild, mentionable=True)
    target = harness.members[1]
    await harness.mention(f"@everyone @here {role.mention} {target.mention} {Q1}")
    assert harness.sent
    for sent in harness.sent:
        assert sent.allowed_mentions == NO_PINGS, sent.payload
    # The mention-free default also holds for anything sent without an explicit allowed_mentions.
    assert harness.bot.allowed_mentions.to_dict() == NO_PINGS


async def test_busy_beyond_concurrency_and_queue(tmp_path):
    answerer = RecordingAnswerer(StubAnswerer(delay=0.3))
    h = await start_harness(make_settings(tmp_path, bot_concurrency=1, bot_queue=1), answerer, members=4)
    try:
        messages = [h.post(f"{h.bot.user.mention} {Q1}", member=m) for m in h.members[:4]]
        await h.settle()
        assert len(answerer.calls) == 2
        busy = [s for s in h.sent_to(h.channel.id) if s.content == BUSY_MESSAGE]
        assert len(busy) == 2
        busy_ids = {s.payload["message_reference"]["message_id"] for s in busy}
        answered = {t.id for t in h.threads()}
        assert busy_ids | answered == {m.id for m in messages} and not busy_ids & answered
    finally:
        await h.close()


async def test_dms_are_refused_unless_allowed(tmp_path, recorder):
    h = await start_harness(make_settings(tmp_path), recorder)
    try:
        dm = await h.members[0].create_dm()
        await h.say(Q1, channel=dm)
        [reply] = h.sent
        assert "direct messages" in reply.content and recorder.calls == []

        h.bot.settings.allow_dms = True
        await h.say(Q1, channel=dm)
        await h.say(Q2, channel=dm)
        assert [c.question for c in recorder.calls] == [Q1, Q2]
        assert recorder.calls[1].history == [Turn(question=Q1, answer=_shown(recorder.answers[0]))]
    finally:
        await h.close()


# --- errors ----------------------------------------------------------------------------------------


async def test_answerer_failure_gives_an_incident_id(tmp_path, caplog):
    h = await start_harness(make_settings(tmp_path), FailingAnswerer())
    try:
        with caplog.at_level(logging.ERROR, logger="newsdesk.bot"):
            await h.mention(Q1)
        [thread] = h.threads()
        [notice] = h.sent_to(thread.id)
        match = re.search(r"Something went wrong \(incident ([0-9a-f]{6})\)", notice.content)
        assert match
        assert "Traceback" not in notice.content and "secret internal detail" not in notice.content
        [record] = [r for r in caplog.records if match.group(1) in r.getMessage()]
        assert record.exc_info and "secret internal detail" in str(record.exc_info[1])
    finally:
        await h.close()


async def test_usage_errors_are_shown_without_an_incident(tmp_path, caplog):
    class Refusing:
        name = "refusing"

        def answer(self, question, **_):
            raise UsageError("Questions must be in English.")

    h = await start_harness(make_settings(tmp_path), Refusing())
    try:
        await h.mention(Q1)
        [thread] = h.threads()
        assert [s.content for s in h.sent_to(thread.id)] == ["Questions must be in English."]
        _assert_no_errors_logged(caplog)
    finally:
        await h.close()


async def test_slash_ask_failure_gives_an_ephemeral_incident_id(tmp_path, caplog):
    h = await start_harness(make_settings(tmp_path), FailingAnswerer())
    try:
        with caplog.at_level(logging.ERROR, logger="newsdesk.bot"):
            await h.slash("ask", question=Q1)
        notice = h.adapter.sent[-1]
        match = re.search(r"incident ([0-9a-f]{6})", notice.content)
        assert match and notice.ephemeral
        assert any(match.group(1) in r.getMessage() and r.exc_info for r in caplog.records)
    finally:
        await h.close()


# --- slash commands --------------------------------------------------------------------------------


async def test_slash_ask_defers_then_answers_with_sources_and_buttons(harness, recorder):
    await harness.slash("ask", question=Q1)
    kinds = [s.kind for s in harness.adapter.sent]
    assert kinds[0] == "defer" and "followup" in kinds
    followups = [s for s in harness.adapter.sent if s.kind == "followup"]
    assert any(s.embeds for s in followups)
    assert followups[-1].custom_ids and all(s.allowed_mentions == NO_PINGS for s in followups)
    assert [c.question for c in recorder.calls] == [Q1]


async def test_slash_ask_refusals_are_ephemeral(tmp_path, recorder):
    h = await start_harness(make_settings(tmp_path, max_question_chars=20), recorder)
    try:
        await h.slash("ask", question=Q1)
        [reply] = h.adapter.sent
        assert reply.kind == "response" and reply.ephemeral and "limit is 20" in reply.content
        h.bot.settings.allowed_channels = [h.channels[1].id]
        await h.slash("ask", question="Hi?")
        assert h.adapter.sent[-1].ephemeral and "not enabled" in h.adapter.sent[-1].content
        assert recorder.calls == []
    finally:
        await h.close()


async def test_slash_ask_in_a_bot_thread_continues_the_conversation(harness, recorder):
    await harness.mention(Q1)
    [thread] = harness.threads()
    await harness.slash("ask", question=Q2, channel=thread)
    assert [t.question for t in recorder.calls[-1].history] == [Q1]


async def test_sources_and_about(tmp_path, recorder):
    articles = [{"article_id": "000_70bec7e4b0fc20fc", "title": "Punjab meets China", "source": "Dawn",
                 "published": "2024-11-14"},
                {"article_id": "004_ad935d4100d70209", "title": "China presses Pakistan", "source": "Reuters",
                 "published": None}]
    h = await start_harness(make_settings(tmp_path), recorder, sources=lambda: articles)
    try:
        await h.slash("sources")
        listing = h.adapter.sent[-1]
        assert listing.ephemeral
        assert "Punjab meets China" in listing.embeds[0]["description"]
        assert "2 articles indexed" in listing.embeds[0]["footer"]["text"]
        await h.slash("about")
        about = h.adapter.sent[-1]
        assert about.embeds[0]["fields"][0]["value"] == "2"
    finally:
        await h.close()


async def test_ingest_needs_the_admin_role(tmp_path, recorder):
    calls: list[str] = []

    def ingest(url: str) -> IngestReport:
        calls.append(url)
        return IngestReport(added=["new-article"], chunks_embedded=4, seconds=0.5)

    h = await start_harness(make_settings(tmp_path), recorder, ingest=ingest)
    try:
        member = h.members[0]
        await h.slash("ingest", url="https://example.com/story", member=member)
        assert calls == [] and "Manage Server" in h.adapter.sent[-1].content and h.adapter.sent[-1].ephemeral

        # a role's name grants nothing (anyone who can create roles could copy it): its id does
        named = backend.make_role("newsdesk-admin", h.guild, permissions=0)
        await dpytest.add_role(member, named)
        await h.slash("ingest", url="https://example.com/story", member=member)
        assert calls == [] and "Manage Server" in h.adapter.sent[-1].content
        role = backend.make_role("editors", h.guild, permissions=0)
        h.bot.settings.admin_role_ids = [role.id]
        await dpytest.add_role(member, role)
        await h.slash("ingest", url="not a url", member=member)
        assert calls == [] and "http" in h.adapter.sent[-1].content

        await h.slash("ingest", url="https://example.com/story", member=member)
        assert calls == ["https://example.com/story"]
        summary = h.adapter.sent[-1]
        assert summary.ephemeral and "1 added" in summary.content and "4 chunks" in summary.content
    finally:
        await h.close()


async def test_ingest_errors_are_reported_in_one_line(tmp_path, recorder):
    def ingest(url: str) -> IngestReport:
        raise IngestError("cannot fetch https://example.com/gone: HTTP 404")

    h = await start_harness(make_settings(tmp_path), recorder, ingest=ingest)
    try:
        role = backend.make_role("admins", h.guild, permissions=discord.Permissions(manage_guild=True).value)
        await dpytest.add_role(h.members[0], role)
        await h.slash("ingest", url="https://example.com/gone")
        assert "HTTP 404" in h.adapter.sent[-1].content
    finally:
        await h.close()


# --- startup ---------------------------------------------------------------------------------------


def test_token_validation():
    with pytest.raises(UsageError, match="No Discord token"):
        validate_token(None)
    with pytest.raises(UsageError, match="No Discord token"):
        validate_token(SecretStr("   "))
    bad = "not-a-real-token-but-secret"
    with pytest.raises(UsageError, match="malformed") as error:
        validate_token(SecretStr(bad))
    assert bad not in str(error.value)
    fake = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GabcDE.abcdefghijklmnopqrstuvwxyz0123456789AB"
    with pytest.raises(UsageError, match="Bot ") as error:
        validate_token(SecretStr("Bot " + fake))
    assert fake not in str(error.value)
    assert validate_token(SecretStr(fake)) == fake


def test_run_bot_refuses_a_missing_token_before_connecting(tmp_path):
    from bot.app import run_bot

    with pytest.raises(UsageError):
        run_bot(make_settings(tmp_path), StubAnswerer())


def test_intents_and_mentions(tmp_path):
    from bot.app import build_bot

    bot = build_bot(make_settings(tmp_path), StubAnswerer(), sync_commands=False)
    assert bot.intents.message_content and bot.intents.guild_messages
    assert isinstance(bot.allowed_mentions, discord.AllowedMentions)
    assert bot.allowed_mentions.to_dict() == NO_PINGS
    assert sorted(c.name for c in bot.tree.get_commands()) == []  # cogs load in setup_hook, not before
