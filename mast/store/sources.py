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
from dataclasses import dataclass, field
from typing import Any, Sequence

import duckdb
import pyarrow as pa


@dataclass(slots=True)
class Sources:
    """What recording one file's artefacts did to the runs they belong to."""

    #: Traces of this file whose run is stored as another artefact's trace (its alternates).
    alternates: int = 0
    #: Traces of other files (and their labels) that this file's richer artefact replaced.
    superseded: int = 0
    superseded_labels: int = 0
    #: Files whose trace looks like the same run (same fingerprint) with no id tying them.
    same_run_as: list[str] = field(default_factory=list)


_ROW = ("path", "format", "source_trace_id", "run_key", "kind", "rank", "steps", "fingerprint", "why", "present")


class RunSources:
    """The ``run_sources`` part of the store (a mixin of Store)."""

    _con: duckdb.DuckDBPyConnection

    def record_sources(self, paths: Sequence[str], formats: Sequence[str],
                       trace_ids: Sequence[Sequence[str]]) -> list[Sources]:
        """Record the artefacts ``paths`` (with the traces each produced now) and merge runs.

        Call inside the transaction that wrote the traces, after ``record_files``.  Returns
        one :class:`Sources` per path."""
        out = [Sources() for _ in paths]
        if not paths:
            return out
        at = {p: i for i, p in enumerate(paths)}
        pairs = [(p, f, t) for p, f, ids in zip(paths, formats, trace_ids) for t in dict.fromkeys(ids)]
        tb = pa.table({"path": pa.array([p for p, _, _ in pairs], pa.string()),
                       "fmt": pa.array([f for _, f, _ in pairs], pa.string()),
                       "trace_id": pa.array([t for _, _, t in pairs], pa.string())})
        group = pa.table({"path": pa.array(list(at), pa.string())})
        try:
            self._con.register("_mast_rs", tb)
            self._con.register("_mast_rp", group)
            self.execute("DELETE FROM run_sources WHERE path IN (SELECT path FROM _mast_rp)")
            self.execute("""
                INSERT INTO run_sources
                SELECT r.path, r.fmt, t.trace_id, t.trace_id, t.metadata->>'run_key', t.metadata->>'run_key_kind',
                       coalesce(TRY_CAST(t.metadata->>'run_rank' AS INTEGER), 0), t.n_steps,
                       t.metadata->>'run_fingerprint', true, t.metadata->>'run_rank_why'
                FROM _mast_rs r JOIN traces t USING (trace_id)""")
            # Without a run key, identical content (one trace id) is what ties two artefacts.
            rows = self.fetchall("""
                WITH s AS (SELECT *, coalesce(run_key, 'content:' || source_trace_id) AS k FROM run_sources)
                SELECT s.path, s.format, s.source_trace_id, s.k, s.kind, s.rank, s.steps, s.fingerprint,
                       t.metadata->>'run_rank_why', t.trace_id IS NOT NULL
                FROM s LEFT JOIN traces t ON t.trace_id = s.source_trace_id
                WHERE s.k IN (SELECT k FROM s WHERE path IN (SELECT path FROM _mast_rp))""")
            same = self.fetchall("""
                SELECT DISTINCT a.path, b.path FROM run_sources a JOIN run_sources b
                  ON a.fingerprint = b.fingerprint AND a.path <> b.path
                 -- two ids of one kind that differ: the framework says two runs
                 AND (a.run_key IS NULL OR b.run_key IS NULL OR a.kind <> b.kind)
                WHERE a.path IN (SELECT path FROM _mast_rp)
                  AND (b.path NOT IN (SELECT path FROM _mast_rp) OR b.path < a.path)
                ORDER BY 1, 2""")
        except duckdb.Error as e:
            raise self._map(e) from None
        finally:
            for name in ("_mast_rs", "_mast_rp"):
                with contextlib.suppress(Exception):
                    self._con.unregister(name)
        for a, b in same:
            out[at[a]].same_run_as.append(b)
        self._merge([dict(zip(_ROW, r)) for r in rows], at, out)
        return out

    def _merge(self, rows: list[dict[str, Any]], at: dict[str, int], out: list[Sources]) -> None:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_key.setdefault(r["run_key"], []).append(r)
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
        tb = pa.table({"path": pa.array([u[0] for u in updates], pa.string()),
                       "src": pa.array([u[1] for u in updates], pa.string()),
                       "stored": pa.array([u[2] for u in updates], pa.string()),
                       "chosen": pa.array([u[3] for u in updates], pa.bool_()),
                       "why": pa.array([u[4] for u in updates], pa.string())})
        try:
            self._con.register("_mast_ru", tb)
            self.execute("""
                UPDATE run_sources SET stored_trace_id = u.stored, chosen = u.chosen, why = u.why
                FROM _mast_ru u WHERE run_sources.path = u.path AND run_sources.source_trace_id = u.src""")
        finally:
            with contextlib.suppress(Exception):
                self._con.unregister("_mast_ru")
        by_winner: dict[str, list[str]] = {}
        for tid, wpath in losers.items():
            by_winner.setdefault(wpath, []).append(tid)
        for wpath, ids in by_winner.items():
            rep = self._delete_traces(ids)
            if wpath in at:
                out[at[wpath]].superseded += rep.traces
                out[at[wpath]].superseded_labels += rep.labels

    def run_sources(self, trace_id: str) -> list[dict[str, Any]]:
        """The artefacts of the run stored as ``trace_id``: the chosen one first, then its alternates."""
        cols = ("path", "format", "run_key", "kind", "rank", "steps", "chosen", "why", "source_trace_id")
        rows = self.fetchall(
            f"SELECT {', '.join(cols)} FROM run_sources WHERE stored_trace_id = ? "
            "ORDER BY chosen DESC, rank DESC, steps DESC, format, path", [trace_id])
        return [dict(zip(cols, r)) for r in rows]
