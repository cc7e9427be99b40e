r"""The one place where text meets the terminal: markup escaping and control-character neutralising.

Article text, titles, ids, file names, feed values, option values and error messages may hold rich markup
(``[/]``, ``[bold red]``) or terminal control sequences (``ESC [2J`` clears the screen, ``ESC ]0;`` sets the
window title, ``ESC ]8;;URL`` makes a hidden hyperlink). Two rules, enforced by :class:`SafeConsole` rather
than by each call site:

* A plain ``str`` printed is text, never markup. Styling is opted into with :func:`markup`, whose template
  is written in code and whose values are escaped.
* Every character that reaches the terminal outside rich's own style codes passes :func:`visible`: control
  characters other than newline and tab, lone surrogates (undecodable file names) and bidirectional
  overrides are shown as ``\x1b``-style escapes instead of being sent.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.markup import escape
from rich.segment import Segment
from rich.text import Text

# C0 controls except \t and \n, DEL, C1 controls, bidi embedding/override/isolate marks, lone surrogates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _show(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object) -> str:
    r"""``text`` with every unsafe character replaced by a visible escape (``ESC`` -> ``\x1b``).

    Newlines and tabs are kept; everything else below U+0020, DEL, the C1 range, bidirectional overrides
    and lone surrogates (from file names that are not valid UTF-8) are shown, not sent.
    """
    return _UNSAFE.sub(_show, str(text))


class Markup(str):
    """A string whose rich markup is trusted: built only by :func:`markup` from a template in code."""

    __slots__ = ()


def markup(template: str, /, *args: object, **values: object) -> Markup:
    """Fill a markup template written in code with untrusted values, each escaped.

    ``markup("[red]error:[/red] {}", message)``: the template's tags style the output; ``message`` is shown
    as typed, whatever brackets or escape sequences it holds.
    """
    safe_args = [escape(visible(value)) for value in args]
    safe_values = {name: escape(visible(value)) for name, value in values.items()}
    return Markup(template.format(*safe_args, **safe_values))


class SafeConsole(Console):
    """A rich Console that treats plain strings as text and never sends control characters.

    Strings that are not :class:`Markup` are rendered with markup off (also table cells and other
    renderables that hold strings); every rendered segment other than rich's own control segments passes
    :func:`visible`.
    """

    def render_str(self, text: str, *, markup: bool | None = None, **kwargs: Any) -> Text:  # type: ignore[override]
        """Render a string: markup only for :class:`Markup` strings; control characters made visible."""
        if isinstance(text, Markup):
            return super().render_str(text, markup=markup is not False, **kwargs)
        return super().render_str(visible(text), markup=False, **kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        """Render as rich does, then neutralise control characters in the text of every segment."""
        for segment in super().render(renderable, options):
            if segment.control or not _UNSAFE.search(segment.text):
                yield segment
            else:
                yield Segment(visible(segment.text), segment.style, segment.control)


# --- the command line's streams, JSON and progress bars (every command prints through these) ---------
#: Every line printed goes through these: plain strings are text, never markup or terminal codes.
out = SafeConsole(soft_wrap=True)
err = SafeConsole(stderr=True, soft_wrap=True)


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout (``--json``); dates and paths become strings."""
    sys.stdout.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")


@contextmanager
def progress_bar(enabled: bool, console: Console, *, item: bool = False) -> Iterator[Any]:
    """A transient progress bar on ``console`` (a rich ``Progress``), or None when not ``enabled``.

    Each task shows its description, a bar, done/total and the elapsed time; with ``item`` also its
    ``item`` field (the question being answered).
    """
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if item:
        columns.append(TextColumn("{task.fields[item]}"))
    with Progress(*columns, console=console, transient=True) as bar:
        yield bar
