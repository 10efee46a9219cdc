"""Spans staged in the store as they arrive, and traces built from them when complete.

The open traces live in ``collect_spans`` / ``collect_traces`` (migration m120), not in
Python: memory stays bounded whatever the number of open traces, and a span acknowledged
to the exporter is already committed.

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
from mast.ingest.formats.otel.spans import Span, load_doc_spans
from mast.ingest.formats.otel.steps import build_otlp_trace
from mast.store import Store, WriteHook

#: ``source_path`` of collected traces: the endpoint's scheme and the OTel trace id
SOURCE_PREFIX = "otlp:"


@dataclass(frozen=True, slots=True)
class SpanRow:
    """One received span, checked, as it is staged."""

    otel_trace_id: str
    span_id: str
    root_ended: bool
    body: str


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


def rows_of(doc: Any, where: str = "request") -> list[SpanRow]:
    """The spans of one OTLP/JSON request document, checked as ``mast ingest`` checks a
    file's (an :class:`IngestError` names the span), one staged row per span.  Each row's
    body is a one-span OTLP request, so a staged span is read back by the same code."""
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans"), list):
        raise IngestError(where, None, "not an OTLP ExportTraceServiceRequest (no resourceSpans list)")
    spans = load_doc_spans(Path(where), doc)  # raises on anything the importer would refuse
    rows: list[SpanRow] = []
    k = 0
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for rs in doc["resourceSpans"]:
        resource = (rs or {}).get("resource") or {}
        for ss in (rs or {}).get("scopeSpans", (rs or {}).get("instrumentationLibrarySpans")) or []:
            scope = (ss or {}).get("scope") or (ss or {}).get("instrumentationLibrary") or {}
            for s in (ss or {}).get("spans") or []:
                sp = spans[k]
                k += 1
                body = dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [
                    {"scope": scope, "spans": [s]}]}]})
                rows.append(SpanRow(sp.trace_id, sp.span_id, sp.parent_id is None and sp.end_ns is not None, body))
    return rows


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Collector:
    """Stages spans and builds ready traces; used by one thread (it owns the store)."""

    def __init__(self, store: Store, hooks: Sequence[WriteHook] = (), idle: float = 30.0,
                 system: str | None = None, on_build: Callable[[BuildReport], None] | None = None):
        self.store = store
        self.hooks = list(hooks)
        self.idle = idle
        self.system = system
        self.on_build = on_build
        self.counters = Counters()
        row = store.fetchall("SELECT coalesce(max(seq), 0) FROM collect_spans")
        self._seq = int(row[0][0])

    def stage(self, batches: Iterable[Sequence[SpanRow]]) -> int:
        """Commit the rows of several requests in one transaction; returns the span count."""
        rows = [r for b in batches for r in b]
        if not rows:
            return 0
        seq0 = self._seq
        tb = pa.table({
            "otel_trace_id": pa.array([r.otel_trace_id for r in rows], pa.string()),
            "span_id": pa.array([r.span_id for r in rows], pa.string()),
            "seq": pa.array(range(seq0 + 1, seq0 + 1 + len(rows)), pa.int64()),
            "root_ended": pa.array([r.root_ended for r in rows], pa.bool_()),
            "body": pa.array([r.body for r in rows], pa.string()),
        })
        now = _now()
        with self.store.registered("_mast_collect_in", tb), self.store.transaction():
            self.store.execute("INSERT INTO collect_spans SELECT otel_trace_id, span_id, seq, body FROM _mast_collect_in")
            self.store.execute(
                "INSERT INTO collect_traces SELECT otel_trace_id, ?, ?, count(*), bool_or(root_ended), 0, NULL, NULL "
                "FROM _mast_collect_in GROUP BY otel_trace_id "
                "ON CONFLICT (otel_trace_id) DO UPDATE SET last_seen = excluded.last_seen, "
                "spans = collect_traces.spans + excluded.spans, "
                "root_ended = collect_traces.root_ended OR excluded.root_ended", [now, now])
        self._seq += len(rows)
        return len(rows)

    def ready(self, limit: int, final: bool = False) -> list[str]:
        """OTel trace ids ready to build, oldest first.  ``final`` (shutting down): only
        traces whose root ended; the others stay staged for the next run."""
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
        bodies: dict[str, list[str]] = {t: [] for t in ids}
        for tid, body in self.store.fetchall(
                "SELECT otel_trace_id, body FROM collect_spans WHERE otel_trace_id IN (SELECT unnest(?)) "
                "ORDER BY seq", [ids]):
            bodies[tid].append(body)
        olds = dict(self.store.fetchall(
            "SELECT otel_trace_id, stored_trace_id FROM collect_traces WHERE otel_trace_id IN (SELECT unnest(?))", [ids]))
        reports, traces, failed = [], [], []
        for tid in ids:
            source = SOURCE_PREFIX + tid
            rep = BuildReport(tid, None, None, len(bodies[tid]), 0)
            reports.append(rep)
            spans: dict[str, Span] = {}
            try:
                for i, body in enumerate(bodies[tid]):
                    for sp in load_doc_spans(Path(source), json.loads(body), f"span {i}: "):
                        spans[sp.span_id] = sp  # a span sent twice (a retried export) counts once
                trace = build_otlp_trace(Path(source), 0, sorted(spans.values(), key=lambda s: s.start_ns))
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

    def build_ready(self, limit: int = 256, final: bool = False) -> int:
        ids = self.ready(limit, final)
        self.build_many(ids)
        return len(ids)

    def _report(self, rep: BuildReport) -> None:
        if self.on_build:
            self.on_build(rep)
