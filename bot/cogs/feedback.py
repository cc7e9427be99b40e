"""👍/👎 buttons under each answer, and the optional reason modal for 👎.

The buttons are :class:`discord.ui.DynamicItem` s whose custom_id carries the vote and the answer id
(``newsdesk:fb:down:0123456789abcdef``), so they keep working after a restart without the bot
holding a view per message.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.app import NO_MENTIONS

if TYPE_CHECKING:
    from bot.app import NewsBot
    from bot.feedback import FeedbackStore

THANKS = "Thanks for the feedback."
TOO_OLD = "That answer is too old to rate."


class FeedbackButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"newsdesk:fb:(?P<vote>up|down):(?P<answer_id>[0-9a-f]{16})",
):
    """One vote button; the custom_id is the whole state."""

    def __init__(self, vote: str, answer_id: str):
        """A 👍 (``vote="up"``) or 👎 (``vote="down"``) button for the answer ``answer_id``."""
        up = vote == "up"
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary,
                emoji="\N{THUMBS UP SIGN}" if up else "\N{THUMBS DOWN SIGN}",
                label="Helpful" if up else "Not helpful",
                custom_id=f"newsdesk:fb:{vote}:{answer_id}",
            )
        )
        self.vote = vote
        self.answer_id = answer_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: Any, /
    ) -> FeedbackButton:
        """Rebuild the button from a clicked component's custom_id."""
        return cls(match["vote"], match["answer_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        """Store the vote; for 👎 also offer the reason modal."""
        bot: NewsBot = interaction.client  # type: ignore[assignment]
        try:
            row_id = await asyncio.to_thread(
                bot.feedback.vote,
                self.answer_id,
                user_id=interaction.user.id,
                vote=self.vote,  # type: ignore[arg-type]
            )
            if row_id is None:
                await bot.reply_ephemeral(interaction, TOO_OLD)
            elif self.vote == "down":
                await interaction.response.send_modal(ReasonModal(bot.feedback, row_id))
            else:
                await bot.reply_ephemeral(interaction, THANKS)
        except Exception as error:  # the user gets an incident id, the log gets the traceback
            await bot.report_interaction_error(interaction, error)


def feedback_view(answer_id: str) -> discord.ui.View:
    """The 👍/👎 buttons for one shown answer."""
    view = discord.ui.View(timeout=None)
    view.add_item(FeedbackButton("up", answer_id))
    view.add_item(FeedbackButton("down", answer_id))
    return view


class ReasonModal(discord.ui.Modal, title="What was wrong with this answer?"):
    """Optional free-text reason attached to a 👎 that is already recorded."""

    reason: discord.ui.TextInput = discord.ui.TextInput(
        label="Reason (optional)",
        style=discord.TextStyle.paragraph,
        required=False,
        max_length=1000,
        placeholder="e.g. the answer missed that the meeting was postponed",
    )

    def __init__(self, store: FeedbackStore, row_id: int):
        """Attach the reason to the vote stored as ``row_id``."""
        super().__init__(timeout=900, custom_id=f"newsdesk:fbreason:{row_id}")
        self.store = store
        self.row_id = row_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Store the reason (if any) and thank the user."""
        await asyncio.to_thread(self.store.set_reason, self.row_id, self.reason.value)
        await interaction.response.send_message(THANKS, ephemeral=True, allowed_mentions=NO_MENTIONS)

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:
        """Incident id to the user, traceback to the log."""
        await interaction.client.report_interaction_error(interaction, error)  # type: ignore[attr-defined]


class FeedbackCog(commands.Cog):
    """Registers the vote buttons so clicks are routed even for answers sent before a restart."""

    def __init__(self, bot: NewsBot):
        """Bind to ``bot``."""
        self.bot = bot

    async def cog_load(self) -> None:
        """Route clicks on any vote button to :class:`FeedbackButton`."""
        self.bot.add_dynamic_items(FeedbackButton)

    async def cog_unload(self) -> None:
        """Stop routing vote clicks."""
        self.bot.remove_dynamic_items(FeedbackButton)


async def setup(bot: NewsBot) -> None:
    """Extension entry point."""
    await bot.add_cog(FeedbackCog(bot))
