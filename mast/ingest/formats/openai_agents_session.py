"""OpenAI Agents SDK sessions: the SQLite database ``SQLiteSession`` keeps conversations in.

``SQLiteSession(session_id, "conversations.db")`` passed to ``Runner.run(..., session=…)``
stores every item of every turn, one row each::

    agent_sessions(session_id TEXT PRIMARY KEY, created_at, updated_at)
    agent_messages(id INTEGER PRIMARY KEY AUTOINCREMENT, session_id, message_data TEXT, created_at)

``message_data`` is the JSON of a Responses API input item (the user's message, a
``function_call``, its ``function_call_output``, the assistant's ``message``, ``reasoning``),
as ``to_input_list()`` has them.  One trace per session (a conversation: its turns in order),
its items read as :mod:`mast.ingest.openai_messages` reads an input list: tool calls and
their results, the SDK's ``transfer_to_…`` handoffs (the target authors the assistant items
after it), the task the first user message.  The rows' ``created_at`` (UTC, to the second)
give the trace's start and end.  The table names are the SDK's defaults; a database whose
tables were renamed is found by its columns (``session_id`` and ``message_data``).

A session names a conversation, not a run (like a LangGraph ``thread_id``): it is not a
run key, but it tells two sessions that read alike apart.  Format notes:
docs/formats/openai-agents-state.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from mast.errors import IngestError
from mast.ingest._util import iso_utc, sqlite_probe, sqlite_reading
from mast.ingest.openai_messages import conversation_steps
from mast.model import Trace

if TYPE_CHECKING:
    import sqlite3

_COLUMNS = ("id", "session_id", "message_data")


def _item_tables(con: sqlite3.Connection) -> list[str]:
    """Tables holding session items: the SDK's ``agent_messages``, or renamed ones with its columns."""
    out = []
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        cols = {r[1] for r in con.execute(f'PRAGMA table_info("{name}")')}
        if all(c in cols for c in _COLUMNS):
            out.append(name)
    return out


class OpenAIAgentsSessionImporter:
    name = "openai-agents-session"
    description = "OpenAI Agents SDK SQLiteSession database (agent_messages: one Responses API item per row)"
    example = 'SQLite format 3\\x00 … tables agent_sessions, agent_messages (session_id, message_data)'

    def detect(self, path: Path, head: bytes) -> bool:
        return bool(sqlite_probe(path, head, _item_tables))

    def read(self, path: Path) -> Iterator[Trace]:
        n = 0
        with sqlite_reading(path) as (con, _):
            tables = _item_tables(con)
            if not tables:
                raise IngestError(str(path), None, "no table of session items (columns id, session_id, message_data)")
            for table in tables:
                cols = {r[1] for r in con.execute(f'PRAGMA table_info("{table}")')}
                when = "created_at" if "created_at" in cols else "NULL"
                rows = con.execute(f'SELECT id, session_id, message_data, {when} FROM "{table}" '
                                   f"ORDER BY (SELECT min(id) FROM \"{table}\" m WHERE m.session_id = "
                                   f'"{table}".session_id), id').fetchall()
                start = 0
                while start < len(rows):
                    sid = rows[start][1]
                    end = start
                    while end < len(rows) and rows[end][1] == sid:
                        end += 1
                    yield self._session(path, n, table, rows[start:end])
                    n += 1
                    start = end
        if n == 0:
            raise IngestError(str(path), None, "no session items in the database")

    @staticmethod
    def _session(path: Path, index: int, table: str, rows: list[tuple]) -> Trace:
        items = []
        for rid, _, data, _ in rows:
            try:
                items.append(json.loads(data))
            except (TypeError, ValueError):
                raise IngestError(str(path), f"{table} row {rid}", "message_data is not JSON") from None
        steps, task = conversation_steps(path, items, lambda j: f"{table} row {rows[j][0]}")
        times = [t for t in (iso_utc(r[3]) for r in rows) if t]
        sid = rows[0][1]
        meta = {"session_id": sid, "table": table, "items": len(rows), "source_id": ["session", str(sid)]}
        return Trace(system=None, framework="openai-agents", source_format="openai-agents-session",
                     source_path=str(path), source_index=index, steps=steps, task=task,
                     started_at=min(times) if times else None, ended_at=max(times) if times else None,
                     metadata=meta)
