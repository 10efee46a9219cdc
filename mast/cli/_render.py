"""Shared rendering: stderr console, error panels, tables and JSON on stdout."""

from __future__ import annotations

import json
import re
import sys
from datetime import date, datetime
from typing import Any, Iterable

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mast.settings import Settings, store_to_read

err = Console(stderr=True)
out = Console()

# What a terminal would act on rather than show: C0 and C1 controls (ESC starts a command:
# "\x1b[2J" clears the screen; "\x9b" is the one-byte CSI), DEL, the bidirectional and
# zero-width format characters (text that reads differently from what it is), and lone
# surrogates (an undecodable byte in a file name, which would also fail to encode).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _shown(m: re.Match) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def safe(text: object, keep: str = "") -> str:
    """``text`` for a terminal: every control or format character shown as an escape
    (``\\x1b``, ``\\n``, ``\\u202e``), except those in ``keep``.  Trace text, identifiers
    and file names go through this wherever they are printed; ``--json`` does not (JSON
    escapes for itself, and must stay exact)."""
    s = "" if text is None else str(text)
    if not _UNSAFE.search(s):
        return s
    if keep:
        return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _shown(m), s)
    return _UNSAFE.sub(_shown, s)


def print_error(e: Exception) -> None:
    hint = getattr(e, "hint", None)
    # Plain Text, not markup: messages quote file contents and paths that may hold "[".
    # fold: a long path wraps instead of being cut to "...".
    # safe: a file name may hold a newline (a forged line) or an escape sequence.
    body = Text(safe(e), overflow="fold")
    if hint:
        body.append("\n" + safe(hint, keep="\n"), style="dim")
    err.print(Panel(body, title="error", title_align="left", border_style="red", expand=False),
              highlight=False)


def _default(o: Any):
    if isinstance(o, (datetime, date)):
        return o.isoformat()
    return str(o)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=_default) + "\n")


def table(rows: Iterable[dict], columns: list[str], title: str | None = None,
          justify_right: Iterable[str] = ()) -> Table:
    t = Table(title=title, show_lines=False)
    right = set(justify_right)
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left", overflow="fold")
    for r in rows:
        # Text, not str: cells hold trace content, and "[chatting]" or "[/b]" in a log must
        # print as written rather than be read as rich markup; safe: nor act on the terminal.
        t.add_row(*[Text(safe(r.get(c))) for c in columns])
    return t


def read_db(settings: Settings) -> str:
    """The store path a read-only command opens (see :func:`mast.settings.store_to_read`);
    a fallback is said on stderr, so stdout stays data."""
    path, note = store_to_read(settings)
    if note:
        err.print(Text(note, style="dim"), highlight=False)
    return path
