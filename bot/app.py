"""The Discord bot: :class:`NewsBot`, its guardrails, and the entry points :func:`build_bot`, :func:`run_bot`.

The bot receives everything it talks to through its constructor (the answerer, the ingest and
sources callables, the feedback store, the settings), following discord.py's
``examples/advanced_startup.py``. The answerer is synchronous and slow, so it always runs in a
worker thread; a gate bounds how many questions are answered at once and how many may wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands
from pydantic import SecretStr

from bot.feedback import FeedbackStore
from bot.formatting import (
    ADMIN_ONLY_MESSAGE,
    DMS_DISABLED_MESSAGE,
    EMPTY_QUESTION_MESSAGE,
    NO_GUILDS_MESSAGE,
    NOT_HERE_MESSAGE,
    cooldown_message,
    incident_message,
    too_long_message,
)
from newsdesk.errors import EmptyQuestion, NewsdeskError, QuestionTooLong, UsageError
from newsdesk.models import ABSTAIN_TEXT, Answer, IngestReport
from newsdesk.settings import Settings
from newsdesk.text import validate_question
from retrieval.base import Answerer, Turn

log = logging.getLogger("newsdesk.bot")

COGS = ("bot.cogs.ask", "bot.cogs.feedback", "bot.cogs.admin", "bot.cogs.news")  # news: issue 11
#: Sent with every message: text from articles or users must never ping anyone.
NO_MENTIONS = discord.AllowedMentions.none()

IngestFn = Callable[[str], IngestReport]
SourcesFn = Callable[[], list[dict[str, Any]]]

_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{10,}")


class Busy(Exception):
    """Raised when the answer queue is full."""


class AnswerGate:
    """At most ``concurrency`` questions answered at once and ``queue`` more waiting; beyond that, busy.

    Admission is decided synchronously (no await between the check and the count), so it is exact
    on the single-threaded event loop.
    """

    def __init__(self, concurrency: int, queue: int):
        """Create a gate; ``concurrency`` must be at least 1."""
        self.capacity = concurrency + queue
        self.admitted = 0
        self._slots = asyncio.Semaphore(concurrency)

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Context for one question's whole handling; raises :class:`Busy` on entry when full."""
        if self.admitted >= self.capacity:
            raise Busy
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Context for the answering itself: waits for one of the ``concurrency`` slots."""
        async with self._slots:
            yield


class Cooldowns:
    """Per-user cooldown: one question per ``seconds``."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        """Create a cooldown of ``seconds`` (0 disables it)."""
        self.seconds = seconds
        self._clock = clock
        self._last: dict[int, float] = {}

    def retry_after(self, user_id: int) -> float:
        """Seconds until ``user_id`` may ask again; 0 when they may ask now."""
        last = self._last.get(user_id)
        if last is None or self.seconds <= 0:
            return 0.0
        return max(0.0, self.seconds - (self._clock() - last))

    def touch(self, user_id: int) -> None:
        """Start ``user_id``'s cooldown now."""
        now = self._clock()
        if len(self._last) > 10_000:  # forget users whose cooldown is long over
            self._last = {u: t for u, t in self._last.items() if now - t < self.seconds}
        self._last[user_id] = now


class Conversations:
    """Question/answer turns per thread (or DM channel), newest kept, least recently used forgotten."""

    def __init__(self, turns: int, max_conversations: int = 5_000):
        """Keep the last ``turns`` turns of at most ``max_conversations`` conversations."""
        self.turns = turns
        self._max = max_conversations
        self._by_id: OrderedDict[int, deque[Turn]] = OrderedDict()

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self._by_id

    def start(self, conversation_id: int) -> None:
        """Register a conversation (a thread the bot opened) with no turns yet."""
        self._touch(conversation_id)

    def history(self, conversation_id: int) -> list[Turn]:
        """The last ``turns`` turns, oldest first."""
        turns = self._by_id.get(conversation_id)
        if not turns or self.turns <= 0:
            return []
        return list(turns)[-self.turns :]

    def add(self, conversation_id: int, turn: Turn) -> None:
        """Append a turn."""
        self._touch(conversation_id).append(turn)

    def _touch(self, conversation_id: int) -> deque[Turn]:
        turns = self._by_id.pop(conversation_id, None)
        if turns is None:
            turns = deque(maxlen=max(self.turns, 1))
        self._by_id[conversation_id] = turns
        while len(self._by_id) > self._max:
            self._by_id.popitem(last=False)
        return turns


def new_incident() -> str:
    """A short random incident id (6 hex characters)."""
    return secrets.token_hex(3)


class NewsTree(app_commands.CommandTree):
    """Command tree that applies the place guardrails to every slash command and reports errors."""

    client: NewsBot

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Refuse commands outside the allowed guilds and channels (and in DMs when those are off)."""
        reason = self.client.check_place(interaction.guild_id, interaction.channel)
        if reason:
            raise app_commands.CheckFailure(reason)
        return True

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError, /
    ) -> None:
        """Tell the user briefly; unexpected errors get an incident id and a logged traceback."""
        await self.client.report_interaction_error(interaction, error)


class NewsBot(commands.Bot):
    """The newsdesk Discord bot. Cogs in :data:`COGS` hold the commands and listeners."""

    def __init__(
        self,
        *,
        settings: Settings,
        answerer: Answerer,
        feedback: FeedbackStore,
        ingest: IngestFn | None = None,
        sources: SourcesFn | None = None,
        sync_commands: bool = True,
    ):
        """Create the bot; nothing connects until :meth:`start` (or :func:`run_bot`).

        Args:
            settings: Guardrails and limits.
            answerer: Turns a question into an :class:`Answer`; called in a worker thread.
            feedback: Where shown answers and votes are stored.
            ingest: ``(url) -> IngestReport`` for ``/ingest``; None disables the command.
            sources: ``() -> list[dict]`` of indexed articles for ``/sources`` and ``/about``.
            sync_commands: Register slash commands with Discord in :meth:`setup_hook`.
        """
        intents = discord.Intents.default()
        intents.message_content = True  # mentions carry content anyway; thread follow-ups need it
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=NO_MENTIONS,
            help_command=None,
            tree_cls=NewsTree,
            proxy=settings.discord_proxy,
        )
        self.settings = settings
        self.answerer = answerer
        self.feedback = feedback
        self.ingest = ingest
        self.sources = sources
        self.sync_commands = sync_commands
        self.gate = AnswerGate(settings.bot_concurrency, settings.bot_queue)
        self.cooldowns = Cooldowns(settings.cooldown_seconds)
        self.conversations = Conversations(settings.history_turns)
        self._executor = ThreadPoolExecutor(
            max_workers=settings.bot_concurrency, thread_name_prefix="newsdesk-answer"
        )

    # --- lifecycle ------------------------------------------------------------------------------

    async def setup_hook(self) -> None:
        """Load the cogs and register slash commands."""
        for extension in COGS:
            await self.load_extension(extension)
        if self.sync_commands:
            await self._sync_commands()

    async def _sync_commands(self) -> None:
        try:
            if self.settings.allowed_guilds:  # guild commands appear at once; global ones take a while
                for guild_id in self.settings.allowed_guilds:
                    guild = discord.Object(id=guild_id)
                    self.tree.copy_global_to(guild=guild)
                    await self.tree.sync(guild=guild)
            else:
                await self.tree.sync()
        except discord.HTTPException as error:
            log.warning("could not register slash commands with Discord: %s", error)

    async def on_ready(self) -> None:
        """Log where the bot is."""
        log.info("connected as %s to %d server(s)", self.user, len(self.guilds))

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: questions are handled by the ask cog's listener."""

    async def close(self) -> None:
        """Disconnect, then stop the worker threads."""
        try:
            await super().close()
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # --- guardrails -----------------------------------------------------------------------------

    def check_place(self, guild_id: int | None, channel: object) -> str | None:
        """Why the bot may not act here, or None when it may."""
        settings = self.settings
        if guild_id is None:
            return None if settings.allow_dms else DMS_DISABLED_MESSAGE
        if not settings.allowed_guilds and not settings.allow_any_guild:
            return NO_GUILDS_MESSAGE
        if settings.allowed_guilds and guild_id not in settings.allowed_guilds:
            return NOT_HERE_MESSAGE
        if settings.allowed_channels:
            ids = {getattr(channel, "id", None), getattr(channel, "parent_id", None)}
            if not ids & set(settings.allowed_channels):
                return NOT_HERE_MESSAGE
        return None

    def check_question(self, question: str) -> str | None:
        """Why the question is refused (empty or over the length limit), or None."""
        try:
            validate_question(question, self.settings)  # the CLI's and the answerer's rule, stripped first
        except EmptyQuestion:
            return EMPTY_QUESTION_MESSAGE
        except QuestionTooLong as error:
            return too_long_message(error.length, error.limit)
        return None

    def check_cooldown(self, user_id: int) -> str | None:
        """Why ``user_id`` must wait, or None."""
        wait = self.cooldowns.retry_after(user_id)
        return cooldown_message(wait) if wait > 0 else None

    def owns_thread(self, channel: object) -> bool:
        """True for a thread the bot opened (remembered, or owned by the bot after a restart)."""
        if not isinstance(channel, discord.Thread):
            return False
        if channel.id in self.conversations:
            return True
        return self.user is not None and channel.owner_id == self.user.id

    def strip_mentions(self, content: str) -> str:
        """The question in a message: the content without mentions of the bot."""
        if self.user is not None:
            content = re.sub(rf"<@!?{self.user.id}>", " ", content)
        return " ".join(content.split())

    # --- services -------------------------------------------------------------------------------

    async def answer_question(self, question: str, conversation_id: int | None = None) -> Answer:
        """Answer in a worker thread once a slot is free, with the conversation's earlier turns.

        The caller must already hold admission from :attr:`gate`.
        """
        history = self.conversations.history(conversation_id) if conversation_id is not None else []
        call = functools.partial(self.answerer.answer, question, history=history)
        async with self.gate.slot():
            answer = await asyncio.get_running_loop().run_in_executor(self._executor, call)
        if conversation_id is not None:
            shown = ABSTAIN_TEXT if answer.abstained else answer.text
            self.conversations.add(conversation_id, Turn(question=question, answer=shown))
        return answer

    # --- errors ---------------------------------------------------------------------------------

    def log_incident(self, error: BaseException, context: str) -> str:
        """Log ``error`` with its traceback under a new incident id and return the id."""
        incident = new_incident()
        log.error("incident %s: %s failed", incident, context, exc_info=error)
        return incident

    async def reply_ephemeral(self, interaction: discord.Interaction, text: str) -> None:
        """Answer an interaction privately, whether or not it was already deferred."""
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            else:
                await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as error:
            log.warning("could not reply to interaction %s: %s", interaction.id, error)

    async def report_interaction_error(self, interaction: discord.Interaction, error: Exception) -> None:
        """Turn an exception from a command, button or modal into a short private reply."""
        original = getattr(error, "original", error)
        if isinstance(error, app_commands.MissingPermissions | app_commands.MissingRole):
            text = ADMIN_ONLY_MESSAGE
        elif isinstance(error, app_commands.CheckFailure):
            text = str(error) or NOT_HERE_MESSAGE
        elif isinstance(original, UsageError):
            text = str(original)
        else:
            command = interaction.command.qualified_name if interaction.command else "interaction"
            text = incident_message(self.log_incident(original, f"/{command}"))
        await self.reply_ephemeral(interaction, text)


def build_bot(
    settings: Settings,
    answerer: Answerer,
    *,
    ingest: IngestFn | None = None,
    sources: SourcesFn | None = None,
    feedback: FeedbackStore | None = None,
    sync_commands: bool = True,
) -> NewsBot:
    """Assemble a :class:`NewsBot` from its collaborators.

    The feedback store defaults to one at ``settings.feedback_db``; ``sync_commands=False`` skips
    registering slash commands with Discord (tests).
    """
    salt = settings.feedback_salt.get_secret_value() if settings.feedback_salt else None
    store = feedback if feedback is not None else FeedbackStore(settings.feedback_db, salt=salt,
                                                                key_path=settings.feedback_key)
    return NewsBot(
        settings=settings,
        answerer=answerer,
        feedback=store,
        ingest=ingest,
        sources=sources,
        sync_commands=sync_commands,
    )


def validate_token(token: SecretStr | str | None) -> str:
    """Return the bot token if it has the shape of one; raise :class:`UsageError` otherwise.

    The message never contains the token.
    """
    value = token.get_secret_value() if isinstance(token, SecretStr) else (token or "")
    value = value.strip().strip("'\"")
    if not value:
        raise UsageError(
            "No Discord token: set DISCORD_TOKEN (or NEWSDESK_DISCORD_TOKEN) in the environment or .env."
        )
    if value.lower().startswith("bot "):
        raise UsageError("The Discord token must be the bare token, without the 'Bot ' prefix.")
    if not _TOKEN_SHAPE.fullmatch(value):
        raise UsageError(
            "The Discord token is malformed (expected three dot-separated parts); "
            "copy it again from the Bot page of the Discord Developer Portal."
        )
    return value


def run_bot(
    settings: Settings,
    answerer: Answerer,
    *,
    ingest: IngestFn | None = None,
    sources: SourcesFn | None = None,
) -> None:
    """Validate the token, then run the bot until it is stopped.

    Raises:
        UsageError: The token is missing, malformed or rejected, or a privileged intent is not enabled.
    """
    token = validate_token(settings.discord_token)
    if not settings.allowed_guilds and not settings.allow_any_guild:
        log.warning("NEWSDESK_ALLOWED_GUILDS is empty: the bot will answer only direct messages (if allowed); "
                    "list your server ids, or set NEWSDESK_ALLOW_ANY_GUILD=true to share the archive with "
                    "every server the bot is added to")
    bot = build_bot(settings, answerer, ingest=ingest, sources=sources)
    # The model, the store and their libraries are long-lived; moving them out of the collector's
    # reach keeps full garbage collections (hundreds of ms with large libraries loaded) from stalling the loop.
    # (Answers run in worker threads; how many threads each embedding call may use is NEWSDESK_ONNX_THREADS.)
    gc.collect()
    gc.freeze()
    # Respect logging the caller configured; otherwise let discord.py set up a handler for everything.
    logging_kwargs: dict[str, Any] = (
        {"log_handler": None} if logging.getLogger().handlers else {"root_logger": True}
    )
    try:
        bot.run(token, **logging_kwargs)
    except discord.LoginFailure:
        raise UsageError(
            "Discord rejected the token; reset it on the Bot page of the Developer Portal and try again."
        ) from None
    except discord.PrivilegedIntentsRequired:
        raise UsageError(
            "Enable the Message Content intent for this bot (Developer Portal, Bot page, "
            "Privileged Gateway Intents) and try again."
        ) from None
    except (TimeoutError, aiohttp.ClientError, OSError) as error:
        raise NewsdeskError(network_message(error, settings.discord_proxy)) from None


def network_message(error: BaseException, proxy: str | None = None) -> str:
    """One line for a bot that cannot reach Discord (no network, DNS, a proxy that is down)."""
    via = f" through the proxy {proxy}" if proxy else ""
    return (f"cannot reach Discord{via} ({type(error).__name__}): check the network connection "
            "(and NEWSDESK_DISCORD_PROXY) and start the bot again")
