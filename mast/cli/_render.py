"""Shared rendering: stderr console, error panels, tables and JSON on stdout.

``err`` and ``out`` stand for the rich consoles of stderr and stdout.  Each is made when a
command first prints and made again for the next command run in the same process
(:func:`new_consoles`, called by the ``mast`` group): rich fixes a console's width when
``COLUMNS`` is set at its creation, so a console made at import would keep the width of
whatever environment imported this module first.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Iterable

from mast.cli import _plain
from mast.settings import Settings, store_to_read

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


class _Stream:
    """The rich console of one stream, made on first use (attributes pass through to it).

    Plain text for a stream that is not a terminal (a log, a pipe, a test) is written
    here, as rich would write it, without importing rich (a fifth of a small ingest's own
    work): see :meth:`print` and :mod:`mast.cli._plain`."""

    def __init__(self, stderr: bool):
        object.__setattr__(self, "_stderr", stderr)
        object.__setattr__(self, "_console", None)
        object.__setattr__(self, "_plain", _plain.UNSET)

    @property
    def console(self) -> "Console":
        """The console itself, for what needs the real object (``Progress(console=...)``)."""
        if self._console is None:
            # rich only when something prints: `mast --help` and `--version` never do.
            from rich.console import Console
            object.__setattr__(self, "_console", Console(stderr=self._stderr))
        return self._console

    def reset(self) -> None:
        object.__setattr__(self, "_console", None)
        object.__setattr__(self, "_plain", _plain.UNSET)

    def _width(self) -> int | None:
        """The width rich would wrap this stream's text at, if it would write it plain; else None.
        Read once per command, as rich reads the environment once per console."""
        if self._plain is _plain.UNSET:
            # stderr only: what goes to stdout is data, and rich adds a hint to an encoding error there
            plain = _plain.plain_width(True) if self._stderr and self._console is None else None
            object.__setattr__(self, "_plain", plain)
        return self._plain

    @property
    def is_terminal(self) -> bool:
        if self._console is None and self._width() is not None:
            return False
        return self.console.is_terminal

    def print(self, *objects: Any, **kw: Any) -> None:
        """``Console.print``; one string with ``markup=False, highlight=False`` (and at most
        ``style`` and ``soft_wrap``) goes out plain when rich would print it plain."""
        if (self._console is None and len(objects) == 1 and type(objects[0]) is str
                and kw.get("markup") is False and kw.get("highlight") is False and kw.keys() <= _plain.KEYWORDS):
            width = self._width()
            if width is not None and _plain.plain_text(objects[0]):
                sys.stderr.write(_plain.render(objects[0], width, bool(kw.get("soft_wrap"))))
                sys.stderr.flush()  # as rich does after each print
                return
        self.console.print(*objects, **kw)

    def __getattr__(self, name: str):
        return getattr(self.console, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self.console, name, value)


err = _Stream(stderr=True)
out = _Stream(stderr=False)


def new_consoles() -> None:
    """Let the next print make fresh consoles, which read ``COLUMNS`` and the terminal again."""
    err.reset()
    out.reset()

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
    from rich.panel import Panel  # rich only when printing: see _Stream
    from rich.text import Text

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
          justify_right: Iterable[str] = ()) -> "Table":
    from rich.table import Table  # rich only when printing: see _Stream
    from rich.text import Text

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
        from rich.text import Text  # rich only when printing: see _Stream

        err.print(Text(note, style="dim"), highlight=False)
    return path
