"""Admin-only commands: ``/ingest url:`` adds an article to the index."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import NO_MENTIONS
from bot.formatting import NOT_AVAILABLE_MESSAGE, discord_text, ingest_summary, truncate
from newsdesk.errors import NewsdeskError

if TYPE_CHECKING:
    from bot.app import NewsBot

_URL = re.compile(r"https?://[^\s<>]{3,2000}", re.IGNORECASE)
BAD_URL_MESSAGE = "Give the full address of an article, starting with http:// or https://."
INGEST_RUNNING_MESSAGE = "An ingest is already running; try again when it has finished."


def is_admin(member: discord.Member, role_ids: list[int]) -> bool:
    """Whether ``member`` may run admin commands: Manage Server permission, or a role whose id is listed."""
    if member.guild_permissions.manage_guild:
        return True
    return any(role.id in role_ids for role in member.roles)


class AdminCog(commands.Cog):
    """Commands for members with Manage Server or a role in ``settings.admin_role_ids``."""

    def __init__(self, bot: NewsBot):
        """Bind to ``bot``."""
        self.bot = bot
        self._ingesting = asyncio.Lock()  # one ingest at a time: they write the same store

    async def interaction_check(self, interaction: discord.Interaction) -> bool:  # type: ignore[override]
        """Only members with Manage Server or a role listed in ``admin_role_ids`` may use these commands.

        Roles are matched by id, never by name: anyone who can create roles in any server the bot joins
        could make one with the right name.
        """
        member = interaction.user
        if not isinstance(member, discord.Member) or not is_admin(member, self.bot.settings.admin_role_ids):
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    @app_commands.command(name="ingest", description="Fetch a news article from a URL and index it (admins).")
    @app_commands.describe(url="The article's address, e.g. https://example.com/news/story")
    @app_commands.guild_only()
    async def ingest(self, interaction: discord.Interaction, url: str) -> None:
        """Run the ingest callable in a worker thread and report its summary privately."""
        bot = self.bot
        url = url.strip()
        if bot.ingest is None:
            await bot.reply_ephemeral(interaction, NOT_AVAILABLE_MESSAGE)
            return
        if not _URL.fullmatch(url):
            await bot.reply_ephemeral(interaction, BAD_URL_MESSAGE)
            return
        if self._ingesting.locked():
            await bot.reply_ephemeral(interaction, INGEST_RUNNING_MESSAGE)
            return
        async with self._ingesting:
            await interaction.response.defer(ephemeral=True, thinking=True)
            try:
                report = await asyncio.to_thread(bot.ingest, url)
            except NewsdeskError as error:  # one-line, actionable messages by design
                text = truncate(f"Could not ingest <{truncate(url, 300)}>: {discord_text(str(error))}", 1900)
            else:
                text = ingest_summary(report, url)
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def setup(bot: NewsBot) -> None:
    """Extension entry point."""
    await bot.add_cog(AdminCog(bot))
