"""Plain lines on a stream that is not a terminal, as rich would print them, without rich.

Importing rich and making a console is ~0.03 s, a fifth of what a small ``mast ingest``
does besides its imports, and all it prints there (the summary, notes, one line per bad
file) is plain text that rich only wraps.  :class:`mast.cli._render._Stream` writes such a
line itself when rich would add nothing else, and leaves everything else to rich:

- :func:`plain_width`: whether rich would write plain text to the stream (not a terminal by
  rich's rules: ``TTY_COMPATIBLE``, then ``FORCE_COLOR``, then ``isatty``; not a notebook,
  not Windows) and at which width (``COLUMNS``, else the terminal size of stdin, stdout or
  stderr, else 80), or None;
- :func:`plain_text`: whether rich would print the text as it is, but for wrapping: every
  character one cell wide (printable ASCII and Latin-1 to U+02FF), no line break or tab,
  nothing that could be an emoji code (``:name:``);
- :func:`render`: rich's word wrap (``overflow="fold"``): words with their trailing space,
  a word too long for any line cut into pieces, whitespace past the width dropped.

``tests/cli/test_plain_output.py`` holds all three to rich itself.
"""

from __future__ import annotations

import builtins
import os
import re
import sys

from mast.settings import terminal_env

#: ``_Stream._plain`` before a command's first print: not decided yet.
UNSET = object()
#: The ``Console.print`` keywords the plain path takes (``markup`` and ``highlight`` must be False).
KEYWORDS = frozenset({"style", "markup", "highlight", "soft_wrap"})

# One cell wide in rich's own measure (and in a terminal's): printable ASCII, Latin-1 (but
# the soft hyphen, which rich counts as none) and the Latin extensions up to U+02FF.
_NARROW = re.compile("[\x20-\x7e\xa0-\xac\xae-\u02ff]*")
_EMOJI_CODE = re.compile(r":\S*?:")  # rich replaces what looks like ":name:" even without markup
_WORD = re.compile(r"\s*\S+\s*")
_TRAILING = re.compile(r"\s+$")


def plain_width(stderr: bool) -> int | None:
    """The width rich would wrap plain text at on stderr (or stdout), if it would write it
    plain there; None when rich might do more (a terminal, a notebook, Windows, a width of 0)."""
    stream = sys.stderr if stderr else sys.stdout
    if stream is None or sys.platform == "win32" or hasattr(builtins, "get_ipython"):
        return None
    if getattr(sys.stdin, "__module__", "").startswith("idlelib"):
        return None
    env = terminal_env()
    tty = env.get("TTY_COMPATIBLE", "")
    if tty == "1":
        return None
    if tty != "0":
        force = env.get("FORCE_COLOR")
        if force is not None:
            if force != "":
                return None
        else:
            try:
                if stream.isatty():
                    return None
            except (AttributeError, ValueError):  # no isatty, or a closed stream: not a terminal
                pass
    columns = env.get("COLUMNS")
    if columns is not None and columns.isdigit():
        return int(columns) or None
    width = 0
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):
            continue
        break
    return width or 80


def plain_text(text: str) -> bool:
    """Whether rich prints ``text`` (no markup, no highlighting) as it is, but for wrapping."""
    return _NARROW.fullmatch(text) is not None and _EMOJI_CODE.search(text) is None


def render(text: str, width: int, soft_wrap: bool = False) -> str:
    """``text`` (a :func:`plain_text`) as rich prints it at ``width``, with its newline."""
    if soft_wrap:
        return text + "\n"
    return "\n".join(_wrapped(text, width)) + "\n"


def _wrapped(text: str, width: int) -> list[str]:
    cuts: list[int] = []
    used = 0  # cells taken on the current line
    for m in _WORD.finditer(text):
        start, word = m.start(), m.group()
        need = len(word.rstrip())
        if need <= width - used:
            used += len(word)
        elif need > width:  # longer than a line: cut into pieces, the last one continues
            pieces = [word[i:i + width] for i in range(0, len(word), width)]
            for k, piece in enumerate(pieces):
                if start:
                    cuts.append(start)
                if k == len(pieces) - 1:
                    used = len(piece)
                else:
                    start += len(piece)
        elif used and start:
            cuts.append(start)
            used = len(word)
    lines = []
    for a, b in zip([0, *cuts], [*cuts, len(text)]):
        line = text[a:b]
        if len(line) > width:  # whitespace past the width goes; then anything else past it
            ws = _TRAILING.search(line)
            if ws:
                line = line[:len(line) - min(len(ws.group()), len(line) - width)]
            line = line[:width]
        lines.append(line)
    return lines
