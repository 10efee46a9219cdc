"""One trace per run: the artefacts of a run, which one its trace was built from, and why.

Mixed into :class:`mast.store.store.Store`.  Ingest puts a run key on each trace
(:mod:`mast.ingest.identity`: metadata ``run_key``, ``run_rank``, ``run_fingerprint``);
:meth:`RunSources.record_sources`, called in the transaction that stored a group of files,
keeps one stored trace per key, the one from the highest-ranked artefact, and records
every artefact in ``run_sources`` (the chosen one and its alternates).  A trace that loses
to a richer artefact of its run is deleted with its labels and derived rows, as a changed
file's old trace is (:meth:`Store.delete_traces`), and counted.

The choice depends only on the artefacts (rank, then steps, then format and path), so
the result is the same whatever order the files arrive in and across separate ingests.
An alternate whose trace was dropped no longer competes (its trace is not kept): if the
chosen artefact later changes into a poorer one, re-ingest the alternate (touch it) to
rebuild from it.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import duckdb

from mast.store.rows import Columns, attach, detach


@dataclass(slots=True)
class Sources:
    """What recording one file's artefacts did to the runs they belong to."""

    #: Traces of this file whose run is stored as another artefact's trace (its alternates).
    alternates: int = 0
    #: Traces of other files (and their labels) that this file's richer artefact replaced.
    superseded: int = 0
    superseded_labels: int = 0
    #: Files whose trace looks like the same run (same fingerprint) with no id tying them
    #: (the first :data:`SAME_RUN_LIST`).
    same_run_as: list[str] = field(default_factory=list)


#: Files named per file as looking like the same run (the first ones, by path).
SAME_RUN_LIST = 5


def _pair_same_run(entries: list[dict[str, Any]], at: dict[str, int], out: list[Sources]) -> None:
    """Name, for each file of the group, files of the same fingerprint that no id ties to it:
    one of the two has no run key, or their keys are of different kinds (two keys of one
    kind that differ are two runs by the framework's word), and they are not one trace.  A pair within the group is
    named once, on the later path."""
    by_kind: dict[str | None, list[dict[str, Any]]] = {}
    for e in entries:
        by_kind.setdefault(e["kind"] if e["key"] else None, []).append(e)
    for a in entries:
        if a["path"] not in at:
            continue
        mine = out[at[a["path"]]].same_run_as
        kind = a["kind"] if a["key"] else None
        for k, bucket in by_kind.items():
            if kind is not None and k == kind:
                continue
            for b in bucket:
                if len(mine) >= SAME_RUN_LIST:
                    break
                if b["path"] != a["path"] and b["tid"] != a["tid"] \
                        and (b["path"] not in at or b["path"] < a["path"]) and b["path"] not in mine:
                    mine.append(b["path"])


#: Rows read per group when looking for same-run files (a bound for folders of replays).
SAME_RUN_SCAN = 20_000
_COLUMNS = ("path", "format", "source_trace_id", "stored_trace_id", "run_key", "kind", "rank", "steps",
            "fingerprint", "chosen", "why", "rank_why")
_ROW = ("path", "format", "source_trace_id", "run_key", "kind", "rank", "steps", "fingerprint", "why", "present")


class RunSources:
    """The ``run_sources`` part of the store (a mixin of Store)."""

    _con: duckdb.DuckDBPyConnection

    def record_sources(self, paths: Sequence[str], formats: Sequence[str],
                       traces: Sequence[Sequence[tuple[str, int, str | None]]]) -> list[Sources]:
        """Record the artefacts ``paths`` and merge the runs they belong to.

        ``traces``, per path: ``(trace_id, steps, metadata JSON)`` of the traces it produced
        now (as encoded for the store: the run key is in the metadata).  Call inside the
        transaction that wrote them, after ``record_files``.  Returns one :class:`Sources`
        per path.  The group's own rows come from the caller and every lookup is a filter
        on a list parameter, not a join: a hash table per statement would count against a
        tight memory limit (MAST_INGEST_MEMORY_LIMIT) for what is a handful of rows."""
        out = [Sources() for _ in paths]
        if not paths:
            return out
        at = {p: i for i, p in enumerate(paths)}
        new: list[tuple] = []
        for p, f, ts in zip(paths, formats, traces):
            seen: set[str] = set()
            for tid, steps, meta in ts:
                if tid in seen:
                    continue
                seen.add(tid)
                md = json.loads(meta) if meta else {}
                md = md if isinstance(md, dict) else {}
                why = md.get("run_rank_why") or f
                rank = md.get("run_rank")
                new.append((p, f, tid, tid, md.get("run_key"), md.get("run_key_kind"),
                            rank if isinstance(rank, int) else 0, int(steps or 0), md.get("run_fingerprint"),
                            True, f"the only artefact of the run: {why}", why))
        types = ("VARCHAR",) * 6 + ("INTEGER", "INTEGER", "VARCHAR", "BOOLEAN", "VARCHAR", "VARCHAR")
        tb = Columns.from_rows(list(zip(_COLUMNS, types)), new)
        keys = sorted({r[4] for r in new if r[4]})
        bare = sorted({r[2] for r in new if not r[4]})
        prints = sorted({r[8] for r in new if r[8]})
        try:
            self.execute("DELETE FROM run_sources WHERE list_contains(?::VARCHAR[], path)", [list(at)])
            attach(self._con, "_mast_rs", tb)
            self.execute(f"INSERT INTO run_sources ({', '.join(_COLUMNS)}) SELECT * FROM _mast_rs")
            # The artefacts of the runs the group touched.  Without a run key, identical
            # content (one trace id) is what ties two artefacts.  An artefact's own trace is
            # stored if it was chosen or is the chosen one's (a dropped alternate's is not).
            rows = self.fetchall("""
                SELECT path, format, source_trace_id, coalesce(run_key, 'content:' || source_trace_id), kind, rank,
                       steps, fingerprint, rank_why, chosen OR source_trace_id = stored_trace_id
                FROM run_sources
                WHERE list_contains(?::VARCHAR[], run_key)
                   OR (run_key IS NULL AND list_contains(?::VARCHAR[], source_trace_id))""", [keys, bare])
            # The files that share a fingerprint with the group's (paired below, a few per
            # file; a self-join would be quadratic in the replays of one scripted run).
            same = self.fetchall(f"""
                SELECT fingerprint, path, run_key, kind, source_trace_id FROM run_sources
                WHERE list_contains(?::VARCHAR[], fingerprint) ORDER BY fingerprint, path
                LIMIT {SAME_RUN_SCAN}""", [prints])
        except duckdb.Error as e:
            raise self._map(e) from None
        finally:
            with contextlib.suppress(Exception):
                detach(self._con, "_mast_rs", tb)
        by_print: dict[str, list[dict[str, Any]]] = {}
        for fp, path, key, kind, tid in same:
            by_print.setdefault(fp, []).append({"path": path, "key": key, "kind": kind, "tid": tid})
        for entries in by_print.values():
            if len({e["path"] for e in entries}) > 1:
                _pair_same_run(entries, at, out)
        self._merge([dict(zip(_ROW, r)) for r in rows], at, out)
        return out

    def _merge(self, rows: list[dict[str, Any]], at: dict[str, int], out: list[Sources]) -> None:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_key.setdefault(r["run_key"], []).append(r)
        by_key = {k: rs for k, rs in by_key.items() if len(rs) > 1}  # one artefact: nothing to choose
        updates: list[tuple[str, str, str, bool, str]] = []
        losers: dict[str, str] = {}  # dropped trace id -> the path of the artefact that won
        for key, rs in by_key.items():
            live = [r for r in rs if r["present"]]
            if not live:
                continue
            win = min(live, key=lambda r: (-r["rank"], -r["steps"], r["format"], r["path"], r["source_trace_id"]))
            wid = win["source_trace_id"]
            for r in rs:
                chosen = r is win
                if chosen:
                    why = (f"richest of {len(rs)} artefact(s) of the run: {win['why']}" if len(rs) > 1
                           else f"the only artefact of the run: {win['why']}")
                else:
                    why = f"alternate: {win['format']} ranks higher ({win['why']})" if r["rank"] < win["rank"] else (
                        f"alternate: {win['format']} has as much or more ({win['steps']} steps vs {r['steps']})")
                updates.append((r["path"], r["source_trace_id"], wid, chosen, why))
                if not chosen and r["present"] and r["source_trace_id"] != wid:
                    losers[r["source_trace_id"]] = win["path"]
                if not chosen and r["path"] in at and r["source_trace_id"] != wid:
                    out[at[r["path"]]].alternates += 1
        if not updates:
            return
        tb = Columns.from_rows((("path", "VARCHAR"), ("src", "VARCHAR"), ("stored", "VARCHAR"), ("chosen", "BOOLEAN"),
                                ("why", "VARCHAR")), updates)
        try:
            attach(self._con, "_mast_ru", tb)
            self.execute("""
                UPDATE run_sources SET stored_trace_id = u.stored, chosen = u.chosen, why = u.why
                FROM _mast_ru u WHERE run_sources.path = u.path AND run_sources.source_trace_id = u.src""")
        finally:
            with contextlib.suppress(Exception):
                detach(self._con, "_mast_ru", tb)
        if not losers:
            return
        # One delete for the whole group (per run it would be a statement per table per run).
        ids = list(losers)
        labels = dict(self.fetchall(
            "SELECT trace_id, count(*) FROM (SELECT trace_id FROM annotations UNION ALL SELECT trace_id "
            "FROM attributions) WHERE trace_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1", [ids]))
        self.delete_traces(ids)
        for tid, wpath in losers.items():
            if wpath in at:
                out[at[wpath]].superseded += 1
                out[at[wpath]].superseded_labels += int(labels.get(tid, 0))

    def run_sources(self, trace_id: str) -> list[dict[str, Any]]:
        """The artefacts of the run stored as ``trace_id``: the chosen one first, then its alternates."""
        cols = ("path", "format", "run_key", "kind", "rank", "steps", "chosen", "why", "source_trace_id")
        rows = self.fetchall(
            f"SELECT {', '.join(cols)} FROM run_sources WHERE stored_trace_id = ? "
            "ORDER BY chosen DESC, rank DESC, steps DESC, format, path", [trace_id])
        return [dict(zip(cols, r)) for r in rows]
