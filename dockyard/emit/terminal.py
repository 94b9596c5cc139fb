"""Text from files on the terminal (Rich markup): the one function every user-supplied string passes through.

A terminal interprets escape sequences (clear the screen, set the window title), bidi overrides reorder what is
shown, zero-width characters hide text, and Rich interprets `[markup]` (a stray `[/]` is an exception). safe()
shows each such character as a visible escape (`\\x1b`, `\\u202e`) and escapes the markup, so what is printed is
exactly what the file holds, readable and inert. Printable text, including non-ASCII letters, passes unchanged.
"""

from __future__ import annotations

import unicodedata

from rich.markup import escape

# Unicode categories that are not shown as themselves: controls, format (bidi, zero-width), surrogates, private use,
# unassigned, line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def visible(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # the common case: nothing to escape (isprintable is False for every category above)
        return text
    # Line breaks and tabs lay text out (a paragraph, a log line): they stay; everything else hidden is shown.
    return "".join(c if c in "\n\t" or unicodedata.category(c) not in _HIDDEN else _escaped(c) for c in text)


def _escaped(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def safe(value: object) -> str:
    """value for console.print(): hidden characters made visible, Rich markup escaped."""
    return escape(visible(value))
