"""Feedback: the SQLite store, the eval-stub export, and the 👍/👎 buttons and reason modal in the bot."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest

from bot.cogs.feedback import THANKS, TOO_OLD
from bot.feedback import FeedbackStore
from newsdesk.models import Answer, Citation
from tests.bot_support import RecordingAnswerer, Sent, make_settings, start_harness
from tests.support import DEV_QUESTIONS

pytestmark = pytest.mark.slow

Q1 = "What is happening to the capacity of the Special Protection Unit?"
Q2 = "Which Pakistani ministries did not reply to Reuters' requests for comment?"
USER = 123456789012345678


@pytest.fixture
def bot_answerer(answerer):
    """The real offline answerer over the sample corpus."""
    return answerer


def _answer(question: str = Q1, text: str = "The unit is being enhanced [1].") -> Answer:
    citation = Citation(number=1, article_id="000_70bec7e4b0fc20fc", quote="is being enhanced",
                        char_start=10, char_end=27, title="Punjab", source="Dawn")
    return Answer(question=question, text=text, citations=[citation])


# --- the store -------------------------------------------------------------------------------------


def test_record_and_rows_round_trip(tmp_path):
    store = FeedbackStore(tmp_path / "nested" / "dir" / "feedback.sqlite3")  # creates directories
    answer = _answer()
    row_id = store.record(question=Q1, answer=answer, channel_id=42, user_id=USER, vote="down",
                          reason="wrong unit")
    [row] = store.rows()
    assert row.id == row_id and row.question == Q1 and row.vote == "down" and row.reason == "wrong unit"
    assert row.channel_id == 42 and row.answer == answer
    assert row.citations[0]["quote"] == "is being enhanced"
    assert row.created_at.endswith("+00:00")


def test_user_ids_are_stored_only_as_salted_hashes(tmp_path):
    path = tmp_path / "feedback.sqlite3"
    store = FeedbackStore(path)
    store.record(question=Q1, answer=_answer(), channel_id=1, user_id=USER, vote="up")
    [row] = store.rows()
    assert len(row.user_hash) == 64 and str(USER) not in row.user_hash
    assert str(USER).encode() not in path.read_bytes()
    assert row.user_hash == FeedbackStore(path).hash_user(USER), "stable across reopenings"
    assert row.user_hash != FeedbackStore(tmp_path / "other.sqlite3").hash_user(USER), "salted per database"


def test_one_vote_per_user_per_answer(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    answer_id = store.remember_answer(_answer(), channel_id=7)
    first = store.vote(answer_id, user_id=USER, vote="up")
    second = store.vote(answer_id, user_id=USER, vote="down")
    store.vote(answer_id, user_id=USER + 1, vote="up")
    assert first == second
    assert [(r.vote, r.channel_id) for r in store.rows()] == [("down", 7), ("up", 7)]


def test_unknown_answers_cannot_be_voted_on(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    assert store.vote("0123456789abcdef", user_id=USER, vote="up") is None
    assert store.get_answer("0123456789abcdef") is None
    with pytest.raises(ValueError):
        store.record(question=Q1, answer=_answer(), channel_id=None, user_id=USER,
                     vote="meh")  # type: ignore[arg-type]


def test_reason_is_attached_later(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    row_id = store.vote(store.remember_answer(_answer(), None), user_id=USER, vote="down")
    store.set_reason(row_id, "  cites the wrong article  ")
    assert store.rows()[0].reason == "cites the wrong article"
    store.set_reason(row_id, "   ")
    assert store.rows()[0].reason is None


def test_export_stubs_follows_the_eval_layout(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    store.record(question=Q1, answer=_answer(), channel_id=1, user_id=1, vote="down", reason="wrong unit")
    store.record(question=Q1.upper() + "  ", answer=_answer(text="Second try [1]."), channel_id=1, user_id=2,
                 vote="down", reason="still wrong")
    store.record(question=Q2, answer=_answer(Q2), channel_id=1, user_id=1, vote="up")
    abstained = Answer(question="Who won?", text="", abstained=True)
    store.record(question="Who won?", answer=abstained, channel_id=1, user_id=1, vote="down")

    out = tmp_path / "exports" / "stubs.jsonl"
    assert store.export_stubs(out) == 2
    stubs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [s["question"] for s in stubs] == [Q1, "Who won?"]
    first = stubs[0]
    assert set(first) == {"id", "question", "answerable", "answers", "evidence", "note", "answer_given"}
    assert first["answerable"] is None and first["answers"] == [] and first["evidence"] == []
    assert first["note"] == "wrong unit | still wrong"
    assert first["answer_given"] == "Second try [1]."
    assert first["id"].startswith("fb-")
    assert stubs[1]["note"] is None and stubs[1]["answer_given"] == "The articles don't say."

    # The layout matches the shared eval set's keys (plus the two a maintainer reads and deletes).
    gold = json.loads(DEV_QUESTIONS.read_text(encoding="utf-8").splitlines()[0])
    assert set(gold) <= set(first)

    # Re-exporting overwrites rather than appends.
    assert store.export_stubs(out) == 2 and len(out.read_text().splitlines()) == 2


def test_export_with_no_downvotes_writes_an_empty_file(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3")
    out = tmp_path / "stubs.jsonl"
    assert store.export_stubs(out) == 0 and out.read_text() == ""


def test_old_answers_are_pruned(tmp_path, monkeypatch):
    import bot.feedback as feedback_module

    monkeypatch.setattr(feedback_module, "KEEP_ANSWERS", 3)
    store = FeedbackStore(tmp_path / "f.sqlite3")
    ids = [store.remember_answer(_answer(f"q{i}"), None) for i in range(5)]
    assert store.get_answer(ids[0]) is None and store.get_answer(ids[1]) is None
    assert store.get_answer(ids[-1])[0].question == "q4"


# --- buttons and modal in the bot ------------------------------------------------------------------


@pytest.fixture
async def harness(tmp_path, bot_answerer):
    h = await start_harness(make_settings(tmp_path), RecordingAnswerer(bot_answerer))
    yield h
    await h.close()


def _buttons(h):
    [with_buttons] = [s for s in h.sent if s.custom_ids]
    up, down = with_buttons.custom_ids
    return with_buttons, up, down


async def test_thumbs_up_writes_a_row(harness):
    await harness.mention(Q1)
    message, up, _ = _buttons(harness)
    await harness.click(message, up, member=harness.members[1])

    [row] = harness.bot.feedback.rows()
    assert row.vote == "up" and row.question == Q1
    assert row.user_hash == harness.bot.feedback.hash_user(harness.members[1].id)
    assert row.channel_id == harness.threads()[0].id
    assert Answer.model_validate_json(row.answer_json).question == Q1
    thanks = harness.adapter.sent[-1]
    assert thanks.content == THANKS and thanks.ephemeral


async def test_thumbs_down_opens_the_reason_modal_and_stores_the_reason(harness, tmp_path):
    await harness.slash("ask", question=Q1)
    message, _, down = _buttons(harness)
    await harness.click(message, down)

    [row] = harness.bot.feedback.rows()
    assert row.vote == "down" and row.reason is None  # the vote counts even if the modal is dismissed
    modal = harness.adapter.sent[-1]
    assert modal.kind == "modal"
    text_input = modal.payload["components"][0]["components"][0]
    assert text_input["required"] is False

    reason = {text_input["custom_id"]: "It cites the wrong unit"}
    await harness.submit_modal(modal.payload["custom_id"], reason)
    assert harness.bot.feedback.rows()[0].reason == "It cites the wrong unit"
    assert harness.adapter.sent[-1].content == THANKS

    out = tmp_path / "stubs.jsonl"
    assert harness.bot.feedback.export_stubs(out) == 1
    stub = json.loads(out.read_text())
    assert stub["question"] == Q1 and stub["note"] == "It cites the wrong unit"


async def test_buttons_survive_a_restart(tmp_path, bot_answerer):
    settings = make_settings(tmp_path)
    first = await start_harness(settings, bot_answerer)
    try:
        await first.mention(Q1)
        message, up, _ = _buttons(first)
    finally:
        await first.close()
    second = await start_harness(settings, bot_answerer)  # a new process, same database
    try:
        await second.click(message, up)
        assert [r.vote for r in second.bot.feedback.rows()] == ["up"]
    finally:
        await second.close()


async def test_unknown_answer_ids_are_answered_politely(harness):
    await harness.mention(Q1)
    message, up, _ = _buttons(harness)
    stale = up.rsplit(":", 1)[0] + ":ffffffffffffffff"  # e.g. an answer pruned from the store
    old_message = Sent(message.channel_id, json.loads(json.dumps(message.payload).replace(up, stale)))
    await harness.click(old_message, stale)
    assert harness.adapter.sent[-1].content == TOO_OLD and harness.bot.feedback.rows() == []


async def test_a_broken_feedback_store_does_not_block_answers(tmp_path, bot_answerer, caplog):
    class BrokenStore(FeedbackStore):
        def remember_answer(self, answer, channel_id):
            raise sqlite3.OperationalError("disk I/O error")

    h = await start_harness(make_settings(tmp_path), bot_answerer,
                            feedback=BrokenStore(tmp_path / "broken.sqlite3"))
    try:
        with caplog.at_level(logging.ERROR, logger="newsdesk.bot"):
            await h.mention(Q1)
        [thread] = h.threads()
        sent = h.sent_to(thread.id)
        assert any(s.embeds for s in sent) and not any(s.custom_ids for s in sent)
        assert any("incident" in r.getMessage() for r in caplog.records)
    finally:
        await h.close()
