"""What the store knows of the files ingested: which are done, and which traces each produced.

Mixed into :class:`mast.store.store.Store` (the only code that talks to DuckDB); kept
apart so that the store module stays readable.  The file is the unit of re-ingest: a
changed file's new version *replaces* what its earlier version stored (see
:meth:`IngestedFiles.record_files`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

import duckdb

from mast.store.rows import Columns, attach, detach


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class Replaced:
    """What re-ingesting a changed file removed: its earlier traces it no longer holds."""

    traces: int = 0
    labels: int = 0  # annotations and attributions of those traces


class IngestedFiles:
    """The ``ingested_files`` / ``ingested_file_traces`` part of the store (a mixin of Store)."""

    _con: duckdb.DuckDBPyConnection

    def file_done(self, path: str, size: int, mtime_ns: int) -> bool:
        return bool(self.fetchall("SELECT 1 FROM ingested_files WHERE path = ? AND size = ? AND mtime_ns = ? LIMIT 1",
                                  [path, size, mtime_ns]))

    def ingested_files(self, paths: Sequence[str] | None = None) -> dict[str, tuple[int, int]]:
        """``{path: (size, mtime_ns)}`` of every file recorded as fully ingested (of ``paths`` only, if given)."""
        if paths is None:
            rows = self.fetchall("SELECT path, size, mtime_ns FROM ingested_files")
        else:
            rows = self.fetchall("SELECT path, size, mtime_ns FROM ingested_files "
                                 "WHERE list_contains(?::VARCHAR[], path)", [list(paths)])
        return {p: (sz, mt) for p, sz, mt in rows}

    def record_files(self, rows: Sequence[tuple[str, int, int, str, int]],
                     trace_ids: Sequence[Sequence[str]] | None = None, fresh: bool = False) -> list[Replaced]:
        """Record many ``(path, size, mtime_ns, format, traces)`` rows at once (see record_file).

        ``trace_ids`` (one list per row): the ids each file produced now.  A file recorded
        before with other traces is then *replaced*: its earlier traces that it no longer
        holds (and that no other file holds) are deleted with everything keyed by their id
        (steps, labels, attributions, derived rows).  Call inside the transaction that wrote
        the new traces.  Returns what each row replaced (all zero without ``trace_ids``).
        ``fresh``: the caller knows that none of the paths is recorded (it read
        :meth:`ingested_files` in this ingest), so there is no earlier version to look for
        (a small ingest's bookkeeping: 5 statements fewer).
        """
        if not rows:
            return []
        replaced = [Replaced()] * len(rows)
        if trace_ids is not None:
            replaced = self._replace_files([r[0] for r in rows], trace_ids, fresh)
        tb = Columns.from_rows((("path", "VARCHAR"), ("size", "BIGINT"), ("mtime_ns", "BIGINT"), ("fmt", "VARCHAR"),
                                ("traces", "INTEGER")), list(rows))
        try:
            attach(self._con, "_mast_files", tb)
            if not fresh:
                self._con.execute("DELETE FROM ingested_files WHERE path IN (SELECT path FROM _mast_files)")
            self._con.execute("INSERT INTO ingested_files SELECT path, size, mtime_ns, fmt, traces, ? FROM _mast_files",
                              [_now()])
        except duckdb.Error as e:
            raise self._map(e) from None
        finally:
            with contextlib.suppress(Exception):
                detach(self._con, "_mast_files", tb)
        return replaced

    def record_file(self, path: str, size: int, mtime_ns: int, fmt: str, traces: int,
                    trace_ids: Sequence[str] | None = None) -> Replaced:
        """Record one file as fully ingested; with ``trace_ids``, replace its earlier version."""
        return self.record_files([(path, size, mtime_ns, fmt, traces)],
                                 None if trace_ids is None else [trace_ids])[0]

    def file_traces(self, path: str) -> list[str]:
        """The ids of the traces ``path`` produced when it was last ingested (none if unknown)."""
        return [r[0] for r in self.fetchall(
            "SELECT trace_id FROM ingested_file_traces WHERE path = ? ORDER BY trace_id", [path])]

    def _replace_files(self, paths: Sequence[str], trace_ids: Sequence[Sequence[str]],
                       fresh: bool = False) -> list[Replaced]:
        # Set-based, a few statements per group of files (not per file): grouped ingest
        # commits hundreds of small files at once.
        pairs = [(p, t) for p, ids in zip(paths, trace_ids) for t in dict.fromkeys(ids)]
        tb = Columns.of({"path": ("VARCHAR", [p for p, _ in pairs]), "trace_id": ("VARCHAR", [t for _, t in pairs])})
        if fresh:  # no earlier version: the pairs are all there is to record
            try:
                attach(self._con, "_mast_ft", tb)
                self.execute("INSERT INTO ingested_file_traces SELECT path, trace_id FROM _mast_ft")
            finally:
                with contextlib.suppress(Exception):
                    detach(self._con, "_mast_ft", tb)
            return [Replaced()] * len(paths)
        group = Columns.of({"path": ("VARCHAR", list(dict.fromkeys(paths)))})
        try:
            attach(self._con, "_mast_ft", tb)
            attach(self._con, "_mast_fp", group)
            # Gone from its file, and held by no file of this group nor any other file.
            gone = self.fetchall("""
                SELECT path, trace_id FROM ingested_file_traces
                WHERE path IN (SELECT path FROM _mast_fp)
                  AND trace_id NOT IN (SELECT trace_id FROM _mast_ft)
                  AND trace_id NOT IN (SELECT trace_id FROM ingested_file_traces
                                       WHERE path NOT IN (SELECT path FROM _mast_fp))""")
            self.execute("DELETE FROM ingested_file_traces WHERE path IN (SELECT path FROM _mast_fp)")
            self.execute("INSERT INTO ingested_file_traces SELECT path, trace_id FROM _mast_ft")
        finally:
            for name, t in (("_mast_ft", tb), ("_mast_fp", group)):
                with contextlib.suppress(Exception):
                    detach(self._con, name, t)
        by_path: dict[str, list[str]] = {}
        seen: set[str] = set()
        for p, t in gone:
            if t not in seen:  # a trace two files of the group dropped counts once
                seen.add(t)
                by_path.setdefault(p, []).append(t)
        return [self._delete_traces(by_path.pop(p)) if p in by_path else Replaced() for p in paths]

    def _delete_traces(self, ids: list[str]) -> Replaced:
        """Delete traces with everything keyed by their id (:meth:`Store.delete_traces`); what went."""
        labels = self.fetchall(
            "SELECT (SELECT count(*) FROM annotations WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))) + "
            "(SELECT count(*) FROM attributions WHERE trace_id IN (SELECT unnest(?::VARCHAR[])))", [ids, ids])[0][0]
        self.delete_traces(ids)
        return Replaced(len(ids), int(labels))
