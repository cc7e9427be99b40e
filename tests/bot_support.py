"""Test helpers for the Discord bot: answerer doubles and a dpytest harness that fills dpytest's gaps.

dpytest 0.7.0 drives the real bot through discord.py's own state and HTTP layers, but it does not
implement threads, capture ``allowed_mentions``, or know about interactions at all. This module adds:

* :class:`BotHttp`: dpytest's ``FakeHttp`` plus ``start_thread_with_message`` (threads appear in the
  guild cache as on Discord) and a record of every message payload sent (``http.sent``).
* :class:`InteractionAdapter`: stands in for discord.py's webhook adapter, which interactions use to
  respond; it records responses and followups (``adapter.sent``).
* :class:`Harness`: builds the real bot with :func:`bot.app.build_bot`, configures dpytest, and
  dispatches real gateway payloads for messages, slash commands, button clicks and modal submits,
  so the bot's own tree, views and dynamic items route them.

Filling those gaps needs discord.py's connection state (``bot._connection``: the state dpytest
configures, and ``parse_*`` to dispatch payloads): that is confined to this module, so a discord.py
or dpytest upgrade that moves it breaks here only. Test modules use the harness, never the internals.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import discord
import discord.ext.test as dpytest
from discord.ext.test import backend, factories
from discord.webhook.async_ import async_context

from bot.app import NewsBot, build_bot
from newsdesk.models import Answer, AnswerSentence, Citation, RelatedArticle
from newsdesk.settings import Settings
from retrieval.base import SearchFilters, Turn

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"
SPU_QUOTE = "The capacity of the Special Protection Unit is being enhanced"
MINISTRIES_QUOTE = "The inside and planning ministries didn\u2019t reply"


# --- answerers ------------------------------------------------------------------------------------


@dataclass
class Call:
    """One call an answerer received."""

    question: str
    history: list[Turn]
    thread: str


def _citation(number: int, article_id: str, quote: str, **meta: Any) -> Citation:
    text = (SAMPLE_DIR / f"{article_id}.txt").read_text(encoding="utf-8")
    start = text.index(quote)  # verbatim, like the real answerer's checked quotes
    return Citation(number=number, article_id=article_id, quote=quote, char_start=start,
                    char_end=start + len(quote), **meta)


class StubAnswerer:
    """Stands in for ``retrieval.answer`` until its fixture exists: same protocol, realistic answers.

    Sleeps ``delay`` seconds (blocking, like the real model) so the worker-thread path is exercised,
    and records every call. Off-corpus questions (mentioning Australia or the weather) are abstained on.
    """

    name = "stub"

    def __init__(self, delay: float = 0.05):
        self.delay = delay
        self.calls: list[Call] = []

    def answer(
        self,
        question: str,
        *,
        history: list[Turn] | None = None,
        filters: SearchFilters | None = None,
        k: int | None = None,
    ) -> Answer:
        self.calls.append(Call(question, list(history or []), threading.current_thread().name))
        time.sleep(self.delay)
        if any(word in question.lower() for word in ("australia", "weather")):
            return Answer(
                question=question,
                text="",
                abstained=True,
                related=[RelatedArticle(article_id="000_70bec7e4b0fc20fc",
                                        title="Punjab home secretary meets Chinese consul general")],
                answerer=self.name,
            )
        spu = _citation(1, "000_70bec7e4b0fc20fc", SPU_QUOTE,
                        title="Punjab home secretary meets Chinese consul general", source="Dawn",
                        published=date(2024, 11, 14), url="https://example.com/punjab-security")
        ministries = _citation(2, "004_ad935d4100d70209", MINISTRIES_QUOTE,
                               title="China pushes Pakistan to let its own security staff protect citizens",
                               source="Reuters", published=date(2024, 11, 5))
        sentences = [
            AnswerSentence(text="The capacity of the Special Protection Unit is being enhanced [1].",
                           citations=[1]),
            AnswerSentence(text="The interior and planning ministries did not reply [2].", citations=[2]),
        ]
        return Answer(
            question=question,
            text=" ".join(s.text for s in sentences),
            sentences=sentences,
            citations=[spu, ministries],
            answerer=self.name,
            timings={"total": self.delay * 1000},
        )


class RecordingAnswerer:
    """Wraps any answerer (the stub or the real one) and records the calls it receives."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.name = getattr(inner, "name", "recording")
        self.calls: list[Call] = []
        self.answers: list[Answer] = []

    def answer(self, question: str, *, history: list[Turn] | None = None,
               filters: SearchFilters | None = None, k: int | None = None) -> Answer:
        self.calls.append(Call(question, list(history or []), threading.current_thread().name))
        answer = self.inner.answer(question, history=history, filters=filters, k=k)
        self.answers.append(answer)
        return answer


class FailingAnswerer:
    """An answerer that always raises: for the incident-id path."""

    name = "failing"

    def answer(self, question: str, **_: Any) -> Answer:
        raise RuntimeError("index exploded: secret internal detail")


# --- dpytest extensions ---------------------------------------------------------------------------


@dataclass
class Sent:
    """One message the bot sent, as the JSON payload Discord would have received."""

    channel_id: int | None
    payload: dict[str, Any]
    kind: str = "message"  # message | response | followup | modal | defer
    ephemeral: bool = False

    @property
    def content(self) -> str:
        return self.payload.get("content") or ""

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.payload.get("embeds") or []

    @property
    def allowed_mentions(self) -> dict[str, Any] | None:
        return self.payload.get("allowed_mentions")

    @property
    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for row in self.payload.get("components") or []
                for c in row.get("components", []) if "custom_id" in c]


class BotHttp(backend.FakeHttp):
    """dpytest's FakeHttp, plus threads and a record of sent payloads."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sent: list[Sent] = []
        self.fail_threads = False

    async def send_message(self, channel_id: int, *, params: Any) -> dict[str, Any]:
        # dpytest's FakeHttp reads its caller's local variable ``channel``; keep one here for it.
        channel = self.state.get_channel(int(channel_id))  # noqa: F841
        self.sent.append(Sent(int(channel_id), dict(params.payload or {})))
        return await super().send_message(channel_id, params=params)

    async def start_thread_with_message(self, channel_id: int, message_id: int, *, name: str,
                                        auto_archive_duration: int, rate_limit_per_user: int | None = None,
                                        reason: str | None = None) -> dict[str, Any]:
        if self.fail_threads:
            raise discord.Forbidden(backend.FakeRequest(403, "Forbidden"), "Missing Permissions")
        parent = self.state.get_channel(int(channel_id))
        now = discord.utils.utcnow().isoformat()
        data = {
            "id": str(message_id),  # as on Discord, a thread started from a message shares its id
            "guild_id": str(parent.guild.id),
            "parent_id": str(parent.id),
            "owner_id": str(self.state.user.id),
            "name": name,
            "type": discord.ChannelType.public_thread.value,
            "last_message_id": None,
            "rate_limit_per_user": rate_limit_per_user or 0,
            "message_count": 0,
            "member_count": 1,
            "thread_metadata": {"archived": False, "auto_archive_duration": auto_archive_duration,
                                "archive_timestamp": now, "locked": False, "create_timestamp": now},
            "newly_created": True,
        }
        self.state.parse_thread_create(data)
        return data


class InteractionAdapter:
    """Replaces discord.py's webhook adapter for interaction responses and followups."""

    def __init__(self, state: Any):
        self.state = state
        self.sent: list[Sent] = []

    def _message(self, channel_id: int | None, payload: dict[str, Any]) -> dict[str, Any]:
        channel = self.state.get_channel(channel_id) if channel_id else None
        embeds = [discord.Embed.from_dict(e) for e in payload.get("embeds") or []]
        data = factories.make_message_dict(channel, self.state.user, content=payload.get("content"),
                                           embeds=embeds)
        data["components"] = payload.get("components") or []
        data["flags"] = payload.get("flags", 0)
        return data

    async def create_interaction_response(self, interaction_id: int, token: str, *, session: Any,
                                          proxy: Any = None, proxy_auth: Any = None,
                                          params: Any) -> dict[str, Any]:
        payload = dict(params.payload or {})
        inner = payload.get("data") or {}
        kind = {5: "defer", 9: "modal"}.get(payload.get("type"), "response")
        channel_id = _CHANNEL_OF.get(token)
        ephemeral = bool(inner.get("flags", 0) & 64)
        self.sent.append(Sent(channel_id, inner, kind, ephemeral=ephemeral))
        result: dict[str, Any] = {"interaction": {"id": str(interaction_id), "type": 2,
                                                  "response_message_loading": kind == "defer",
                                                  "response_message_ephemeral": ephemeral}}
        if kind == "response":
            result["resource"] = {"type": payload["type"], "message": self._message(channel_id, inner)}
        return result

    async def execute_webhook(self, webhook_id: int, token: str, *, session: Any, proxy: Any = None,
                              proxy_auth: Any = None, payload: dict[str, Any] | None = None,
                              multipart: Any = None, files: Any = None, thread_id: int | None = None,
                              wait: bool = False, with_components: bool = False) -> dict[str, Any]:
        payload = dict(payload or {})
        channel_id = _CHANNEL_OF.get(token)
        self.sent.append(Sent(channel_id, payload, "followup", ephemeral=bool(payload.get("flags", 0) & 64)))
        return self._message(channel_id, payload)

    async def edit_original_interaction_response(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        payload = dict(kwargs.get("payload") or {})
        channel_id = _CHANNEL_OF.get(args[1] if len(args) > 1 else "")
        self.sent.append(Sent(channel_id, payload, "edit"))
        return self._message(channel_id, payload)


def _is_timer(task: asyncio.Task[Any]) -> bool:
    """A view's or modal's timeout timer: it runs for minutes and is not the bot's work."""
    return "timeout_task_impl" in getattr(task.get_coro(), "__qualname__", "")


_CHANNEL_OF: dict[str, int] = {}  # interaction token -> channel id, for the adapter's records


# --- the harness ----------------------------------------------------------------------------------


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test bot: a private data dir and no cooldown unless asked for."""
    # allow_any_guild: the harness guild's id is made by dpytest; tests of the guild rule set it explicitly
    values: dict[str, Any] = {"data_dir": tmp_path / "data", "cooldown_seconds": 0.0, "allow_any_guild": True}
    values.update(overrides)
    return Settings(**values)


@dataclass
class Harness:
    """A real :class:`NewsBot` wired to dpytest; see the module docstring."""

    bot: NewsBot
    http: BotHttp
    adapter: InteractionAdapter
    guild: discord.Guild
    channels: list[discord.TextChannel]
    members: list[discord.Member]
    _tasks_before: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def channel(self) -> discord.TextChannel:
        return self.channels[0]

    @property
    def state(self) -> Any:
        return self.bot._connection

    @property
    def sent(self) -> list[Sent]:
        """Everything the bot sent: channel messages and interaction responses, in order of kind."""
        return [*self.http.sent, *self.adapter.sent]

    def sent_to(self, channel_id: int) -> list[Sent]:
        return [s for s in self.http.sent if s.channel_id == channel_id]

    def threads(self) -> list[discord.Thread]:
        return list(self.guild.threads)

    # --- messages ---------------------------------------------------------------------------------

    def post(self, content: str, *, channel: Any = None, member: Any = None) -> discord.Message:
        """Post a message without waiting for the bot (for many questions at once)."""
        return backend.make_message(content, member or self.members[0], channel or self.channel)

    async def say(self, content: str, *, channel: Any = None, member: Any = None) -> discord.Message:
        """Post a message and wait until the bot has finished handling it."""
        message = self.post(content, channel=channel, member=member)
        await self.settle()
        return message

    async def mention(self, question: str, **kwargs: Any) -> discord.Message:
        return await self.say(f"{self.bot.user.mention} {question}", **kwargs)

    def exclude(self, task: asyncio.Task[Any]) -> None:
        """Let :meth:`settle` ignore a long-running task the test itself started."""
        self._tasks_before.add(task)

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait for every event handler and task the bot started (dpytest waits only for events)."""
        deadline = time.monotonic() + timeout
        current = asyncio.current_task()
        while True:
            await dpytest.run_all_events()
            pending = [t for t in asyncio.all_tasks() - self._tasks_before
                       if t is not current and not t.done() and not _is_timer(t)]
            if not pending:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"bot tasks still running: {pending}")
            await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)

    # --- interactions -----------------------------------------------------------------------------

    def _interaction(self, kind: int, data: dict[str, Any], *, member: discord.Member | None,
                     channel: Any, message: dict[str, Any] | None = None) -> dict[str, Any]:
        member = member or self.members[0]
        channel = channel or self.channel
        token = f"token-{factories.make_id()}"
        _CHANNEL_OF[token] = channel.id
        payload: dict[str, Any] = {
            "id": str(factories.make_id()),
            "application_id": str(self.bot.user.id),
            "type": kind,
            "token": token,
            "version": 1,
            "guild_id": str(self.guild.id),
            "channel": {"id": str(channel.id), "type": channel.type.value},
            "channel_id": str(channel.id),
            "member": {
                "user": factories.dict_from_user(member._user),
                "roles": [str(r.id) for r in member.roles if not r.is_default()],
                "joined_at": None,
                "flags": 0,
                "permissions": "0",
            },
            "data": data,
            "locale": "en-US",
            "attachment_size_limit": 8 * 1024 * 1024,
            "app_permissions": "0",
        }
        if message is not None:
            payload["message"] = message
        return payload

    async def _dispatch(self, payload: dict[str, Any]) -> None:
        reset = async_context.set(self.adapter)  # tasks created below copy this context
        try:
            self.state.parse_interaction_create(payload)
        finally:
            async_context.reset(reset)
        await self.settle()

    async def slash(self, name: str, *, member: discord.Member | None = None, channel: Any = None,
                    **options: Any) -> None:
        """Invoke a slash command as Discord would (an INTERACTION_CREATE through the bot's tree)."""
        data = {"id": str(factories.make_id()), "name": name, "type": 1,
                "options": [{"name": k, "type": 3, "value": v} for k, v in options.items()]}
        await self._dispatch(self._interaction(2, data, member=member, channel=channel))

    async def click(self, sent: Sent, custom_id: str, *, member: discord.Member | None = None) -> None:
        """Click a button on a message the bot sent."""
        channel = self.state.get_channel(sent.channel_id) or self.channel
        message = factories.make_message_dict(channel, self.state.user, content=sent.content)
        message["components"] = sent.payload.get("components") or []
        data = {"custom_id": custom_id, "component_type": 2}
        await self._dispatch(self._interaction(3, data, member=member, channel=channel, message=message))

    async def submit_modal(self, custom_id: str, values: dict[str, str], *,
                           member: discord.Member | None = None, channel: Any = None) -> None:
        """Submit a modal the bot opened, with ``values`` keyed by text-input custom_id."""
        rows = [{"type": 1, "components": [{"type": 4, "custom_id": key, "value": value}]}
                for key, value in values.items()]
        data = {"custom_id": custom_id, "components": rows}
        await self._dispatch(self._interaction(5, data, member=member, channel=channel))

    async def close(self) -> None:
        await self.settle()
        await dpytest.empty_queue()
        self.bot._executor.shutdown(wait=True)


async def start_harness(settings: Settings, answerer: Any, *, members: int = 3, channels: int = 2,
                        **bot_kwargs: Any) -> Harness:
    """Build the real bot, connect it to dpytest's fake Discord, and run its setup hook."""
    bot = build_bot(settings, answerer, sync_commands=False, **bot_kwargs)
    await bot.__aenter__()  # `async with bot:` without the block: binds the bot to the running loop
    # dpytest finds mentioned members in the member cache, which needs the members intent; the real
    # bot does not need it, so enable it only here.
    bot._connection._intents.members = True
    bot._connection.member_cache_flags = discord.MemberCacheFlags.from_intents(bot._connection._intents)
    allowed_mentions = bot.allowed_mentions
    original = backend.FakeHttp
    backend.FakeHttp = BotHttp  # dpytest builds its HTTP client from this name
    try:
        dpytest.configure(bot, guilds=1, text_channels=channels, voice_channels=0, members=members)
    finally:
        backend.FakeHttp = original
    state = bot._connection
    state._command_tree = bot.tree  # dpytest replaced the state the tree registered with
    state.loop = asyncio.get_running_loop()  # and the loop login() would have set on it
    state.allowed_mentions = allowed_mentions  # and the bot-wide mention default
    await bot.setup_hook()
    config = dpytest.get_config()
    harness = Harness(bot=bot, http=bot.http, adapter=InteractionAdapter(state),  # type: ignore[arg-type]
                      guild=config.guilds[0], channels=[c for c in config.channels
                                                        if isinstance(c, discord.TextChannel)],
                      members=list(config.members))
    harness._tasks_before = set(asyncio.all_tasks())
    return harness


#: Questions over the sample corpus for load checks (tests/test_bot_load.py, benchmarks/bot_load.py).
QUESTIONS = [
    "What is happening to the capacity of the Special Protection Unit?",
    "Which Pakistani ministries did not reply to Reuters' requests for comment?",
    "What did the Punjab home department say the meeting focused on?",
    "Who did the home secretary of Punjab meet?",
    "What killed two Chinese engineers in Karachi?",
]


class ConcurrencyProbe:
    """Wraps an answerer and records how many calls overlapped."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.name = getattr(inner, "name", "probe")
        self.active = 0
        self.max_active = 0
        self.calls = 0
        self._lock = threading.Lock()

    def answer(self, question: str, **kwargs: Any) -> Answer:
        with self._lock:
            self.active += 1
            self.calls += 1
            self.max_active = max(self.max_active, self.active)
        try:
            return self.inner.answer(question, **kwargs)
        finally:
            with self._lock:
                self.active -= 1
