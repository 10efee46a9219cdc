"""Spans staged in the store as they arrive, and traces built from them when complete.

The open traces live in the store, not in Python: memory stays bounded whatever the
number of open traces, and a span acknowledged to the exporter is already committed.
A request is staged as its body (``collect_requests``) and one index row per span
(``collect_spans``: trace id, span id, arrival order, ended root; migrations m120, m170);
the per-trace counts in ``collect_traces`` are brought up to date by :meth:`Collector.fold`
before each look for ready traces, so that acknowledging a request only appends rows.

The OTel traces of one run are stitched as the file importer stitches them
(``group_traces``: links, a parent span under another trace id, a shared run id): each
span's ties are staged with it (m200), and :meth:`Collector.fold` joins the groups they
tie (``collect_traces.grp``: the smallest OTel trace id of the group).

A group is *ready* when it has spans its stored version does not (``spans <>
built_spans``) and every trace in it has ended its root span or had no span for ``idle``
seconds.  It is then built from all its staged spans by the otel importer's mapping (the
same ``build_otlp_trace`` as ``mast ingest`` of the spans as an OTLP file) and written on
the store's one write path with the caller's write hooks, many groups per transaction.  A
group that grows after it was built (late spans, or a late piece stitched to it) is built
again; the new version, whose content hash differs, replaces the old ones in the same
transaction (:meth:`Store.delete_traces`: their steps, labels and derived rows go with
them, and the labels are counted), and ``collect_traces.stored_trace_id`` follows it.
Staged spans are kept for ``horizon`` seconds after a group's last span
(:mod:`~mast.ingest.collect.retention`), so a late span within it rebuilds the whole
group; after it, the group's rows go, and what the index and each fold scan is bounded
by the spans of the last ``horizon`` seconds, not by everything collected.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from mast._arrow import pa

from mast.errors import IngestError
from mast.ingest._util import gc_paused
from mast.ingest.collect import copies
from mast.ingest.collect.mapping import MapInputs, Mapped, spans_of, map_batch
from mast.ingest.collect.retention import prune
from mast.ingest.collect.proto import Index
# _id, _attrs: the file importer's rules for ids (hex or base64, 8/16 bytes) and
# attributes, so that both read them alike
from mast.ingest.formats.otel.spans import RUN_ID_ATTRS, _attrs, _id
from mast.store import Store, WriteHook
from mast.unionfind import Groups

#: spans built and stored per transaction, at most (one group, however big, always fits):
#: the write's and the rule features' fixed costs are paid per batch
BATCH_SPANS = 20_000
#: seconds a settled group's staged spans are kept for late spans and pieces (retention.py)
HORIZON = 900.0
#: request bodies read from the store per query while building
_BODIES_AT_ONCE = 16
#: request bodies a build batch holds at most (one group's always fit, however many)
BATCH_BODY_BYTES = 64 * 1024 * 1024


def _reqs_in(reqs: Sequence[int]) -> str:
    """``req IN (…)`` with the numbers written out: a constant list is a filter DuckDB pushes
    into the scan (row groups skipped by their min and max), where ``IN (SELECT unnest(?))``
    is a join that read every staged body, so each build slowed as the bodies grew."""
    return "req IN (" + ",".join(str(int(r)) for r in reqs) + ")" if reqs else "false"


@dataclass(frozen=True, slots=True)
class Staged:
    """One received request, checked and indexed, as it is staged: its body (decompressed)
    and, per span in document order, the trace id, span id and whether it is an ended root."""

    fmt: str  # "protobuf" or "json"
    body: bytes
    trace_ids: list[str]
    span_ids: list[str]
    roots: list[bool]
    #: what may stitch the span's trace to others (see :data:`~mast.ingest.collect.proto.Index`)
    parents: list[str | None]
    links: list[list[str] | None]
    runs: list[list[str] | None]

    def __len__(self) -> int:
        return len(self.span_ids)


@dataclass
class BuildReport:
    """One stored (or refused) trace: ``otel_trace_id`` names its group (the smallest of
    the OTel trace ids stitched into it, all in ``otel_trace_ids``)."""

    otel_trace_id: str
    trace_id: str | None
    #: earlier stored versions it replaced (one per piece stored before it was stitched)
    replaced: list[str]
    spans: int
    steps: int
    error: str | None = None
    #: annotations and attributions of the replaced versions, gone with them (as re-ingest)
    labels_replaced: int = 0
    otel_trace_ids: list[str] = field(default_factory=list)
    #: not stored: a copy of an LLM call that this group's LLM span holds (as ``mast ingest``
    #: drops it); ``replaced`` then lists the versions stored before that was known
    copy_of: str | None = None
    #: not stored: nothing happened in it (no LLM, tool or agent span) and other groups are
    #: staged, as ``mast ingest`` leaves such a trace out of a file holding others
    empty: bool = False


@dataclass
class Counters:
    requests: int = 0
    spans: int = 0
    traces_built: int = 0
    traces_replaced: int = 0
    labels_replaced: int = 0
    build_errors: int = 0
    #: built but not stored, as ``mast ingest`` leaves them out (copies, nothing happened)
    traces_dropped: int = 0
    #: OTel traces whose staged spans were removed after the horizon
    traces_pruned: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def index_json(doc: Any, where: str = "request") -> Index:
    """Index the spans of one OTLP/JSON request as :func:`index_request` does a protobuf
    one: the structure and the ids are checked here (an :class:`IngestError` names the
    span); the rest of each span is checked when its trace is built."""
    tids: list[str] = []
    sids: list[str] = []
    roots: list[bool] = []
    parents: list[str | None] = []
    links: list[list[str] | None] = []
    runs: list[list[str] | None] = []
    path = Path(where)
    for ws, tid, sp, _ in spans_of(doc, where):
        tids.append(tid)
        sids.append(_id(path, ws, sp["spanId"], "spanId"))
        parent = _id(path, ws, sp.get("parentSpanId"), "parentSpanId", False)
        parents.append(parent)
        roots.append(parent is None and sp.get("endTimeUnixNano") not in (None, "", 0, "0"))
        lns = sp.get("links")
        links.append([t for t in (_link_trace(path, ws, ln) for ln in lns) if t] or None
                     if isinstance(lns, list) and lns else None)
        run = None
        attrs = sp.get("attributes")
        if attrs and (isinstance(attrs, dict) or any(isinstance(a, dict) and a.get("key") in RUN_ID_ATTRS for a in attrs)):
            # only a span that carries a run id pays for reading its attributes whole
            flat = _attrs(path, ws, attrs)
            run = [f"{k}={flat[k]}" for k in RUN_ID_ATTRS if isinstance(flat.get(k), str) and flat[k]] or None
        runs.append(run)
    return tids, sids, roots, parents, links, runs


def _link_trace(path: Path, where: str, ln: Any) -> str | None:
    """A link's trace id, or None when it has none that reads: a bad link fails its own
    trace when the trace is built, as in a file, not the request."""
    try:
        return _id(path, where, ln.get("traceId"), "link traceId") if isinstance(ln, dict) else None
    except IngestError:
        return None


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Collector:
    """Stages spans and builds ready traces: from one thread, or (after :meth:`open_stager`)
    staging from one thread and building from another."""

    def __init__(self, store: Store, hooks: Sequence[WriteHook] = (), idle: float = 30.0,
                 system: str | None = None, on_build: Callable[[BuildReport], None] | None = None,
                 batch_spans: int = BATCH_SPANS, horizon: float | None = HORIZON):
        self.store = store
        self.hooks = list(hooks)
        self.idle = idle
        self.system = system
        self.on_build = on_build
        self.batch_spans = batch_spans
        #: None: keep every staged span (the bound off)
        self.horizon = horizon
        self.counters = Counters()
        #: the connection requests are committed on (the builder's own, unless split)
        self._stager: Store = store
        # the fold's mark too: every span below it may have been pruned, and a seq given
        # again below the mark would never be folded
        row = store.fetchall("SELECT greatest((SELECT coalesce(max(seq), 0) FROM collect_spans), "
                             "(SELECT max(seq) FROM collect_folded)), "
                             "(SELECT coalesce(max(req), 0) FROM collect_requests)")
        self._seq, self._req = int(row[0][0]), int(row[0][1])

    def open_stager(self) -> None:
        """Commit staged requests on a second connection to the store, so that one thread
        can stage while another builds (:class:`~mast.ingest.collect.server.Receiver`)."""
        if self._stager is self.store:
            self._stager = Store(self.store.path)

    def close_stager(self) -> None:
        if self._stager is not self.store:
            self._stager.close()
            self._stager = self.store

    def stage(self, requests: Iterable[Staged]) -> int:
        """Commit several requests (bodies and span index) in one transaction; returns the span count."""
        reqs = [r for r in requests if len(r)]
        if not reqs:
            return 0
        n = sum(len(r) for r in reqs)
        seq0, req0 = self._seq, self._req
        spans = pa.table({
            "otel_trace_id": pa.array([t for r in reqs for t in r.trace_ids], pa.string()),
            "span_id": pa.array([t for r in reqs for t in r.span_ids], pa.string()),
            "seq": pa.array(range(seq0 + 1, seq0 + 1 + n), pa.int64()),
            "req": pa.array([req0 + 1 + i for i, r in enumerate(reqs) for _ in range(len(r))], pa.int64()),
            "root_ended": pa.array([b for r in reqs for b in r.roots], pa.bool_()),
            "parent_span_id": pa.array([t for r in reqs for t in r.parents], pa.string()),
            "link_trace_ids": pa.array([t for r in reqs for t in r.links], pa.list_(pa.string())),
            "run_ids": pa.array([t for r in reqs for t in r.runs], pa.list_(pa.string())),
        })
        bodies = pa.table({"req": pa.array(range(req0 + 1, req0 + 1 + len(reqs)), pa.int64()),
                           "fmt": pa.array([r.fmt for r in reqs], pa.string()),
                           "body": pa.array([r.body for r in reqs], pa.binary())})
        st = self._stager
        with st.registered("_mast_collect_in", spans), st.registered("_mast_collect_req", bodies), st.transaction():
            st.execute("INSERT INTO collect_requests SELECT req, fmt, body FROM _mast_collect_req")
            st.execute("INSERT INTO collect_spans (otel_trace_id, span_id, seq, req, root_ended, parent_span_id, "
                       "link_trace_ids, run_ids) SELECT otel_trace_id, span_id, seq, req, root_ended, parent_span_id, "
                       "link_trace_ids, run_ids FROM _mast_collect_in")
        self._seq += n
        self._req += len(reqs)
        return n

    def fold(self) -> int:
        """Count the spans staged since the last fold into ``collect_traces`` (spans,
        root ended, last seen: now) and stitch their traces into groups; the number of
        spans folded."""
        st = self.store
        top = self._seq  # read once: the stager moves it on after each commit
        (w,), = st.fetchall("SELECT seq FROM collect_folded")
        if w >= top:
            return 0
        now = _now()
        with st.transaction():
            st.execute(
                "INSERT INTO collect_traces (otel_trace_id, first_seen, last_seen, spans, root_ended, built_spans, "
                "stored_trace_id, error, grp, first_seq) SELECT otel_trace_id, ?, ?, count(*), "
                "bool_or(coalesce(root_ended, false)), 0, NULL, NULL, otel_trace_id, min(seq) "
                "FROM collect_spans WHERE seq > ? AND seq <= ? GROUP BY otel_trace_id "
                "ON CONFLICT (otel_trace_id) DO UPDATE SET last_seen = excluded.last_seen, "
                "spans = collect_traces.spans + excluded.spans, "
                "root_ended = collect_traces.root_ended OR excluded.root_ended, "
                # unknown (a row the migration could not fill) stays unknown: never a bound
                "first_seq = CASE WHEN collect_traces.first_seq IS NULL THEN NULL "
                "ELSE least(collect_traces.first_seq, excluded.first_seq) END", [now, now, w, top])
            self._stitch(w, top)
            st.execute("UPDATE collect_folded SET seq = ?", [top])
        return top - w

    def _stitch(self, w: int, top: int) -> None:
        """Join the groups of traces tied by a span staged in ``(w, top]`` as
        ``group_traces`` ties the traces of a file, with the spans staged before: a link
        to a trace that has spans, a parent span (by an id no other trace uses) under
        another trace id, a run id another trace carries.  A group is named by its
        smallest OTel trace id; a span's tie to a trace not staged yet is made when that
        trace's first span is folded."""
        st = self.store
        edges = st.fetchall(f"""
            WITH s AS (SELECT otel_trace_id AS t, span_id, parent_span_id, link_trace_ids, run_ids, seq
                       FROM collect_spans WHERE seq <= {int(top)}),
            new AS (SELECT * FROM s WHERE seq > {int(w)}),
            fresh AS (SELECT DISTINCT t FROM new),
            -- a new span under a parent staged before or with it, and a new parent of spans staged before
            pe AS (SELECT a.t AS x, b.t AS y, b.span_id AS sid FROM new a JOIN s b ON a.parent_span_id = b.span_id
                   WHERE a.t <> b.t
                   UNION ALL
                   SELECT a.t, b.t, b.span_id FROM s a JOIN new b ON a.parent_span_id = b.span_id
                   WHERE a.t <> b.t AND a.seq <= {int(w)}),
            amb AS (SELECT span_id FROM s WHERE span_id IN (SELECT sid FROM pe)
                    GROUP BY span_id HAVING count(DISTINCT t) > 1),
            ln AS (SELECT t, seq, unnest(link_trace_ids) AS l FROM s WHERE link_trace_ids IS NOT NULL),
            le AS (SELECT ln.t AS x, ln.l AS y FROM ln JOIN collect_traces k ON k.otel_trace_id = ln.l
                   WHERE ln.t <> ln.l AND (ln.seq > {int(w)} OR ln.l IN (SELECT t FROM fresh))),
            r AS (SELECT t, seq, unnest(run_ids) AS run FROM s WHERE run_ids IS NOT NULL),
            nr AS (SELECT DISTINCT t, run FROM r WHERE seq > {int(w)}),
            anchor AS (SELECT run, coalesce(min(t) FILTER (WHERE seq <= {int(w)}), min(t)) AS t0 FROM r
                       WHERE run IN (SELECT run FROM nr) GROUP BY run),
            re AS (SELECT nr.t AS x, anchor.t0 AS y FROM nr JOIN anchor USING (run) WHERE nr.t <> anchor.t0)
            SELECT DISTINCT x, y FROM (SELECT x, y FROM pe WHERE sid NOT IN (SELECT span_id FROM amb)
                                       UNION ALL SELECT x, y FROM le UNION ALL SELECT x, y FROM re)""")
        if not edges:
            return
        tids = sorted({t for e in edges for t in e})
        grp = dict(st.fetchall("SELECT otel_trace_id, grp FROM collect_traces WHERE otel_trace_id IN (SELECT unnest(?))",
                               [tids]))
        groups = Groups()  # a group is named by its smallest trace id
        for x, y in edges:
            groups.union(grp.get(x, x), grp.get(y, y))
        find = groups.find
        moved = [(g, find(g)) for g in list(groups) if find(g) != g]
        if moved:
            tb = pa.table({"old": pa.array([m[0] for m in moved], pa.string()),
                           "new": pa.array([m[1] for m in moved], pa.string())})
            with st.registered("_mast_collect_grp", tb):
                st.execute("UPDATE collect_traces SET grp = m.new FROM _mast_collect_grp m WHERE collect_traces.grp = m.old")

    def ready(self, limit: int, final: bool = False, spans: int | None = None,
              exclude: Sequence[str] = ()) -> list[str]:
        """Groups (named by their smallest OTel trace id) ready to build, oldest first,
        after a :meth:`fold`: at most ``limit``, and no more than ``batch_spans`` spans
        (at least one group).  A group is ready when it has spans its stored version has
        not and every trace in it has ended its root or been idle ``idle`` seconds;
        ``final`` (shutting down): only groups whose every root has ended, the others
        stay staged for the next run.  ``exclude``: OTel trace ids of a batch being built
        and not stored yet; no group holding one of them is ready until it is."""
        self.fold()
        if final:
            cond = "bool_and(root_ended)"
            params: list[Any] = []
        else:
            cond = "bool_and(root_ended OR last_seen < ?)"
            params = [_now() - timedelta(seconds=self.idle)]
        busy = ""
        if exclude:
            busy = ("AND grp NOT IN (SELECT DISTINCT grp FROM collect_traces "
                    "WHERE otel_trace_id IN (SELECT unnest(?))) ")
            params = [list(exclude), *params]
        # only the groups with a span not built yet are grouped, not every one staged
        # within the horizon (most of them built already)
        rows = self.store.fetchall(
            "SELECT grp, sum(spans) FROM collect_traces "
            f"WHERE grp IN (SELECT grp FROM collect_traces WHERE spans <> built_spans) {busy}GROUP BY grp "
            f"HAVING {cond} ORDER BY max(last_seen), grp LIMIT {int(limit)}", params)
        out, total = [], 0
        for g, n in rows:
            if out and total + n > (spans or self.batch_spans):
                break
            out.append(g)
            total += n
        return out

    def build(self, group: str) -> BuildReport:
        """Build one group from its staged spans and store it (replacing its older versions)."""
        return self.build_many([group])[0]

    def build_many(self, groups: Sequence[str]) -> list[BuildReport]:
        """Build groups of traces from their staged spans and store them in one
        transaction (one write, one run of the hooks: their fixed cost is paid per batch,
        not per trace).  A group is named by an OTel trace id (its smallest, as
        :meth:`ready` gives them; any member's also finds it)."""
        batch = self.gather(groups)
        if batch is None:
            return []
        return self.commit(batch, map_batch(batch.inputs))

    def gather(self, groups: Sequence[str]) -> Batch | None:
        """What building these groups reads from the store: their members, the versions
        stored of them, their staged span counts and the request bodies holding their spans."""
        if not groups:
            return None
        st = self.store
        names = list(dict.fromkeys(groups))
        named = dict(st.fetchall("SELECT otel_trace_id, grp FROM collect_traces WHERE otel_trace_id IN (SELECT unnest(?))",
                                 [names]))
        names = list(dict.fromkeys(named.get(g, g) for g in names))
        members: dict[str, list[str]] = {g: [] for g in names}
        olds: dict[str, str] = {}
        firsts: list[int | None] = []
        for tid, g, old, first in st.fetchall(
                "SELECT otel_trace_id, grp, stored_trace_id, first_seq FROM collect_traces WHERE grp IN (SELECT unnest(?)) "
                "ORDER BY otel_trace_id", [names]):
            members[g].append(tid)
            firsts.append(first)
            if old:
                olds[tid] = old
        for g in names:
            if not members[g]:
                members[g] = [g]  # not folded yet: itself
                firsts.append(None)
        # the batch's spans arrived at or after its traces' first span: the row groups of
        # collect_spans before that are skipped (unknown first: every row group is read)
        since = f"seq >= {int(min(firsts))} AND " if firsts and None not in firsts else ""
        holds: dict[int, list[str]] = {}
        for req, tid in st.fetchall(
                f"SELECT DISTINCT req, otel_trace_id FROM collect_spans WHERE {since}otel_trace_id IN (SELECT unnest(?)) "
                "AND req IS NOT NULL ORDER BY req, otel_trace_id",
                [[t for g in names for t in members[g]]]):
            holds.setdefault(req, []).append(tid)
        names = self._within(names, members, holds)
        ids = [t for g in names for t in members[g]]
        keep = set(ids)
        holds = {r: kept for r, ts in holds.items() if (kept := [t for t in ts if t in keep])}
        staged = dict(st.fetchall(
            f"SELECT otel_trace_id, count(*) FROM collect_spans WHERE {since}otel_trace_id IN (SELECT unnest(?)) "
            "GROUP BY 1", [ids]))
        # rows staged before m170 carry their own one-span body (and precede every request)
        legacy = [(tid, body) for tid, body in st.fetchall(
            f"SELECT otel_trace_id, body FROM collect_spans WHERE {since}otel_trace_id IN (SELECT unnest(?)) "
            "AND body IS NOT NULL ORDER BY seq", [ids])]
        reqs = list(holds)
        bodies: list[tuple[int, str, bytes]] = []
        for at in range(0, len(reqs), _BODIES_AT_ONCE):
            bodies += st.fetchall(f"SELECT req, fmt, body FROM collect_requests WHERE {_reqs_in(reqs[at:at + _BODIES_AT_ONCE])} "
                                  "ORDER BY req")
        return Batch(names, members, olds, ids, staged,
                     MapInputs([(g, members[g]) for g in names], legacy, bodies, holds, self.system))

    def _within(self, names: list[str], members: dict[str, list[str]], holds: dict[int, list[str]]) -> list[str]:
        """The first groups whose request bodies fit in :data:`BATCH_BODY_BYTES` (at least
        one): a batch's bodies are held at once while it is mapped."""
        of: dict[str, str] = {t: g for g in names for t in members[g]}
        need: dict[str, set[int]] = {}
        for req, ts in holds.items():
            for t in ts:
                need.setdefault(of[t], set()).add(req)
        if not need:
            return names
        size = dict(self.store.fetchall(f"SELECT req, octet_length(body) FROM collect_requests WHERE {_reqs_in(list(holds))}"))
        seen: set[int] = set()
        total, out = 0, []
        for g in names:
            new = need.get(g, set()) - seen
            more = sum(size.get(r, 0) for r in new)
            if out and total + more > BATCH_BODY_BYTES:
                break
            out.append(g)
            seen |= new
            total += more
        return out

    def commit(self, batch: Batch, mapped: Mapped) -> list[BuildReport]:
        """Store what :func:`map_batch` made of a batch, in one transaction, with the
        copy rules and the replacement of older versions applied against the store as it is now."""
        with gc_paused():  # as map_batch: the rows of a batch, no cycles among them
            return self._commit(batch, mapped)

    def _commit(self, batch: Batch, mapped: Mapped) -> list[BuildReport]:
        st = self.store
        names, members, olds, ids, staged = batch.names, batch.members, batch.olds, batch.ids, batch.staged
        reports, traces, failed = [], [], []
        llm: list[tuple[str, int, int]] = []
        only: dict[str, tuple[int, int]] = {}  # LLM-only groups: first start, last end
        empty: set[str] = set()  # groups in which nothing happened
        for g, res in zip(names, mapped.groups):
            mem = members[g]
            rep = BuildReport(g, None, [], sum(staged.get(t, 0) for t in mem), 0, otel_trace_ids=mem)
            reports.append(rep)
            if res.error is not None:
                rep.error = res.error
                failed.append(rep)
                continue
            traces.append((rep, res))
            llm += res.llm
            if res.only is not None:
                only[g] = res.only
            elif res.empty:
                empty.add(g)
        with st.transaction():
            if failed:
                self._mark([(t, staged.get(t, 0), None) for r in failed for t in r.otel_trace_ids],
                           {t: r.error for r in failed for t in r.otel_trace_ids})
            copies.record(st, [m for r, _ in traces for m in r.otel_trace_ids], llm,
                          {m: (r.otel_trace_id in only, r.otel_trace_id in empty)
                           for r, _ in traces for m in r.otel_trace_ids})
            copy_of = copies.copies_in(st, only)
            beside = copies.empty_beside_others(st, sorted(empty))
            dropped = [r for r, _ in traces if r.otel_trace_id in copy_of or r.otel_trace_id in beside]
            for r in dropped:
                r.copy_of = copy_of.get(r.otel_trace_id)
                r.empty = r.otel_trace_id in beside
            traces = [(r, t) for r, t in traces if r.copy_of is None and not r.empty]
            # copies stored before the trace holding them was, and groups in which nothing
            # happened stored while alone: removed as a replaced version is
            late: dict[str, str | None] = dict(copies.earlier_copies(st, [r.otel_trace_id for r, _ in traces],
                                                                     [r.otel_trace_id for r in reports]))
            for g in copies.earlier_empties(st, [r.otel_trace_id for r in reports]):
                late.setdefault(g, None)
            by_grp: dict[str, BuildReport] = {}
            for g, m, old, built in st.fetchall(
                    "SELECT grp, otel_trace_id, stored_trace_id, built_spans FROM collect_traces "
                    "WHERE grp IN (SELECT unnest(?)) ORDER BY otel_trace_id", [list(late)]):
                if g not in by_grp:
                    by_grp[g] = BuildReport(g, None, [], 0, 0, copy_of=late[g], empty=late[g] is None)
                    dropped.append(by_grp[g])
                    reports.append(by_grp[g])
                r = by_grp[g]
                r.otel_trace_ids.append(m)
                r.spans += built
                staged[m] = built  # what was built stays counted: only a new span makes it ready again
                if old:
                    olds[m] = old
            new_ids = {t.trace_id for _, t in traces}
            gone_of = {r.otel_trace_id: sorted({olds[t] for t in r.otel_trace_ids if t in olds} - new_ids)
                       for r in [*(r for r, _ in traces), *dropped]}
            gone = sorted({g for v in gone_of.values() for g in v})
            if gone:
                # an old version another OTel trace still points at (same content) stays;
                # one already gone (removed by the batch before, built beside this one) is not counted again
                used = {r[0] for r in st.fetchall(
                    "SELECT stored_trace_id FROM collect_traces WHERE stored_trace_id IN (SELECT unnest(?)) "
                    "AND otel_trace_id NOT IN (SELECT unnest(?))",
                    [gone, ids + [m for r in by_grp.values() for m in r.otel_trace_ids]])}
                present = {r[0] for r in st.fetchall("SELECT trace_id FROM traces WHERE trace_id IN (SELECT unnest(?))",
                                                     [gone])}
                gone = [g for g in gone if g not in used and g in present]
                labels = dict(st.fetchall(
                    "SELECT trace_id, count(*) FROM (SELECT trace_id FROM annotations WHERE trace_id IN (SELECT unnest(?)) "
                    "UNION ALL SELECT trace_id FROM attributions WHERE trace_id IN (SELECT unnest(?))) GROUP BY 1",
                    [gone, gone]))
                st.delete_traces(gone)
                for r in [*(r for r, _ in traces), *dropped]:
                    r.replaced = [g for g in gone_of[r.otel_trace_id] if g in gone]
                    r.labels_replaced = sum(labels.get(g, 0) for g in r.replaced)
            if traces:
                st.write_tables(mapped.keep([t.index for _, t in traces]), self.hooks)
            self._mark([(m, staged.get(m, 0), t.trace_id) for r, t in traces for m in r.otel_trace_ids]
                       + [(m, staged.get(m, 0), None) for r in dropped for m in r.otel_trace_ids], {},
                       {m: r.copy_of for r in dropped for m in r.otel_trace_ids})
        for rep, t in traces:
            rep.trace_id, rep.steps = t.trace_id, t.steps
        c = self.counters
        c.traces_built += len(traces)
        c.traces_replaced += sum(len(r.replaced) for r, _ in traces)
        c.labels_replaced += sum(r.labels_replaced for r in reports if r.error is None)
        c.build_errors += len(failed)
        c.traces_dropped += len(dropped)
        for rep in reports:
            self._report(rep)
        return reports

    def _mark(self, rows: list[tuple[str, int, str | None]], errors: dict[str, str],
              copy_of: dict[str, str | None] | None = None) -> None:
        """Record what each OTel trace was built into: ``(otel trace id, spans built,
        stored trace id)``, with the error for those that could not be, and for a copy
        of an LLM call (not stored) the group that holds it."""
        if not rows:
            return
        copy_of = copy_of or {}
        tb = pa.table({"otel_trace_id": pa.array([r[0] for r in rows], pa.string()),
                       "built": pa.array([r[1] for r in rows], pa.int32()),
                       "tid": pa.array([r[2] for r in rows], pa.string()),
                       "error": pa.array([errors.get(r[0]) for r in rows], pa.string()),
                       "copy_of": pa.array([copy_of.get(r[0]) for r in rows], pa.string())})
        with self.store.registered("_mast_collect_built", tb):
            if errors:  # a failed build keeps the stored version, if any
                self.store.execute(
                    "UPDATE collect_traces SET built_spans = b.built, error = b.error "
                    "FROM _mast_collect_built b WHERE collect_traces.otel_trace_id = b.otel_trace_id")
            else:
                self.store.execute(
                    "UPDATE collect_traces SET built_spans = b.built, stored_trace_id = b.tid, error = NULL, "
                    "copy_of = b.copy_of FROM _mast_collect_built b WHERE collect_traces.otel_trace_id = b.otel_trace_id")

    def backlog(self) -> int:
        """Spans committed and not built yet: staged since the last fold, and those of
        traces whose stored version lacks them (traces still open among them)."""
        (w,), = self.store.fetchall("SELECT seq FROM collect_folded")
        (n,), = self.store.fetchall(
            "SELECT coalesce(sum(spans - built_spans), 0) FROM collect_traces WHERE spans > built_spans")
        return max(0, self._seq - w) + int(n)

    def build_ready(self, limit: int = 4096, final: bool = False, spans: int | None = None) -> int:
        """Build what is ready (at most ``limit`` groups, ``spans`` or ``batch_spans`` spans); the number of groups."""
        groups = self.ready(limit, final, spans)
        self.build_many(groups)
        self.prune()
        return len(groups)

    def prune(self) -> None:
        """Remove the staged rows of groups settled for longer than the horizon."""
        if self.horizon is not None:
            self.counters.traces_pruned += prune(self.store, self.horizon, _now()).traces

    def _report(self, rep: BuildReport) -> None:
        if self.on_build:
            self.on_build(rep)


@dataclass
class Batch:
    """One build batch as :meth:`Collector.gather` read it."""

    names: list[str]
    members: dict[str, list[str]]
    olds: dict[str, str]
    ids: list[str]
    staged: dict[str, int]
    inputs: MapInputs



class Pipeline:
    """Builds with the mapping in another process: while one batch is mapped there, the
    batch before it is stored here (the store has one writing process; the mapping, 3/4 of
    a build's CPU, needs none).  A batch being mapped holds its groups: none of them is
    ready again until it is stored, so two versions of a group are never built at once.
    ``pool``: a one-process :class:`concurrent.futures.ProcessPoolExecutor`, or None to map
    here; if its process dies, the batch is mapped here and so is every later one."""

    def __init__(self, collector: Collector, pool: Any = None, log: Callable[[str], None] | None = None):
        self.collector = collector
        self.pool = pool
        self.log = log
        self._ahead: tuple[Batch, Any] | None = None  # (batch, its future: None when mapped here)

    def step(self, limit: int = 4096) -> int:
        """Gather the next ready batch and start mapping it, then store the one before;
        the number of groups started or stored (0: nothing to do)."""
        col, ahead = self.collector, self._ahead
        if self.pool is None and ahead is None:
            return col.build_ready(limit)
        groups = col.ready(limit, exclude=ahead[0].ids if ahead else ())
        batch = col.gather(groups)
        self._ahead = (batch, self._submit(batch)) if batch is not None else None
        done = self._store(ahead) if ahead else 0
        col.prune()
        return len(groups) + done

    def drain(self) -> None:
        """Store the batch being mapped, if any."""
        ahead, self._ahead = self._ahead, None
        if ahead:
            self._store(ahead)

    def _submit(self, batch: Batch) -> Any:
        if self.pool is None:
            return None
        try:
            return self.pool.submit(map_batch, batch.inputs)
        except Exception as e:  # the boundary: the pool is shut or broken: map here from now on
            self._lost(e)
            return None

    def _store(self, ahead: tuple[Batch, Any]) -> int:
        batch, fut = ahead
        mapped = None
        if fut is not None:
            from mast.ingest.workers import broken

            try:
                mapped = fut.result()
            except Exception as e:
                if not broken(e):
                    raise
                self._lost(e)
        if mapped is None:
            mapped = map_batch(batch.inputs)
        self.collector.commit(batch, mapped)
        return len(batch.names)

    def _lost(self, e: BaseException) -> None:
        if self.pool is not None and self.log:
            self.log(f"warning: the build process stopped ({type(e).__name__}); building in this process")
        self.pool = None
