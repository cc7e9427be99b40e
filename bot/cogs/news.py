"""News over time in Discord: ``/digest`` and the in-process watcher posting new-article notices."""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import NO_MENTIONS
from bot.formatting import _date_text, _escape, split_message, truncate
from newsdesk.text import fold

if TYPE_CHECKING:
    from bot.app import NewsBot

log = logging.getLogger(__name__)
BAD_SINCE_MESSAGE = "Give the period as 7d, 2w, 1m or a date like 2024-03-01."
NO_NEWS_MESSAGE = "No articles were published in that period."
MAX_GROUPS = 15
MAX_NOTICES = 10


def digest_text(groups: list[Any], since: date, until: date) -> str:
    """The digest as a message: one line per story (its cited lead), with outlets and dates, biggest first."""
    lines = [f"**{len(groups)} stories from {sum(g.size for g in groups)} articles, {since} to {until}**"]
    for index, group in enumerate(groups[:MAX_GROUPS], start=1):
        lead = group.lead.quote if group.lead else (group.articles[0].title or group.articles[0].id)
        marker = f" [{group.lead.number}]" if group.lead else ""
        copies = ", ".join(f"{fold(a.source) or 'unknown outlet'} {_date_text(a.published)}" for a in group.articles)
        lines.append(f"{index}. {_escape(truncate(fold(lead), 400))}{marker}")
        lines.append(f"    _{_escape(truncate(copies, 300))}_")
    if len(groups) > MAX_GROUPS:
        lines.append(f"…and {len(groups) - MAX_GROUPS} smaller stories.")
    return "\n".join(lines)


def notice_text(records: list[Any]) -> str:
    """A notice of newly ingested articles: title, outlet and date each."""
    lines = [f"**{len(records)} new article{'s' if len(records) != 1 else ''}**"]
    for record in records[:MAX_NOTICES]:
        details = ", ".join(p for p in (fold(record.source), _date_text(record.published)) if p)
        label = _escape(truncate(fold(record.title or record.id), 200))
        lines.append(f"\u2022 {label}" + (f" ({_escape(details)})" if details else ""))
    if len(records) > MAX_NOTICES:
        lines.append(f"…and {len(records) - MAX_NOTICES} more.")
    return "\n".join(lines)


class NewsCog(commands.Cog):
    """``/digest``, and the watcher when ``NEWSDESK_WATCH_SOURCES`` is set."""

    def __init__(self, bot: NewsBot):
        """Bind to ``bot``; the store is opened from its settings when first needed."""
        self.bot = bot
        self._store: Any = None
        self._watcher: Any = None
        self._task: asyncio.Task | None = None

    def store(self) -> Any:
        """The answerer's store, or the one the bot's settings name (opened once)."""
        if self._store is None:
            self._store = getattr(self.bot.answerer, "store", None)
        if self._store is None:
            from newsdesk.store import Store

            self._store = Store.from_settings(self.bot.settings)
        return self._store

    async def cog_load(self) -> None:
        """Start the watcher if sources are configured."""
        settings = self.bot.settings
        if settings.watch_sources:
            from ingest.watch import Watcher
            from newsdesk.embedding import Embedder, LazyEmbedder
            from newsdesk.settings import parse_every

            loaded = getattr(getattr(self.bot.answerer, "searcher", None), "embedder", None)
            embedder = loaded or LazyEmbedder(settings.embedding_model, settings.embedding_batch_size,
                                              lambda: Embedder.from_settings(settings))
            self._watcher = Watcher(settings.watch_sources, settings, self.store(), embedder,
                                    every=parse_every(settings.watch_every), prune=settings.watch_prune,
                                    max_backoff=settings.watch_max_backoff)
            self._task = asyncio.create_task(self._watch())

    async def cog_unload(self) -> None:
        """Stop the watcher (after the source it is writing)."""
        if self._watcher is not None:
            self._watcher.stop()
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        watcher = self._watcher
        await self.bot.wait_until_ready()
        while not watcher.stop_event.is_set():
            try:
                summary = await asyncio.to_thread(watcher.run_once)
                if summary.added:
                    await self._notify(summary.added)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the watcher keeps going; the log has the details
                log.exception("watch run failed: %s", error)
            await asyncio.sleep(watcher.every)

    async def _notify(self, added: list[str]) -> None:
        channel_id = self.bot.settings.watch_channel
        if not channel_id:
            return
        channel = self.bot.get_channel(channel_id)
        if channel is None:
            log.warning("watch channel %s not found: no notice posted", channel_id)
            return
        records = self.store().records_of(added)  # what was added, not the whole archive
        found = sorted(records.values(), key=lambda r: (str(r.published or ""), r.id))
        if found:
            for part in split_message(notice_text(found)):
                await channel.send(part, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="digest", description="The new articles of a period, copies grouped, biggest first.")
    @app_commands.describe(since="Period: 7d, 2w, 1m or a date like 2024-03-01", source="Only this outlet")
    async def digest(self, interaction: discord.Interaction, since: str = "7d", source: str | None = None) -> None:
        """Build the digest in a worker thread and post it."""
        from retrieval.digest import digest_groups, parse_since

        bot = self.bot
        refusal = bot.check_place(interaction.guild_id, interaction.channel)
        if refusal:
            await bot.reply_ephemeral(interaction, refusal)
            return
        until = bot.settings.as_of or date.today()
        try:
            start = parse_since(since, until)
        except ValueError:
            await bot.reply_ephemeral(interaction, BAD_SINCE_MESSAGE)
            return
        await interaction.response.defer(thinking=True)
        groups = await asyncio.to_thread(digest_groups, self.store(), start, until, [source] if source else [])
        text = digest_text(groups, start, until) if groups else NO_NEWS_MESSAGE
        for part in split_message(text):
            await interaction.followup.send(part, allowed_mentions=NO_MENTIONS)


async def setup(bot: NewsBot) -> None:
    """Extension entry point."""
    await bot.add_cog(NewsCog(bot))
