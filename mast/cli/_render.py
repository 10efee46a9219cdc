"""Shared rendering: stderr console, error panels, tables and JSON on stdout."""

from __future__ import annotations

import json
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


def print_error(e: Exception) -> None:
    hint = getattr(e, "hint", None)
    # Plain Text, not markup: messages quote file contents and paths that may hold "[".
    # fold: a long path wraps instead of being cut to "...".
    body = Text(str(e), overflow="fold")
    if hint:
        body.append("\n" + hint, style="dim")
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
        # print as written rather than be read as rich markup.
        t.add_row(*[Text("" if r.get(c) is None else str(r.get(c))) for c in columns])
    return t


def read_db(settings: Settings) -> str:
    """The store path a read-only command opens (see :func:`mast.settings.store_to_read`);
    a fallback is said on stderr, so stdout stays data."""
    path, note = store_to_read(settings)
    if note:
        err.print(Text(note, style="dim"), highlight=False)
    return path
