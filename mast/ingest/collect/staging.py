"""Spans staged in the store as they arrive, and traces built from them when complete.

The open traces live in the store, not in Python: memory stays bounded whatever the
number of open traces, and a span acknowledged to the exporter is already committed.
A request is staged as its body (``collect_requests``) and one index row per span
(``collect_spans``: trace id, span id, arrival order, ended root; migrations m120, m170);
the per-trace counts in ``collect_traces`` are brought up to date by :meth:`Collector.fold`
before each look for ready traces, so that acknowledging a request only appends rows.

A trace is *ready* when it has spans its stored version does not (``spans <>
built_spans``) and either its root span has ended or no span came for ``idle`` seconds.
It is then built from all its staged spans by the otel importer's mapping (the same
``build_otlp_trace`` as ``mast ingest`` of the spans as an OTLP file) and written on the
store's one write path with the caller's write hooks.  A trace that grows after it was
built (late spans) is built again; the new version, whose content hash differs, replaces
the old one in the same transaction (:meth:`Store.delete_traces`: its steps, labels and
derived rows go with it), and ``collect_traces.stored_trace_id`` follows it.  Staged spans are
kept, so a later span can always rebuild the whole trace.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pyarrow as pa

from mast.errors import IngestError, MastError
from mast.ingest.collect.proto import decode_request, span_docs
# _id: the file importer's id rule (hex or base64, 8/16 bytes), so both read ids alike
from mast.ingest.formats.otel.spans import Span, _id, load_doc_spans
from mast.ingest.formats.otel.steps import build_otlp_trace
from mast.store import Store, WriteHook

#: ``source_path`` of collected traces: the endpoint's scheme and the OTel trace id
SOURCE_PREFIX = "otlp:"


@dataclass(frozen=True, slots=True)
class Staged:
    """One received request, checked and indexed, as it is staged: its body (decompressed)
    and, per span in document order, the trace id, span id and whether it is an ended root."""

    fmt: str  # "protobuf" or "json"
    body: bytes
    trace_ids: list[str]
    span_ids: list[str]
    roots: list[bool]

    def __len__(self) -> int:
        return len(self.span_ids)


@dataclass
class BuildReport:
    otel_trace_id: str
    trace_id: str | None
    replaced: str | None
    spans: int
    steps: int
    error: str | None = None


@dataclass
class Counters:
    requests: int = 0
    spans: int = 0
    traces_built: int = 0
    traces_replaced: int = 0
    build_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def _spans_of(doc: Any, where: str = "request"):
    """``(where, trace id, span object, the span as a document of its own)`` for each span
    of an OTLP/JSON request, with the structure checked down to the span."""
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
        raise IngestError(where, None, "not an OTLP ExportTraceServiceRequest (no resourceSpans list)")
    path = Path(where)
    for i, rs in enumerate(doc["resourceSpans"]):
        w = f"resourceSpans[{i}]"
        if not isinstance(rs, dict):
            raise IngestError(where, w, "expected a ResourceSpans object")
        resource = rs.get("resource") or {}
        sss = rs.get("scopeSpans", rs.get("instrumentationLibrarySpans"))
        if not isinstance(sss, list):
            raise IngestError(where, w, "missing required field: scopeSpans")
        for j, ss in enumerate(sss):
            if not isinstance(ss, dict) or not isinstance(ss.get("spans") or [], list):
                raise IngestError(where, f"{w}.scopeSpans[{j}]", "expected a ScopeSpans object with a spans list")
            scope = ss.get("scope") or ss.get("instrumentationLibrary") or {}
            for k, sp in enumerate(ss.get("spans") or []):
                ws = f"{w}.scopeSpans[{j}].spans[{k}]"
                if not isinstance(sp, dict):
                    raise IngestError(where, ws, "expected a span object")
                for req in ("traceId", "spanId", "name"):
                    if req not in sp:
                        raise IngestError(where, ws, f"missing required field: {req}")
                # a span object with its resource and scope is a document the importer reads alone
                yield ws, _id(path, ws, sp["traceId"], "traceId"), sp, dict(sp, resource=resource, scope=scope)


def index_json(doc: Any, where: str = "request") -> tuple[list[str], list[str], list[bool]]:
    """Index the spans of one OTLP/JSON request as :func:`index_request` does a protobuf
    one: the structure and the ids are checked here (an :class:`IngestError` names the
    span); the rest of each span is checked when its trace is built."""
    tids: list[str] = []
    sids: list[str] = []
    roots: list[bool] = []
    path = Path(where)
    for ws, tid, sp, _ in _spans_of(doc, where):
        tids.append(tid)
        sids.append(_id(path, ws, sp["spanId"], "spanId"))
        roots.append(_id(path, ws, sp.get("parentSpanId"), "parentSpanId", False) is None
                     and sp.get("endTimeUnixNano") not in (None, "", 0, "0"))
    return tids, sids, roots


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Collector:
    """Stages spans and builds ready traces: from one thread, or (after :meth:`open_stager`)
    staging from one thread and building from another."""

    def __init__(self, store: Store, hooks: Sequence[WriteHook] = (), idle: float = 30.0,
                 system: str | None = None, on_build: Callable[[BuildReport], None] | None = None):
        self.store = store
        self.hooks = list(hooks)
        self.idle = idle
        self.system = system
        self.on_build = on_build
        self.counters = Counters()
        #: the connection requests are committed on (the builder's own, unless split)
        self._stager: Store = store
        row = store.fetchall("SELECT coalesce(max(seq), 0), coalesce(max(req), 0) FROM collect_spans")
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
        })
        bodies = pa.table({"req": pa.array(range(req0 + 1, req0 + 1 + len(reqs)), pa.int64()),
                           "fmt": pa.array([r.fmt for r in reqs], pa.string()),
                           "body": pa.array([r.body for r in reqs], pa.binary())})
        st = self._stager
        with st.registered("_mast_collect_in", spans), st.registered("_mast_collect_req", bodies), st.transaction():
            st.execute("INSERT INTO collect_requests SELECT req, fmt, body FROM _mast_collect_req")
            st.execute("INSERT INTO collect_spans (otel_trace_id, span_id, seq, req, root_ended) "
                       "SELECT otel_trace_id, span_id, seq, req, root_ended FROM _mast_collect_in")
        self._seq += n
        self._req += len(reqs)
        return n

    def fold(self) -> int:
        """Count the spans staged since the last fold into ``collect_traces`` (spans,
        root ended, last seen: now); the number of spans folded."""
        st = self.store
        top = self._seq  # read once: the stager moves it on after each commit
        (w,), = st.fetchall("SELECT seq FROM collect_folded")
        if w >= top:
            return 0
        now = _now()
        with st.transaction():
            st.execute(
                "INSERT INTO collect_traces SELECT otel_trace_id, ?, ?, count(*), bool_or(coalesce(root_ended, false)), "
                "0, NULL, NULL FROM collect_spans WHERE seq > ? AND seq <= ? GROUP BY otel_trace_id "
                "ON CONFLICT (otel_trace_id) DO UPDATE SET last_seen = excluded.last_seen, "
                "spans = collect_traces.spans + excluded.spans, "
                "root_ended = collect_traces.root_ended OR excluded.root_ended", [now, now, w, top])
            st.execute("UPDATE collect_folded SET seq = ?", [top])
        return top - w

    def ready(self, limit: int, final: bool = False) -> list[str]:
        """OTel trace ids ready to build, oldest first, after a :meth:`fold`.  ``final``
        (shutting down): only traces whose root ended; the others stay staged for the next run."""
        self.fold()
        if final:
            cond = "root_ended"
            params: list[Any] = []
        else:
            cond = "(root_ended OR last_seen < ?)"
            params = [_now() - timedelta(seconds=self.idle)]
        return [r[0] for r in self.store.fetchall(
            f"SELECT otel_trace_id FROM collect_traces WHERE spans <> built_spans AND {cond} "
            f"ORDER BY last_seen LIMIT {int(limit)}", params)]

    def build(self, otel_trace_id: str) -> BuildReport:
        """Build one trace from its staged spans and store it (replacing its older version)."""
        return self.build_many([otel_trace_id])[0]

    def build_many(self, otel_trace_ids: Sequence[str]) -> list[BuildReport]:
        """Build traces from their staged spans and store them in one transaction (one
        write, one run of the hooks: their fixed cost is paid per batch, not per trace)."""
        if not otel_trace_ids:
            return []
        ids = list(otel_trace_ids)
        staged = dict(self.store.fetchall(
            "SELECT otel_trace_id, count(*) FROM collect_spans WHERE otel_trace_id IN (SELECT unnest(?)) GROUP BY 1",
            [ids]))
        olds = dict(self.store.fetchall(
            "SELECT otel_trace_id, stored_trace_id FROM collect_traces WHERE otel_trace_id IN (SELECT unnest(?))", [ids]))
        spans, errors = self._load_spans(ids)
        reports, traces, failed = [], [], []
        for tid in ids:
            source = SOURCE_PREFIX + tid
            rep = BuildReport(tid, None, None, staged.get(tid, 0), 0)
            reports.append(rep)
            try:
                if tid in errors:
                    raise errors[tid]
                trace = build_otlp_trace(Path(source), 0, sorted(spans[tid].values(), key=lambda s: s.start_ns))
                if self.system and not trace.system:
                    trace.system = self.system
                trace.finalise()
            except (MastError, ValueError) as e:
                rep.error = str(e)
                failed.append(rep)
                continue
            traces.append((rep, trace))
        with self.store.transaction():
            for rep in failed:
                self.store.execute("UPDATE collect_traces SET built_spans = ?, error = ? WHERE otel_trace_id = ?",
                                   [rep.spans, rep.error, rep.otel_trace_id])
            new_ids = {t.trace_id for _, t in traces}
            gone = [olds[r.otel_trace_id] for r, t in traces
                    if olds.get(r.otel_trace_id) and olds[r.otel_trace_id] != t.trace_id
                    and olds[r.otel_trace_id] not in new_ids]
            if gone:
                # an old version another OTel trace still points at (same content) stays
                used = {r[0] for r in self.store.fetchall(
                    "SELECT stored_trace_id FROM collect_traces WHERE stored_trace_id IN (SELECT unnest(?)) "
                    "AND otel_trace_id NOT IN (SELECT unnest(?))", [gone, ids])}
                gone = [g for g in gone if g not in used]
                self.store.delete_traces(gone)
                for r, _ in traces:
                    if olds.get(r.otel_trace_id) in gone:
                        r.replaced = olds[r.otel_trace_id]
            if traces:
                self.store.write_traces([t for _, t in traces], self.hooks)
                tb = pa.table({"otel_trace_id": pa.array([r.otel_trace_id for r, _ in traces], pa.string()),
                               "built": pa.array([r.spans for r, _ in traces], pa.int32()),
                               "tid": pa.array([t.trace_id for _, t in traces], pa.string())})
                with self.store.registered("_mast_collect_built", tb):
                    self.store.execute(
                        "UPDATE collect_traces SET built_spans = b.built, stored_trace_id = b.tid, error = NULL "
                        "FROM _mast_collect_built b WHERE collect_traces.otel_trace_id = b.otel_trace_id")
        for rep, t in traces:
            rep.trace_id, rep.steps = t.trace_id, len(t.steps)
        c = self.counters
        c.traces_built += len(traces)
        c.traces_replaced += sum(bool(r.replaced) for r, _ in traces)
        c.build_errors += len(failed)
        for rep in reports:
            self._report(rep)
        return reports

    def _load_spans(self, ids: Sequence[str]) -> tuple[dict[str, dict[str, Span]], dict[str, Exception]]:
        """The staged spans of these traces (by span id: a span sent twice, by a retried
        export, counts once) and, for a trace with a span the importer refuses, why.
        Requests are read and decoded one at a time, in arrival order, and only the spans
        of these traces kept: memory is bounded by a batch of traces and one body."""
        want = set(ids)
        spans: dict[str, dict[str, Span]] = {t: {} for t in ids}
        errors: dict[str, Exception] = {}

        def add(tid: str, doc: Any, where: str) -> None:
            if tid in errors:
                return
            try:
                for sp in load_doc_spans(Path(SOURCE_PREFIX + tid), doc, where):
                    spans[tid][sp.span_id] = sp
            except (MastError, ValueError) as e:
                errors[tid] = e

        # rows staged before m170 carry their own one-span body (and precede every request)
        for i, (tid, body) in enumerate(self.store.fetchall(
                "SELECT otel_trace_id, body FROM collect_spans WHERE otel_trace_id IN (SELECT unnest(?)) "
                "AND body IS NOT NULL ORDER BY seq", [ids])):
            add(tid, json.loads(body), f"span {i}: ")
        reqs = [r[0] for r in self.store.fetchall(
            "SELECT DISTINCT req FROM collect_spans WHERE otel_trace_id IN (SELECT unnest(?)) AND req IS NOT NULL "
            "ORDER BY req", [ids])]
        for req in reqs:
            fmt, body = self.store.fetchall("SELECT fmt, body FROM collect_requests WHERE req = ?", [req])[0]
            try:
                found = span_docs(body, want) if fmt == "protobuf" else None
                if found is None:
                    doc = decode_request(body) if fmt == "protobuf" else json.loads(body)
                    found = [(ws, tid, one) for ws, tid, _, one in _spans_of(doc, f"request {req}")]
            except (MastError, ValueError) as e:  # checked when received: only a damaged store gets here
                for (tid,) in self.store.fetchall("SELECT DISTINCT otel_trace_id FROM collect_spans WHERE req = ?", [req]):
                    if tid in want:
                        errors.setdefault(tid, e)
                continue
            for ws, tid, one in found:
                if tid in want:
                    add(tid, one, f"request {req}, {ws}")
        return spans, errors

    def build_ready(self, limit: int = 256, final: bool = False) -> int:
        ids = self.ready(limit, final)
        self.build_many(ids)
        return len(ids)

    def _report(self, rep: BuildReport) -> None:
        if self.on_build:
            self.on_build(rep)
