"""Questions: ``/ask``, @mentions (answered in a thread), thread follow-ups, ``/sources`` and ``/about``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import NO_MENTIONS, Busy
from bot.cogs.feedback import feedback_view
from bot.formatting import (
    BUSY_MESSAGE,
    DMS_DISABLED_MESSAGE,
    NOT_AVAILABLE_MESSAGE,
    about_embed,
    incident_message,
    render_answer,
    sources_embed,
    thread_name,
)
from newsdesk.errors import UsageError
from newsdesk.models import Answer

if TYPE_CHECKING:
    from bot.app import NewsBot

log = logging.getLogger("newsdesk.bot")

Send = Callable[..., Awaitable[Any]]
THREAD_ARCHIVE_MINUTES = 1440


async def deliver(bot: NewsBot, send: Send, answer: Answer, channel_id: int | None) -> None:
    """Send an answer as one or more messages, with the feedback buttons on the last one."""
    view: discord.ui.View | None = None
    try:
        answer_id = await asyncio.to_thread(bot.feedback.remember_answer, answer, channel_id)
        view = feedback_view(answer_id)
    except Exception as error:  # feedback is optional: the answer still goes out, without buttons
        bot.log_incident(error, "storing an answer for feedback")
    replies = render_answer(answer)
    for index, reply in enumerate(replies):
        kwargs: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
        if reply.content:
            kwargs["content"] = reply.content
        if reply.embeds:
            kwargs["embeds"] = reply.embeds
        if view is not None and index == len(replies) - 1:
            kwargs["view"] = view
        await send(**kwargs)


class AskCog(commands.Cog):
    """Everything a member uses to ask and to see what the bot knows."""

    def __init__(self, bot: NewsBot):
        """Bind to ``bot``."""
        self.bot = bot

    # --- /ask -----------------------------------------------------------------------------------

    @app_commands.command(name="ask", description="Ask a question about the ingested news articles.")
    @app_commands.describe(question="Your question, e.g. 'What did the minister announce?'")
    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        """Answer ``question`` publicly, with sources and feedback buttons."""
        bot = self.bot
        refusal = bot.check_question(question) or bot.check_cooldown(interaction.user.id)
        if refusal:
            await bot.reply_ephemeral(interaction, refusal)
            return
        # Inside one of the bot's threads, /ask continues that conversation.
        channel = interaction.channel
        conversation = channel.id if channel is not None and bot.owns_thread(channel) else None
        try:
            async with bot.gate.admit():
                bot.cooldowns.touch(interaction.user.id)
                await interaction.response.defer(thinking=True)
                answer = await bot.answer_question(question.strip(), conversation)
                await deliver(bot, interaction.followup.send, answer, interaction.channel_id)
        except Busy:
            await bot.reply_ephemeral(interaction, BUSY_MESSAGE)

    # --- mentions and thread follow-ups ---------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Answer a mention in a new thread, or a follow-up in one of the bot's threads."""
        bot = self.bot
        if message.author.bot or bot.user is None:  # other bots, webhooks and the bot itself
            return
        channel = message.channel
        in_dm = message.guild is None
        follow_up = bot.owns_thread(channel)
        if not (in_dm or follow_up or self._mentions_bot(message)):
            return
        if in_dm and not bot.settings.allow_dms:
            await self._reply(message, DMS_DISABLED_MESSAGE)
            return
        if not in_dm and bot.check_place(message.guild.id, channel):  # type: ignore[union-attr]
            return  # not our channel: stay silent
        question = bot.strip_mentions(message.content)
        refusal = bot.check_question(question) or bot.check_cooldown(message.author.id)
        if refusal:
            await self._reply(message, refusal)
            return

        target: discord.abc.Messageable = channel
        try:
            async with bot.gate.admit():
                bot.cooldowns.touch(message.author.id)
                conversation: int | None = channel.id if (follow_up or in_dm) else None
                if not in_dm and not isinstance(channel, discord.Thread):
                    thread = await self._open_thread(message, question)
                    if thread is not None:
                        target, conversation = thread, thread.id
                        bot.conversations.start(thread.id)
                async with _Typing(target):
                    answer = await bot.answer_question(question, conversation)
                send = target.send if target is not channel else message.reply
                await deliver(bot, send, answer, target.id)  # type: ignore[attr-defined]
        except Busy:
            await self._reply(message, BUSY_MESSAGE)
        except Exception as error:  # the user gets a short notice; unexpected errors an incident id
            if isinstance(error, UsageError):
                text = str(error)
            else:
                text = incident_message(bot.log_incident(error, "answering a message"))
            if target is channel:
                await self._reply(message, text)
            else:
                await _send_quietly(target, text)

    def _mentions_bot(self, message: discord.Message) -> bool:
        bot_user = self.bot.user
        if bot_user is not None and any(user.id == bot_user.id for user in message.mentions):
            return True
        own_role = message.guild.self_role if message.guild else None
        return own_role is not None and own_role in message.role_mentions

    async def _open_thread(self, message: discord.Message, question: str) -> discord.Thread | None:
        """A thread on the question's message, or None where threads are impossible (then answer inline)."""
        try:
            return await message.create_thread(
                name=thread_name(question), auto_archive_duration=THREAD_ARCHIVE_MINUTES
            )
        except (discord.HTTPException, ValueError, TypeError) as error:
            log.info("cannot open a thread in channel %s (%s); answering inline", message.channel.id, error)
            return None

    async def _reply(self, message: discord.Message, text: str) -> None:
        try:
            await message.reply(text, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as error:
            log.warning("could not reply in channel %s: %s", message.channel.id, error)

    # --- /sources and /about ------------------------------------------------------------------

    @app_commands.command(name="sources", description="List the news articles I can answer from.")
    async def sources(self, interaction: discord.Interaction) -> None:
        """List indexed articles (privately)."""
        if self.bot.sources is None:
            await self.bot.reply_ephemeral(interaction, NOT_AVAILABLE_MESSAGE)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        articles = await asyncio.to_thread(self.bot.sources)
        embed = sources_embed(articles)
        await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="about", description="What I do and how many articles I know.")
    async def about(self, interaction: discord.Interaction) -> None:
        """Explain the bot (privately)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        count = None
        if self.bot.sources is not None:
            count = len(await asyncio.to_thread(self.bot.sources))
        embed = about_embed(count, getattr(self.bot.answerer, "name", ""))
        await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)


class _Typing:
    """Best-effort typing indicator: a failure to show it must not fail the answer."""

    def __init__(self, channel: discord.abc.Messageable):
        self._inner = channel.typing()
        self._entered = False

    async def __aenter__(self) -> None:
        try:
            await self._inner.__aenter__()
            self._entered = True
        except Exception as error:  # noqa: BLE001 - cosmetic; never worth failing an answer
            log.debug("typing indicator failed: %s", error)

    async def __aexit__(self, *exc: object) -> None:
        if self._entered:
            await self._inner.__aexit__(*exc)  # type: ignore[arg-type]


async def _send_quietly(channel: discord.abc.Messageable, text: str) -> None:
    try:
        await channel.send(text, allowed_mentions=NO_MENTIONS)
    except discord.HTTPException as error:
        log.warning("could not send an error notice: %s", error)


async def setup(bot: NewsBot) -> None:
    """Extension entry point."""
    await bot.add_cog(AskCog(bot))
