"""`/digest` and the bot's in-process watcher (issue 11), through the real bot on dpytest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.sync import ingest
from newsdesk.store import Store
from tests.bot_support import StubAnswerer, make_settings, start_harness

STORY = ("The city council approved a new tram line on Tuesday after a four-hour debate, clearing the way for "
         "construction to begin next spring. The line will link the station with the university and the hospital.")
ARTICLES = [
    {"id": "tram-wire", "source": "Wire", "published": "2024-03-12", "title": "Tram approved", "text": STORY},
    {"id": "tram-herald", "source": "Herald", "published": "2024-03-13", "title": "Tram line approved",
     "text": STORY.replace("four-hour", "long")},
    {"id": "snow", "source": "Wire", "published": "2024-03-14", "title": "Snow closes pass <@&123>",
     "text": "Heavy snow closed the mountain pass for a second day on Wednesday, stranding lorries at the border."},
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "news.jsonl").write_text("".join(json.dumps(a) + "\n" for a in ARTICLES), encoding="utf-8")
    return folder


@pytest.mark.slow
async def test_digest_posts_grouped_stories_with_cited_leads(tmp_path: Path, corpus: Path, embedder) -> None:
    settings = make_settings(tmp_path, as_of="2024-03-15")
    assert not ingest([str(corpus)], settings, Store.from_settings(settings), embedder).failed
    h = await start_harness(settings, StubAnswerer())
    try:
        await h.slash("digest", since="7d")
        text = "\n".join(s.content for s in h.adapter.sent if s.kind == "followup")
        assert "2 stories from 3 articles, 2024-03-08 to 2024-03-15" in text
        assert "1. The city council approved a new tram line" in text and "[1]" in text
        assert "Wire 2024-03-12, Herald 2024-03-13" in text
        await h.slash("digest", since="whenever")
        assert h.adapter.sent[-1].ephemeral and "7d, 2w, 1m" in h.adapter.sent[-1].content
    finally:
        await h.close()


@pytest.mark.slow
async def test_watcher_runs_in_process_and_posts_notices(tmp_path: Path, corpus: Path, embedder) -> None:
    settings = make_settings(tmp_path, watch_sources=str(corpus), watch_every="1h")
    h = await start_harness(settings, StubAnswerer())
    try:
        cog = h.bot.get_cog("NewsCog")
        assert cog._watcher is not None and cog._watcher.sources == [str(corpus)]
        cog._watcher.embedder = embedder  # the session's loaded model instead of loading another
        summary = cog._watcher.run_once()
        assert sorted(summary.added) == ["snow", "tram-herald", "tram-wire"]
        h.bot.settings.watch_channel = h.channel.id
        await cog._notify(summary.added)
        notice = h.http.sent[-1]
        assert notice.channel_id == h.channel.id
        assert "3 new articles" in notice.content and "Tram approved (Wire, 2024-03-12)" in notice.content
        assert notice.payload["allowed_mentions"]["parse"] == []  # article text never pings
    finally:
        await h.close()
