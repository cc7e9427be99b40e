"""Pure functions that turn answers and reports into Discord messages within Discord's limits.

Nothing here talks to Discord: every function takes models or plain values and returns strings,
``discord.Embed`` objects or :class:`Reply` values, so tests can check the limits directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import quote

import discord
from discord.utils import escape_markdown, escape_mentions

from newsdesk.models import ABSTAIN_TEXT, Answer, Citation, IngestReport
from newsdesk.text import fold

# Discord's documented limits (https://discord.com/developers/docs/resources/message).
MESSAGE_LIMIT = 2000
EMBED_TITLE_LIMIT = 256
EMBED_DESCRIPTION_LIMIT = 4096
EMBED_FIELDS_LIMIT = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
EMBED_FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000  # per embed, and also summed over all embeds of one message
EMBEDS_PER_MESSAGE = 10
THREAD_NAME_LIMIT = 100

ELLIPSIS = "…"
SOURCES_COLOUR = discord.Colour.blurple()

#: A citation marker: ``[3]``, ``[1, 2]`` or ``[1-3]``. A message is never split inside one.
CITATION_MARKER = re.compile(r"\[\d+(?:\s*[,;\u2013-]\s*\d+)*\]")
_SENTENCE_END = re.compile(
    r"[.!?\u2026][\"'\u201d\u2019\u00bb)\]]*"  # end punctuation and closing quotes or brackets
    r"(?:\s*\[\d+(?:\s*[,;\u2013-]\s*\d+)*\])*"  # markers placed after the full stop stay with it
    r"(?=\s)"
)
_WHITESPACE_NOT_BEFORE_MARKER = re.compile(r"\s(?!\s*\[\d)")
_MAX_RELATED = 5
_MAX_URL = 500  # longer URLs are left out of a field rather than eating the quote's budget


@dataclass(frozen=True)
class Reply:
    """One Discord message to send: text, embeds, or both."""

    content: str | None = None
    embeds: list[discord.Embed] = field(default_factory=list)


# --- text -----------------------------------------------------------------------------------------


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters.

    Cuts prefer, in order: a paragraph break, a line break, the end of a sentence (keeping any
    citation markers that follow it), a space that is not followed by a marker, any space, and
    only then a hard cut. No cut ever falls inside a citation marker such as ``[12]``.

    Args:
        text: The text to split.
        limit: Maximum characters per chunk.

    Returns:
        Non-empty chunks, each at most ``limit`` characters, in order; ``[]`` for blank text.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    text = text.strip()
    chunks: list[str] = []
    while len(text) > limit:
        cut = _cut_point(text, limit)
        head = text[:cut].rstrip()
        if head:
            chunks.append(head)
        text = text[cut:].lstrip()
    if text:
        chunks.append(text)
    return chunks


def _cut_point(text: str, limit: int) -> int:
    """Index at which to end the next chunk (``0 < cut <= limit``)."""
    window = text[: limit + 1]  # one extra character tells whether the limit falls on a space
    spans = [m.span() for m in CITATION_MARKER.finditer(text, 0, min(len(text), limit + 64))]

    def inside_marker(cut: int) -> bool:
        return any(start < cut < end for start, end in spans)

    floor = max(1, limit // 2)  # a boundary earlier than this wastes too much of the message
    tiers = (
        [m.start() for m in re.finditer(r"\n[ \t]*\n", window)],
        [m.start() for m in re.finditer(r"\n", window)],
        [m.end() for m in _SENTENCE_END.finditer(window)],
        [m.start() for m in _WHITESPACE_NOT_BEFORE_MARKER.finditer(window)],
        [m.start() for m in re.finditer(r"\s", window)],
    )
    for candidates in tiers:
        for cut in reversed(candidates):
            if cut < floor:
                break
            if cut <= limit and not inside_marker(cut):
                return cut
    cut = limit
    for start, end in spans:
        if start < cut < end:
            cut = start
    # Do not separate a backslash from the character it escapes.
    trailing = len(text[:cut]) - len(text[:cut].rstrip("\\"))
    if trailing % 2 == 1 and cut > 1:
        cut -= 1
    return cut if cut > 0 else limit


def truncate(text: str, limit: int) -> str:
    """Shorten ``text`` to at most ``limit`` characters, ending with an ellipsis when cut.

    Prefers to cut at a space near the end, and never leaves a dangling escape backslash.
    """
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ELLIPSIS[:limit]
    head = text[: limit - len(ELLIPSIS)]
    space = head.rfind(" ")
    if space >= int(len(head) * 0.8):
        head = head[:space]
    head = head.rstrip()
    trailing = len(head) - len(head.rstrip("\\"))
    if trailing % 2 == 1:
        head = head[:-1]
    return head + ELLIPSIS


# Control characters, zero-width and bidirectional marks: invisible in Discord, used to disguise text.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_LINK_PUNCTUATION = re.compile(r"([\[\]()])")


def discord_text(text: str) -> str:
    """The one escape for Discord: everything from an article, a feed, a file name or a user goes through it.

    Markdown is escaped (``*``, ``_``, ``~``, ``|``, ``>``, backticks), brackets and parentheses too so no
    text can form a masked link ``[text](url)``, mentions (``@everyone``, ``<@id>``, ``<@&role>``) are
    broken with a zero-width space so they neither ping nor render as mentions, and control, zero-width
    and bidirectional characters are dropped.
    """
    text = _INVISIBLE.sub("", text)
    text = escape_mentions(escape_markdown(text))
    text = _LINK_PUNCTUATION.sub(r"\\\1", text)
    return text.replace("<@", "<\u200b@").replace("<#", "<\u200b#")


_escape = discord_text


def answer_text(answer: Answer) -> str:
    """The message body for ``answer``: its text with markers, or the abstention notice.

    An abstention reads "The articles don't say." (or, when the archive covers the story but not the detail,
    "The articles cover X but don't say Y") followed by up to five possibly related articles, listed without
    citation numbers. A short answer, when there is one, comes first in bold.
    """
    if answer.abstained:
        # "The articles cover X but don't say Y" when the story is there and the detail is not
        partial = answer.metadata.get("partial") and answer.text.startswith("The articles cover")
        lines = [_escape(fold(answer.text)) if partial else ABSTAIN_TEXT]
        related = answer.related[:_MAX_RELATED]
        if related:
            lines += ["", "Possibly related articles (not cited):"]
            for item in related:
                label = _escape(fold(item.title or item.article_id))
                outlet = _escape(fold(item.source))
                lines.append(f"\u2022 {label}" + (f" \u2014 {outlet}" if outlet else ""))
        return "\n".join(lines)
    text = answer.text.strip()
    if not text:
        return ABSTAIN_TEXT
    body = _escape_keeping_markers(text)
    if answer.short:  # the asked-for item first, in bold, then the quotes that support it
        return f"**{_escape(fold(answer.short))}**\n{body}"
    return body


def _escape_keeping_markers(text: str) -> str:
    """Apply :func:`discord_text` to everything but citation markers such as ``[1]``.

    Parentheses next to a marker are still escaped, so ``[1](url)`` cannot become a link.
    """
    parts: list[str] = []
    cursor = 0
    for match in CITATION_MARKER.finditer(text):
        parts += [discord_text(text[cursor:match.start()]), match.group()]
        cursor = match.end()
    parts.append(discord_text(text[cursor:]))
    return "".join(parts)


def thread_name(question: str) -> str:
    """A thread name (1 to 100 characters) taken from the question."""
    name = fold(question) or "Question"
    return truncate(name, THREAD_NAME_LIMIT)


# --- embeds ---------------------------------------------------------------------------------------


def _date_text(value: date | datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, (date, datetime)):
        return value.strftime("%Y-%m-%d")
    return str(value)[:10]


def _safe_url(url: str) -> str | None:
    """A URL usable in a masked link, or None for anything that is not a plain http(s) address.

    Every character outside the URL alphabet is percent-encoded, brackets and parentheses included, so
    the target cannot close the link early and open another (``a%29b](http://x.example``); percent
    signs already there are kept as they are, inert in Markdown.
    """
    url = url.strip()
    if not re.match(r"https?://[^\s<>]+$", url, re.IGNORECASE) or len(url) > _MAX_URL:
        return None
    return quote(url, safe=":/?#@!$&'*+,;=%-._~")


def citation_field(citation: Citation) -> tuple[str, str]:
    """The embed field for one citation: ``(name, value)`` within the field limits.

    The name holds the number and title; the value holds outlet and date, the quoted passage
    (truncated with an ellipsis if needed) and a link to the article.
    """
    title = _escape(fold(citation.title or citation.article_id))
    name = truncate(f"[{citation.number}] {title}", FIELD_NAME_LIMIT)

    meta = " \u00b7 ".join(p for p in (_escape(fold(citation.source)), _date_text(citation.published)) if p)
    head = truncate(meta, 200) + "\n" if meta else ""
    url = _safe_url(citation.url)
    tail = f"\n[Read the article]({url})" if url else ""
    quote_budget = FIELD_VALUE_LIMIT - len(head) - len(tail) - len("> ")
    quote = truncate(_escape(fold(citation.quote)), quote_budget) or ELLIPSIS
    value = f"{head}> {quote}{tail}"
    return name, value


def source_embeds(answer: Answer) -> list[discord.Embed]:
    """Embeds listing the answer's citations, spilling into further embeds as limits require.

    Each embed stays within 25 fields and 6,000 characters. An abstention or an answer without
    citations gets no embeds.
    """
    if answer.abstained or not answer.citations:
        return []
    embeds: list[discord.Embed] = []
    current: discord.Embed | None = None
    for citation in sorted(answer.citations, key=lambda c: c.number):
        name, value = citation_field(citation)
        if (
            current is None
            or len(current.fields) >= EMBED_FIELDS_LIMIT
            or len(current) + len(name) + len(value) > EMBED_TOTAL_LIMIT
        ):
            title = "Sources" if not embeds else "Sources (continued)"
            current = discord.Embed(title=title, colour=SOURCES_COLOUR)
            embeds.append(current)
        current.add_field(name=name, value=value, inline=False)
    return embeds


def group_embeds(embeds: Sequence[discord.Embed]) -> list[list[discord.Embed]]:
    """Group embeds into messages: at most 10 per message and 6,000 characters summed."""
    groups: list[list[discord.Embed]] = []
    current: list[discord.Embed] = []
    total = 0
    for embed in embeds:
        size = len(embed)
        if current and (len(current) >= EMBEDS_PER_MESSAGE or total + size > EMBED_TOTAL_LIMIT):
            groups.append(current)
            current, total = [], 0
        current.append(embed)
        total += size
    if current:
        groups.append(current)
    return groups


def render_answer(answer: Answer) -> list[Reply]:
    """Every message needed to show ``answer``: text chunks, then the source embeds.

    The first group of embeds rides on the last text message; further groups get messages of
    their own. Feedback buttons belong on the last reply.
    """
    replies = [Reply(content=chunk) for chunk in split_message(answer_text(answer))]
    groups = group_embeds(source_embeds(answer))
    if groups and replies:
        replies[-1] = Reply(content=replies[-1].content, embeds=groups.pop(0))
    replies += [Reply(embeds=group) for group in groups]
    return replies


def sources_embed(articles: Iterable[Mapping[str, object]]) -> discord.Embed:
    """One embed listing indexed articles, newest first, as many as fit; the footer gives the count.

    Args:
        articles: Dicts with ``article_id``, ``title``, ``source`` and ``published``.
    """
    items = sorted(articles, key=lambda a: _date_text(a.get("published")), reverse=True)  # type: ignore
    embed = discord.Embed(title="Indexed articles", colour=SOURCES_COLOUR)
    if not items:
        embed.description = "No articles have been ingested yet."
        return embed
    lines: list[str] = []
    used = 0
    budget = EMBED_DESCRIPTION_LIMIT - 40
    for article in items:
        title = _escape(fold(str(article.get("title") or article.get("article_id") or "untitled")))
        outlet = _escape(fold(str(article.get("source") or "")))
        details = ", ".join(p for p in (outlet, _date_text(article.get("published"))) if p)  # type: ignore
        line = truncate(f"\u2022 **{truncate(title, 150)}**" + (f" \u2014 {details}" if details else ""), 300)
        if used + len(line) + 1 > budget:
            break
        lines.append(line)
        used += len(line) + 1
    embed.description = "\n".join(lines)
    shown, total = len(lines), len(items)
    footer = f"{total} article{'s' if total != 1 else ''} indexed"
    if shown < total:
        footer = f"Showing the {shown} newest of {total} articles"
    embed.set_footer(text=footer)
    return embed


def about_embed(article_count: int | None, answerer_name: str = "") -> discord.Embed:
    """What the bot does and how many articles it has indexed."""
    embed = discord.Embed(title="About newsdesk", colour=SOURCES_COLOUR)
    indexed = "unknown" if article_count is None else f"{article_count}"
    embed.description = (
        "I answer questions about the news articles this team has ingested. Every claim carries a "
        "numbered citation, and each citation is a quote checked word for word against the stored "
        "article. When the articles don't say, I tell you so instead of guessing.\n\n"
        "Ask with `/ask`, or mention me in a channel: I answer in a thread, and you can keep asking "
        "follow-up questions there without mentioning me. `/sources` lists the articles."
    )
    embed.add_field(name="Articles indexed", value=indexed)
    if answerer_name:
        embed.add_field(name="Answerer", value=truncate(_escape(answerer_name), 100))
    return embed


# --- short replies --------------------------------------------------------------------------------


def ingest_summary(report: IngestReport, url: str) -> str:
    """A short summary of an ingest run, within one message."""
    counts = [
        f"{len(report.added)} added",
        f"{len(report.updated)} updated",
        f"{len(report.unchanged)} unchanged",
        f"{len(report.duplicates)} duplicate{'s' if len(report.duplicates) != 1 else ''}",
    ]
    if report.failed:
        counts.append(f"{len(report.failed)} failed")
    lines = [
        f"Ingested <{truncate(url, 300)}>: {', '.join(counts)}; "
        f"{report.chunks_embedded} chunks embedded in {report.seconds:.1f} s."
    ]
    for failure in report.failed[:5]:
        lines.append(truncate(f"\u2022 failed: {_escape(failure.source)}: {_escape(failure.error)}", 300))
    for warning in report.warnings[:5]:
        lines.append(truncate(f"\u2022 warning: {_escape(warning)}", 300))
    return truncate("\n".join(lines), MESSAGE_LIMIT)


def incident_message(incident: str) -> str:
    """What a user sees when something breaks: an incident id, never a traceback."""
    return (
        f"Something went wrong (incident {incident}). Please try again in a moment; if it keeps "
        "happening, give the incident id to an admin."
    )


BUSY_MESSAGE = "Sorry, I'm busy, try again in a moment."
EMPTY_QUESTION_MESSAGE = (
    "Ask me a question about the news articles, e.g. `@newsdesk What did the minister announce?`"
)
DMS_DISABLED_MESSAGE = "I only answer questions in server channels, not in direct messages."
NOT_HERE_MESSAGE = "I'm not enabled in this channel."
NOT_AVAILABLE_MESSAGE = "That command is not available on this deployment."
ADMIN_ONLY_MESSAGE = ("Only members with the Manage Server permission or an admin role configured by id "
                      "(NEWSDESK_ADMIN_ROLE_IDS) can use this command.")
NO_GUILDS_MESSAGE = ("I'm not enabled in any server yet: an operator must list this server's id in "
                     "NEWSDESK_ALLOWED_GUILDS.")


def too_long_message(length: int, limit: int) -> str:
    """Refusal for a question over ``max_question_chars``."""
    return f"That question is {length} characters long; the limit is {limit}. Please shorten it."


def cooldown_message(retry_after: float) -> str:
    """Refusal for a user still on cooldown."""
    seconds = max(1, round(retry_after + 0.49))
    return f"You're asking quickly: please wait {seconds} s before the next question."
