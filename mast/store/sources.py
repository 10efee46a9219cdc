"""One trace per run: the artefacts of a run, which one its trace was built from, and why.

Mixed into :class:`mast.store.store.Store`.  Ingest puts a run key on each trace
(:mod:`mast.ingest.identity`: metadata ``run_key``, ``run_rank``, ``run_fingerprint``);
:meth:`RunSources.record_sources`, called in the transaction that stored a group of files,
keeps one stored trace per run, the one from the highest-ranked artefact, and records
every artefact in ``run_sources`` (the chosen one and its alternates).  A run is the
artefacts of one key, or those that :mod:`mast.store.run_match` found to be one run by
their content (``run_group``; ``match_rule`` says which rule put an artefact there).  A trace that loses
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

from mast.redact import sql_hinted, sql_matched, sql_redact
from mast.store.insert import check_sql
from mast.store.rows import Columns, attach, detach, encode_rows

from mast.store.run_match import PART_SLACK, Unit, artefact_kind, plan, plan_parts, window


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
    #: Files merged into one run with this file's trace by content, no id tying them
    #: (:mod:`mast.store.run_match`; the first :data:`SAME_RUN_LIST`).
    merged_by_content: list[str] = field(default_factory=list)
    #: Of the alternates, those never written (the richer artefact was in the same group).
    unwritten: int = 0
    #: Whether a run of this file has other artefacts recorded (of other files, or several
    #: of this one): only then can its run be in pieces to join (mast.ingest.pieces).
    shared: bool = False


#: Files named per file as looking like the same run (the first ones, by path).
SAME_RUN_LIST = 5


def _pair_same_run(entries: list[dict[str, Any]], at: dict[str, int], out: list[Sources]) -> None:
    """Name, for each file of the group, files of the same fingerprint that no id ties to it:
    one of the two has no run key, or their keys are of different kinds (two keys of one
    kind that differ are two runs by the framework's word), and they are not one trace nor
    one run (the content rule, :mod:`mast.store.run_match`, did not merge them: ambiguous,
    or their times or agents differ).  A pair within the group is named once, on the later path."""
    by_kind: dict[str | None, list[dict[str, Any]]] = {}
    for e in entries:
        # two artefacts of one kind that no id ties are two runs (mast.store.run_match): no note
        by_kind.setdefault(e["kind"] if e["key"] else None, []).append(e)
    # Each bucket without the artefacts of one kind, in order, made once per kind: the
    # replays of one scripted run are mostly artefacts of one kind, which the test below
    # refuses, and scanning them for every file of the group was quadratic (~0.1 CPU-s a
    # 400-file corpus; bench/RESULTS.md, issue 13 session 6).
    other: dict[tuple[str | None, Any], list[dict[str, Any]]] = {}

    def candidates(k: str | None, bucket: list[dict[str, Any]], artefact: Any) -> list[dict[str, Any]]:
        if artefact is None:
            return bucket
        if (k, artefact) not in other:
            other[k, artefact] = [b for b in bucket if b["artefact"] != artefact]
        return other[k, artefact]

    for a in entries:
        if a["path"] not in at:
            continue
        mine = out[at[a["path"]]].same_run_as
        kind = a["kind"] if a["key"] else None
        for k, bucket in by_kind.items():
            if kind is not None and k == kind:
                continue
            for b in candidates(k, bucket, a["artefact"]):
                if len(mine) >= SAME_RUN_LIST:
                    break
                if b["path"] != a["path"] and b["tid"] != a["tid"] and b["group"] != a["group"] \
                        and (a["artefact"] is None or a["artefact"] != b["artefact"]) \
                        and (b["path"] not in at or b["path"] < a["path"]) and b["path"] not in mine:
                    mine.append(b["path"])


def _note_content(rs: list[dict[str, Any]], at: dict[str, int], out: list[Sources]) -> None:
    """Name, for each file of the group in a run merged by content, the run's other files."""
    moved_now = any(r["rule"] and r["path"] in at for r in rs)
    for r in rs:
        if r["path"] not in at or not (r["rule"] or moved_now):
            continue
        mine = out[at[r["path"]]].merged_by_content
        for o in sorted({o["path"] for o in rs if o["path"] != r["path"]}):
            if len(mine) < SAME_RUN_LIST and o not in mine:
                mine.append(o)


#: Rows read per group when looking for same-run files (a bound for folders of replays).
SAME_RUN_SCAN = 20_000
_COLUMNS = ("path", "format", "source_trace_id", "stored_trace_id", "run_key", "kind", "rank", "steps",
            "fingerprint", "chosen", "why", "rank_why", "run_group", "t_start", "t_end", "agents", "framework",
            "part", "messages", "facts")
# the times go in as ISO text (a list or an Arrow column of text either way) and are cast
_TYPES = ("VARCHAR",) * 6 + ("INTEGER", "INTEGER", "VARCHAR", "BOOLEAN") + ("VARCHAR",) * 3 + (
    "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR", "BOOLEAN", "VARCHAR", "VARCHAR")
# an artefact's facts hold its task and system name: redacted as the trace's own columns are
_SELECT = ", ".join(f"{c}::TIMESTAMP" if c in ("t_start", "t_end") else
                    f"CASE WHEN {sql_hinted(c)} AND {sql_matched(c)} THEN {sql_redact(c)} ELSE {c} END AS {c}"
                    if c == "facts" else c for c in _COLUMNS)
# The same rows when no fact holds a hint (the chain would give each back unchanged): its
# ~20 patterns cost ~0.02 CPU-s to plan per statement, as for the traces' columns
# (mast.store.insert), against one cheap scan to tell.
_SELECT_PLAIN = ", ".join(f"{c}::TIMESTAMP" if c in ("t_start", "t_end") else c for c in _COLUMNS)
# Whether some artefact's facts hold a hint outside their token counts (the check the
# traces' columns take, mast.store.insert.check_sql).  The key "tokens" is itself a hint,
# but no shape matches there (each needs a letter, digit or quote after the ":", and the
# value is a list of two integers), and nearly every artefact counts tokens: checked whole,
# the facts took the chain, and ~0.02 CPU-s to plan it, in every group of files.  Quotes
# inside a JSON string are escaped, so the text removed is only ever that key with its value.
_HINTED = check_sql((r"""regexp_replace(facts, '"tokens": \[[0-9]+, [0-9]+\]', '')""",)).replace(
    "{src}", "_mast_rs")

#: What a run's trace takes from an alternate artefact of the run when its own artefact
#: does not say it (:func:`inherit`).
FACTS = ("outcome", "outcome_reason", "task", "system", "tokens")


def _facts(md: dict[str, Any], task: Any, system: Any, outcome: Any, t_in: Any, t_out: Any) -> dict[str, Any]:
    """What the artefact itself says of its run, of :data:`FACTS` (absent: it does not say):
    the system only where the artefact named it, tokens only where it counts any."""
    out: dict[str, Any] = {}
    if outcome and outcome != "unknown":
        out["outcome"] = outcome
    if md.get("outcome_reason"):
        out["outcome_reason"] = md["outcome_reason"]
    if task:
        out["task"] = task
    if system and md.get("system_from", "artefact") == "artefact":
        out["system"] = system
    if t_in or t_out:
        out["tokens"] = [int(t_in or 0), int(t_out or 0)]
    return out


def _listable(row: tuple) -> tuple:
    """A new row as the insert takes it (times as ISO text)."""
    t0, t1 = row[13], row[14]
    return row[:13] + (t0.isoformat() if t0 else None, t1.isoformat() if t1 else None) + row[15:]
_ROW = ("path", "format", "source_trace_id", "group", "kind", "rank", "steps", "fingerprint", "why", "present",
        "rule", "facts")


def _rows(paths: Sequence[str], formats: Sequence[str],
          traces: Sequence[Sequence[tuple]], unwritten: set[str] | frozenset[str]) -> list[tuple]:
    """The ``run_sources`` rows of a group's artefacts (in :data:`_COLUMNS` order), each its own run."""
    new: list[tuple] = []
    for p, f, ts in zip(paths, formats, traces):
        seen: set[str] = set()
        for tid, steps, meta, *cols in ts:
            if tid in seen:
                continue
            seen.add(tid)
            md = json.loads(meta) if meta else {}
            md = md if isinstance(md, dict) else {}
            why = md.get("run_rank_why") or f
            rank = md.get("run_rank")
            key = md.get("run_key")
            w = md.get("run_window")
            w = (window(str(w[0]), str(w[1])) if isinstance(w, list) and len(w) == 2 else None) or (None, None)
            agents = md.get("run_agents")
            stored = tid not in unwritten
            new.append((p, f, tid, tid if stored else None, key, md.get("run_key_kind"),
                        rank if isinstance(rank, int) else 0, int(steps or 0), md.get("run_fingerprint"),
                        stored, f"the only artefact of the run: {why}" if stored else "alternate", why,
                        key or f"content:{tid}",
                        w[0], w[1], json.dumps(agents) if isinstance(agents, list) else None,
                        md.get("run_framework"), bool(md.get("run_part")),
                        json.dumps(msgs) if isinstance(msgs := md.get("run_messages"), list) else None,
                        json.dumps(_facts(md, *cols)) if len(cols) == 5 else None))
    return new


def inherit(win: dict[str, Any], rs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """The facts of its run (:data:`mast.ingest.identity.FACTS`) that the chosen artefact
    ``win`` does not say and an alternate does, each from the richest alternate that says
    it (the order the winner was chosen by), and where each came from."""
    def parsed(r: dict[str, Any]) -> dict[str, Any]:
        try:
            f = json.loads(r["facts"]) if r.get("facts") else {}
        except (TypeError, ValueError):
            f = {}
        return f if isinstance(f, dict) else {}
    mine = parsed(win)
    taken: dict[str, Any] = {}
    where: dict[str, dict[str, str]] = {}
    others = sorted((r for r in rs if r is not win),
                    key=lambda r: (-r["rank"], -r["steps"], r["format"], r["path"], r["source_trace_id"]))
    for r in others:
        for k, v in parsed(r).items():
            if k not in mine and k not in taken and v not in (None, "", []):
                taken[k] = v
                where[k] = {"path": r["path"], "format": r["format"]}
    return taken, where


class RunSources:
    """The ``run_sources`` part of the store (a mixin of Store)."""

    _con: duckdb.DuckDBPyConnection

    def record_sources(self, paths: Sequence[str], formats: Sequence[str],
                       traces: Sequence[Sequence[tuple]],
                       unwritten: set[str] | frozenset[str] = frozenset(), fresh: bool = False) -> list[Sources]:
        """Record the artefacts ``paths`` and merge the runs they belong to.

        ``traces``, per path: the ``run_rows()`` of the traces it produced now
        (:data:`mast.store.rows.RUN_COLUMNS`, as encoded: the run key is in the metadata,
        and the task, system, outcome and tokens are the facts an alternate passes on).  Call inside the
        transaction that wrote them, after ``record_files``.  Returns one :class:`Sources`
        per path.  ``unwritten``: traces the caller did not write because a richer artefact
        of their run is in the group (:func:`mast.ingest.identity.poorer_in_group`): recorded as
        alternates from the start.  The group's own rows come from the caller and every lookup is a filter
        on a list parameter, not a join: a hash table per statement would count against a
        tight memory limit (MAST_INGEST_MEMORY_LIMIT) for what is a handful of rows.
        ``fresh``: none of ``paths`` was recorded before (see ``record_files``): no earlier
        rows of theirs to remove."""
        out = [Sources() for _ in paths]
        if not paths:
            return out
        at = {p: i for i, p in enumerate(paths)}
        if unwritten:  # one that an earlier ingest stored is there all the same
            unwritten = set(unwritten) - {r[0] for r in self.fetchall(
                "SELECT trace_id FROM traces WHERE list_contains(?::VARCHAR[], trace_id)", [sorted(unwritten)])}
        new = _rows(paths, formats, traces, unwritten)
        tb = Columns.from_rows(list(zip(_COLUMNS, _TYPES)), [_listable(r) for r in new])
        prints = sorted({r[8] for r in new if r[8]})
        try:
            if not fresh:
                self.execute("DELETE FROM run_sources WHERE list_contains(?::VARCHAR[], path)", [list(at)])
            attach(self._con, "_mast_rs", tb)
            [([hinted],)] = self.fetchall(_HINTED)
            self.execute(f"INSERT INTO run_sources ({', '.join(_COLUMNS)}) "
                         f"SELECT {_SELECT if hinted else _SELECT_PLAIN} FROM _mast_rs")
            # The files that share a fingerprint with the group's: candidates for the content
            # rule and for the same-run note (a self-join would be quadratic in the replays
            # of one scripted run).
            same = self.fetchall(f"""
                SELECT fingerprint, path, run_key, kind, source_trace_id, run_group, t_start, t_end, agents, messages,
                       format, rank_why, part
                FROM run_sources WHERE list_contains(?::VARCHAR[], fingerprint) ORDER BY fingerprint, path
                LIMIT {SAME_RUN_SCAN}""", [prints])
        except duckdb.Error as e:
            raise self._map(e) from None
        finally:
            with contextlib.suppress(Exception):
                detach(self._con, "_mast_rs", tb)
        moves = self._match_content(same, at, out)
        for g, m in self._match_parts(new, at).items():
            moves[g] = m
        moves = {g: (moves[t][0] if t in moves else t, rule) for g, (t, rule) in moves.items()}
        groups = sorted({moves.get(r[12], (r[12],))[0] for r in new})
        try:
            # The artefacts of the runs the group touched.  An artefact's own trace is
            # stored if it was chosen or is the chosen one's (a dropped alternate's is not).
            rows = self.fetchall("""
                SELECT path, format, source_trace_id, run_group, kind, rank, steps, fingerprint, rank_why,
                       chosen OR source_trace_id = stored_trace_id, match_rule, facts
                FROM run_sources WHERE list_contains(?::VARCHAR[], run_group)""", [groups])
        except duckdb.Error as e:
            raise self._map(e) from None
        self._merge([dict(zip(_ROW, r)) for r in rows], at, out)
        return out

    def _apply_moves(self, moves: dict[str, tuple[str, str]]) -> None:
        if not moves:
            return
        tb = Columns.from_rows((("grp", "VARCHAR"), ("dest", "VARCHAR"), ("match", "VARCHAR")),
                               [(g, t, rule) for g, (t, rule) in moves.items()])
        try:
            attach(self._con, "_mast_rm", tb)
            # an artefact keeps the rule that first put it in its run
            self.execute("UPDATE run_sources SET run_group = m.dest, "
                         "match_rule = coalesce(run_sources.match_rule, m.match) "
                         "FROM _mast_rm m WHERE run_sources.run_group = m.grp")
        except duckdb.Error as e:
            raise self._map(e) from None
        finally:
            with contextlib.suppress(Exception):
                detach(self._con, "_mast_rm", tb)

    def _match_parts(self, new: list[tuple], at: dict[str, int]) -> dict[str, tuple[str, str]]:
        """Join agent histories to their runs (:func:`mast.store.run_match.plan_parts`): the
        histories near the group's times, then the runs near those histories' times."""
        timed = [r for r in new if r[13] is not None and r[16]]
        if not timed:
            return {}
        fws = sorted({r[16] for r in timed})
        cols = "path, run_key, kind, run_group, t_start, t_end, agents, format, rank_why, part"
        near = ("list_contains(?::VARCHAR[], framework) AND t_start IS NOT NULL AND t_start <= ? AND t_end >= ? "
                f"LIMIT {SAME_RUN_SCAN}")
        try:
            parts = self.fetchall(f"SELECT {cols} FROM run_sources WHERE part AND {near}",
                                  [fws, max(r[14] for r in timed) + PART_SLACK, min(r[13] for r in timed) - PART_SLACK])
            if not parts:
                return {}
            runs = self.fetchall(f"SELECT {cols} FROM run_sources WHERE NOT coalesce(part, false) AND {near}",
                                 [fws, max(r[5] for r in parts) + PART_SLACK, min(r[4] for r in parts) - PART_SLACK])
        except duckdb.Error as e:
            raise self._map(e) from None

        def units(rows: list[tuple]) -> dict[str, Unit]:
            out: dict[str, Unit] = {}
            for path, key, kind, group, t0, t1, agents, fmt, rank_why, part in rows:
                out.setdefault(group, Unit(group)).add(key, kind, t0, t1, agents, path, path in at, None,
                                                       artefact_kind(fmt, rank_why, bool(part)))
            return out
        whole = units(runs)
        moves = plan_parts([u for g, u in units(parts).items() if g not in whole], list(whole.values()))
        self._apply_moves(moves)
        return moves

    def _match_content(self, same: list[tuple], at: dict[str, int], out: list[Sources]) -> dict[str, tuple[str, str]]:
        """Merge the runs that no id ties but whose content says they are one
        (:mod:`mast.store.run_match`); note the look-alikes left apart.  Returns the moves."""
        by_print: dict[str, list[tuple]] = {}
        for r in same:
            by_print.setdefault(r[0], []).append(r)
        moves: dict[str, tuple[str, str]] = {}
        for rs in by_print.values():
            if len({r[1] for r in rs}) < 2:
                continue
            units: dict[str, Unit] = {}
            for _, path, key, kind, _tid, group, t0, t1, agents, msgs, fmt, rank_why, part in rs:
                if agents is None:  # recorded before m190: nothing to compare but the fingerprint
                    continue
                units.setdefault(group, Unit(group)).add(key, kind, t0, t1, agents, path, path in at, msgs,
                                                         artefact_kind(fmt, rank_why, bool(part)))
            moves.update(plan(list(units.values())))
        self._apply_moves(moves)
        for rs in by_print.values():
            if len({r[1] for r in rs}) > 1:
                entries = [{"path": r[1], "key": r[2], "kind": r[3], "tid": r[4],
                            "group": moves.get(r[5], (r[5],))[0], "artefact": artefact_kind(r[10], r[11], bool(r[12]))}
                           for r in rs]
                _pair_same_run(entries, at, out)
        return moves

    def _merge(self, rows: list[dict[str, Any]], at: dict[str, int], out: list[Sources]) -> None:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_key.setdefault(r["group"], []).append(r)
        by_key = {k: rs for k, rs in by_key.items() if len(rs) > 1}  # one artefact: nothing to choose
        for rs in by_key.values():
            for r in rs:
                if r["path"] in at:
                    out[at[r["path"]]].shared = True
        updates: list[tuple[str, str, str, bool, str]] = []
        losers: dict[str, str] = {}  # dropped trace id -> the path of the artefact that won
        fills: list[tuple[str, str, str, str]] = []  # (winner path, its trace, facts taken, from where)
        for key, rs in by_key.items():
            live = [r for r in rs if r["present"]]
            if not live:
                continue
            win = min(live, key=lambda r: (-r["rank"], -r["steps"], r["format"], r["path"], r["source_trace_id"]))
            wid = win["source_trace_id"]
            taken, where = inherit(win, rs)
            fills.append((win["path"], wid, json.dumps(taken), json.dumps(where)))
            if any(r["rule"] for r in rs):
                _note_content(rs, at, out)
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
                    if not r["present"]:  # never written (a richer artefact of the group won)
                        out[at[r["path"]]].unwritten += 1
        if not updates:
            return
        tb = Columns.from_rows((("path", "VARCHAR"), ("src", "VARCHAR"), ("stored", "VARCHAR"), ("chosen", "BOOLEAN"),
                                ("why", "VARCHAR")), updates)
        try:
            attach(self._con, "_mast_ru", tb)
            self.execute("""
                UPDATE run_sources SET stored_trace_id = u.stored, chosen = u.chosen, why = u.why,
                       inherited = CASE WHEN u.chosen THEN inherited END
                FROM _mast_ru u WHERE run_sources.path = u.path AND run_sources.source_trace_id = u.src""")
        finally:
            with contextlib.suppress(Exception):
                detach(self._con, "_mast_ru", tb)
        self._fill(fills)
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

    def _fill(self, fills: list[tuple[str, str, str, str]]) -> None:
        """Give each run's stored trace the facts only its alternates know (:func:`inherit`),
        and record on the chosen artefact's row which came from where."""
        fills = [f for f in fills if f[2] != "{}"]
        if not fills:
            return
        # the trace's metadata names the alternates' formats; their paths stay in run_sources
        rows = [(p, t, taken, src, json.dumps({k: v["format"] for k, v in json.loads(src).items()}))
                for p, t, taken, src in fills]
        tb = Columns.from_rows((("path", "VARCHAR"), ("tid", "VARCHAR"), ("taken", "VARCHAR"), ("src", "VARCHAR"),
                                ("formats", "VARCHAR")), rows)
        try:
            attach(self._con, "_mast_rf", tb)
            # A fact the winner has is never overwritten (the CASEs test the stored value
            # again); the outcome reason and where the system name came from are metadata.
            self.execute("""
                UPDATE traces SET
                    outcome = CASE WHEN traces.outcome = 'unknown' AND json_extract_string(f.taken, '$.outcome') IS NOT NULL
                                   THEN json_extract_string(f.taken, '$.outcome') ELSE traces.outcome END,
                    task = CASE WHEN coalesce(traces.task, '') = '' THEN coalesce(json_extract_string(f.taken, '$.task'), traces.task)
                                ELSE traces.task END,
                    system = CASE WHEN json_extract_string(f.taken, '$.system') IS NOT NULL
                                       AND coalesce(json_extract_string(traces.metadata, '$.system_from'), '') <> 'artefact'
                                  THEN json_extract_string(f.taken, '$.system') ELSE traces.system END,
                    tokens_in = CASE WHEN coalesce(traces.tokens_in, 0) = 0 AND json_extract(f.taken, '$.tokens') IS NOT NULL
                                     THEN CAST(json_extract_string(f.taken, '$.tokens[0]') AS BIGINT) ELSE traces.tokens_in END,
                    tokens_out = CASE WHEN coalesce(traces.tokens_out, 0) = 0 AND json_extract(f.taken, '$.tokens') IS NOT NULL
                                      THEN CAST(json_extract_string(f.taken, '$.tokens[1]') AS BIGINT) ELSE traces.tokens_out END,
                    metadata = json_merge_patch(coalesce(traces.metadata, '{}'), json_object(
                        'outcome_reason', CASE WHEN json_extract_string(traces.metadata, '$.outcome_reason') IS NULL
                                               THEN json_extract_string(f.taken, '$.outcome_reason')
                                               ELSE json_extract_string(traces.metadata, '$.outcome_reason') END,
                        'system_from', CASE WHEN json_extract_string(f.taken, '$.system') IS NOT NULL THEN 'artefact'
                                            ELSE json_extract_string(traces.metadata, '$.system_from') END,
                        'inherited', json(f.formats)))
                FROM _mast_rf f WHERE traces.trace_id = f.tid""")
            self.execute("""
                UPDATE run_sources SET inherited = f.src
                FROM _mast_rf f WHERE run_sources.path = f.path AND run_sources.source_trace_id = f.tid""")
        except duckdb.Error as e:
            raise self._map(e) from None
        finally:
            with contextlib.suppress(Exception):
                detach(self._con, "_mast_rf", tb)

    def run_sources(self, trace_id: str) -> list[dict[str, Any]]:
        """The artefacts of the run stored as ``trace_id``: the chosen one first, then its alternates."""
        cols = ("path", "format", "run_key", "kind", "rank", "steps", "chosen", "why", "source_trace_id",
                "match_rule", "inherited")
        rows = self.fetchall(
            f"SELECT {', '.join(cols)} FROM run_sources WHERE stored_trace_id = ? "
            "ORDER BY chosen DESC, rank DESC, steps DESC, format, path", [trace_id])
        out = [dict(zip(cols, r)) for r in rows]
        for r in out:
            r["inherited"] = json.loads(r["inherited"]) if r["inherited"] else {}
        return out

    def piece_groups(self, paths: Sequence[str], formats: Sequence[str]) -> list[tuple[str, str, list[str], int]]:
        """The runs of ``paths`` (one trace id, kind ``otel-trace``) that other files of the
        same format also hold a piece of: ``(run group, format, its files, the steps of the
        stored trace when another format's artefact is chosen, else 0)`` (mast.ingest.pieces)."""
        try:
            rows = self.fetchall("""
                WITH mine AS (SELECT DISTINCT run_group, format FROM run_sources
                              WHERE list_contains(?::VARCHAR[], path) AND kind = 'otel-trace'
                                AND list_contains(?::VARCHAR[], format))
                SELECT r.run_group, r.format, list(DISTINCT r.path ORDER BY r.path),
                       (SELECT coalesce(max(c.steps), 0) FROM run_sources c
                        WHERE c.run_group = r.run_group AND c.chosen AND c.format <> r.format)
                FROM run_sources r JOIN mine USING (run_group, format)
                GROUP BY r.run_group, r.format HAVING count(DISTINCT r.path) > 1
                ORDER BY 1, 2""", [list(paths), list(formats)])
        except duckdb.Error as e:
            raise self._map(e) from None
        return [(g, f, list(ps), int(n or 0)) for g, f, ps, n in rows]

    def store_union(self, group: str, fmt: str, paths: Sequence[str], trace: Any,
                    hooks: Sequence[Any] = ()) -> tuple[int, int]:
        """Store the trace built from the pieces ``paths`` (files of format ``fmt``) of run
        ``group`` as the run's one trace, in place of whatever trace the run had: the
        ``trace`` (a :class:`mast.model.Trace`) is written, the run's earlier traces go with
        their labels and derived rows, every piece file is recorded as holding it (a changed
        piece then leaves it to the next union, not deletes it), and the run's artefacts
        point to it: the first piece as the artefact it was built from, with the union's
        steps (so it stays the run's richest until a new piece joins it).  Call inside a
        transaction.  Returns the traces and labels replaced."""
        uid, steps = trace.finalise().trace_id, len(trace.steps)
        try:
            old = [r[0] for r in self.fetchall("""
                SELECT trace_id FROM traces WHERE trace_id <> ? AND trace_id IN (
                    SELECT stored_trace_id FROM run_sources WHERE run_group = ?
                    UNION SELECT source_trace_id FROM run_sources WHERE run_group = ?
                    UNION SELECT f.trace_id FROM ingested_file_traces f JOIN traces t USING (trace_id)
                          WHERE list_contains(?::VARCHAR[], f.path) AND json_extract_string(t.metadata, '$.run_key') = ?)
                ORDER BY 1""", [uid, group, group, list(paths), group])]
            gone = self._delete_traces(old)  # mast.store.files: counts their labels, then deletes
            # one trace: its rows as lists (mast.store.rows), without loading pyarrow for it
            self.write_tables(encode_rows([trace]), hooks)
            self.execute("""
                INSERT INTO ingested_file_traces SELECT p, ? FROM unnest(?::VARCHAR[]) AS u(p)
                WHERE NOT EXISTS (SELECT 1 FROM ingested_file_traces f WHERE f.path = u.p AND f.trace_id = ?)""",
                         [uid, list(paths), uid])
            n = len(paths)
            self.execute("""
                UPDATE run_sources SET stored_trace_id = ?, inherited = NULL,
                    chosen = (path = ? AND format = ?),
                    source_trace_id = CASE WHEN path = ? AND format = ? THEN ? ELSE source_trace_id END,
                    steps = CASE WHEN path = ? AND format = ? THEN ? ELSE steps END,
                    why = CASE WHEN path = ? AND format = ? THEN ?
                               WHEN list_contains(?::VARCHAR[], path) AND format = ? THEN ?
                               ELSE ? END
                WHERE run_group = ?""",
                         [uid, paths[0], fmt, paths[0], fmt, uid, paths[0], fmt, steps,
                          paths[0], fmt, f"built from {n} pieces of one export (disjoint spans, {fmt}): this file and "
                          f"{n - 1} other(s)",
                          list(paths), fmt, f"piece of the run: its spans are in the trace built from {n} pieces",
                          f"alternate: {n} pieces of one export together have more ({steps} steps)", group])
        except duckdb.Error as e:
            raise self._map(e) from None
        return gone.traces, gone.labels
