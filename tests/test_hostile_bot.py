"""Issue 13, the bot: admin by role id or Manage Server (never a role name), servers must be listed, the
feedback salt lives apart from the 0600 database, every article value is escaped for Discord in one
function, and a bot without network says so in one line."""

from __future__ import annotations

import os
import sqlite3
import stat

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext.test import backend

from bot.feedback import FeedbackStore
from bot.formatting import NO_GUILDS_MESSAGE, answer_text, citation_field, discord_text, sources_embed
from newsdesk.models import Answer, Citation, IngestReport
from tests.bot_support import StubAnswerer, make_settings, start_harness


# --- one escape for Discord -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    ["[Log in here](http://evil.example/phish)", "**bold** __u__ ~~s~~ ||spoiler|| `code` > quote",
     "@everyone @here <@123456> <@&42> <#99>", "zero\u200bwidth \u202eevil bidi\x1b[2J"],
)
def test_discord_text_neutralises_markdown_links_and_mentions(value: str) -> None:
    shown = discord_text(value)
    assert "](" not in shown.replace("\\](", "").replace("\\]\\(", "")
    assert "@everyone" not in shown and "@here" not in shown
    assert "<@1" not in shown and "<@&" not in shown and "<#9" not in shown
    assert not any(char in shown for char in ("\u202e", "\x1b"))
    for mark in ("**", "__", "~~", "||", "`"):
        assert mark not in shown.replace("\\" + mark[0], "")


def test_crafted_article_url_cannot_inject_a_masked_link() -> None:
    citation = Citation(number=1, article_id="a", quote="The dam opened.", char_start=0, char_end=15,
                        title="Dam", url="http://evil.example/a%29b]%28http://x.example")
    _, value = citation_field(citation)
    link = value.split("\n")[-1]
    assert link.startswith("[Read the article](http://evil.example/a%29b%5D%28http://x.example)")
    assert link.count("](") == 1 and link.count("(") == 1 and link.count(")") == 1
    raw = Citation(number=1, article_id="a", quote="q", char_start=0, char_end=1,
                   url="http://evil.example/a)b](http://x.example")
    assert citation_field(raw)[1].endswith("[Read the article](http://evil.example/a%29b%5D%28http://x.example)")


def test_article_text_with_a_masked_link_stays_text_but_markers_stay_markers() -> None:
    answer = Answer(question="q", text="See [the report](http://evil.example) for details [1][2].",
                    citations=[])
    shown = answer_text(answer)
    assert "[1][2]" in shown
    assert "\\[the report\\]\\(http://evil.example\\)" in shown


def test_sources_listing_escapes_titles() -> None:
    embed = sources_embed([{"article_id": "x", "title": "[Free](http://evil.example) @everyone"}])
    assert "](" not in embed.description.replace("\\](", "").replace("\\]\\(", "")
    assert "@everyone" not in embed.description


# --- servers, admins --------------------------------------------------------------------------------
@pytest.mark.slow
async def test_no_listed_server_means_no_answers(tmp_path) -> None:
    answerer = StubAnswerer()
    h = await start_harness(make_settings(tmp_path, allow_any_guild=False), answerer)
    try:
        await h.mention("What happened to the dam?")
        assert answerer.calls == []
        await h.slash("ask", question="What happened to the dam?")
        assert answerer.calls == [] and h.adapter.sent[-1].content == NO_GUILDS_MESSAGE
        h.bot.settings.allowed_guilds = [h.guild.id]
        await h.slash("ask", question="What happened to the dam?")
        assert len(answerer.calls) == 1
    finally:
        await h.close()


@pytest.mark.slow
async def test_manage_server_permission_makes_an_admin_a_role_name_does_not(tmp_path) -> None:
    calls: list[str] = []

    def ingest(url: str) -> IngestReport:
        calls.append(url)
        return IngestReport(added=["a"])

    h = await start_harness(make_settings(tmp_path, admin_role="newsdesk-admin"), StubAnswerer(), ingest=ingest)
    try:
        member = h.members[1]
        await dpytest.add_role(member, backend.make_role("newsdesk-admin", h.guild, permissions=0))
        await h.slash("ingest", url="https://example.com/a", member=member)
        assert calls == [] and "Manage Server" in h.adapter.sent[-1].content
        managers = backend.make_role("managers", h.guild,
                                     permissions=discord.Permissions(manage_guild=True).value)
        await dpytest.add_role(member, managers)
        await h.slash("ingest", url="https://example.com/a", member=member)
        assert calls == ["https://example.com/a"]
    finally:
        await h.close()


# --- feedback salt ----------------------------------------------------------------------------------
def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_feedback_database_and_key_are_private_and_apart(tmp_path) -> None:
    path = tmp_path / "feedback.sqlite3"
    store = FeedbackStore(path)
    key = tmp_path / "feedback.key"
    assert _mode(path) == 0o600 and _mode(key) == 0o600
    salt = key.read_text().strip()
    assert len(salt) == 32
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM meta WHERE key = 'user_salt'").fetchone()[0] == 0
    assert salt.encode() not in path.read_bytes()
    assert FeedbackStore(path).hash_user(7) == store.hash_user(7)  # the key file keeps hashes stable


def test_legacy_salt_moves_out_and_hashes_stay_comparable(tmp_path) -> None:
    path = tmp_path / "feedback.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('user_salt', 'aabbccddeeff00112233445566778899')")
    os.chmod(path, 0o644)
    store = FeedbackStore(path)
    import hashlib

    assert store.hash_user(5) == hashlib.sha256(b"aabbccddeeff00112233445566778899:5").hexdigest()
    assert _mode(path) == 0o600
    assert (tmp_path / "feedback.key").read_text().strip() == "aabbccddeeff00112233445566778899"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM meta").fetchone()[0] == 0


def test_salt_from_a_setting_writes_no_key_file(tmp_path) -> None:
    store = FeedbackStore(tmp_path / "f.sqlite3", salt="from-the-environment")
    assert not (tmp_path / "f.key").exists()
    assert store.hash_user(1) != FeedbackStore(tmp_path / "g.sqlite3", salt="other").hash_user(1)


# --- no network -------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bot_without_network_is_one_line(tmp_path) -> None:
    from bot.app import run_bot
    from newsdesk.errors import NewsdeskError
    from tests.chroma_server import free_port

    proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens: Discord is out of reach
    settings = make_settings(tmp_path, discord_token="MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123",
                             discord_proxy=proxy)
    with pytest.raises(NewsdeskError) as caught:
        run_bot(settings, StubAnswerer())
    assert str(caught.value) == (
        f"cannot reach Discord through the proxy {proxy} (ClientProxyConnectionError): check the network "
        "connection (and NEWSDESK_DISCORD_PROXY) and start the bot again")
