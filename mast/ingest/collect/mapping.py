"""Mapping a build batch of staged spans to traces: no store, so that it can run in a
process of its own (:class:`~mast.ingest.collect.staging.Pipeline`) while the batch before
it is stored.

What it is given (:class:`MapInputs`) was read from the store by
:meth:`~mast.ingest.collect.staging.Collector.gather`: the groups of OTel traces, and the
request bodies holding their spans.  What it gives back (:class:`Mapped`) is, per group, the
error that refused it or its trace's id, step count and what the copy rules need, and the
traces encoded for the store (:func:`mast.store.encode.encode_traces`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mast.errors import IngestError, MastError
from mast.ingest._util import gc_paused
from mast.ingest.collect import copies
from mast.ingest.collect.proto import decode_request, request_spans
from mast.ingest.formats.otel.spans import Span, _id, load_doc_spans
from mast.ingest.formats.otel.steps import build_otlp_trace, nothing_happened

#: ``source_path`` of collected traces: the endpoint's scheme and the OTel trace id
SOURCE_PREFIX = "otlp:"


def spans_of(doc: Any, where: str = "request"):
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


@dataclass
class MapInputs:
    """What mapping a batch needs, read from the store (picklable)."""

    #: (group, its member OTel trace ids), in build order
    groups: list[tuple[str, list[str]]]
    #: (trace id, one-span OTLP/JSON body) of rows staged before m170, in arrival order
    legacy: list[tuple[str, Any]]
    #: (request number, "protobuf" or "json", body), in arrival order
    bodies: list[tuple[int, str, bytes]]
    #: the batch's trace ids each request holds (to name them if it cannot be read)
    holds: dict[int, list[str]]
    system: str | None


@dataclass
class Mapped1:
    """One group mapped: the error that refused it, or its trace's id and step count, its
    LLM spans (the copy rules), the span of time of an LLM-only group and whether nothing
    happened in it; ``index``: its trace's row in :attr:`Mapped.tables`."""

    error: str | None = None
    trace_id: str | None = None
    steps: int = 0
    llm: list[tuple[str, int, int]] = field(default_factory=list)
    only: tuple[int, int] | None = None
    empty: bool = False
    index: int = -1


@dataclass
class Mapped:
    """A batch mapped (:func:`map_batch`): one entry per group, and the traces encoded."""

    groups: list[Mapped1]
    tables: Any = None  # TraceTables of the groups that were mapped, in order

    def keep(self, rows: list[int]) -> Any:
        """The encoded traces of these rows (in order): those that are stored."""
        if len(rows) == self.tables.traces.num_rows:
            return self.tables
        from mast.store.encode import TraceTables

        runs: list[tuple[int, int]] = []  # consecutive rows as (start, count)
        for r in rows:
            if runs and runs[-1][0] + runs[-1][1] == r:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((r, 1))
        return TraceTables.concat([self.tables.select(a, n) for a, n in runs])


def warm() -> None:
    """Load what :func:`map_batch` needs (in a build process, before any batch comes)."""
    from mast._arrow import pa  # noqa: F401
    from mast.store import encode  # noqa: F401


def map_batch(inp: MapInputs) -> Mapped:
    """Read the batch's spans from the request bodies, build each group's trace with the
    otel importer's mapping (trace ids included) and encode them for the store."""
    # a batch allocates some hundred thousand objects without cycles (spans, attribute
    # dicts, steps, Arrow rows): the collector's passes over them were a fifth of the build
    with gc_paused():
        return _map(inp)


def _map(inp: MapInputs) -> Mapped:
    from mast.store.encode import encode_traces

    spans, errors = _read_spans(inp)
    out, traces = [], []
    for g, mem in inp.groups:
        try:
            err = next((errors[t] for t in mem if t in errors), None)
            if err is not None:
                raise err
            # arrival order, then by start: ties keep the order the spans came in, as a file's do
            group = sorted((sp for t in mem for sp in spans[t].values()), key=lambda s: s.start_ns)
            trace = build_otlp_trace(Path(SOURCE_PREFIX + g), 0, group)
            if inp.system and not trace.system:
                trace.system = inp.system
            trace.finalise()
        except (MastError, ValueError) as e:
            out.append(Mapped1(error=str(e)))
            continue
        rows, llm_only = copies.llm_spans(group)
        out.append(Mapped1(None, trace.trace_id, len(trace.steps), rows,
                           (min(s.start_ns for s in group), max(s.end_ns or s.start_ns for s in group))
                           if llm_only else None,
                           not llm_only and nothing_happened(group), len(traces)))
        traces.append(trace)
    return Mapped(out, encode_traces(traces) if traces else None)


def _read_spans(inp: MapInputs) -> tuple[dict[str, dict[str, Span]], dict[str, Exception]]:
    """The batch's spans (by span id: a span sent twice, by a retried export, counts once)
    and, for a trace with a span the importer refuses, why.  Each request is parsed once
    for the whole batch; only the spans of its traces become objects."""
    ids = [t for _, mem in inp.groups for t in mem]
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

    for i, (tid, body) in enumerate(inp.legacy):
        add(tid, json.loads(body), f"span {i}: ")
    for req, fmt, body in inp.bodies:
        try:
            found = request_spans(body, want, f"request {req}, ", SOURCE_PREFIX) if fmt == "protobuf" else None
            if found is None:
                doc = decode_request(body) if fmt == "protobuf" else json.loads(body)
                for ws, tid, one in ((ws, tid, one) for ws, tid, _, one in spans_of(doc, f"request {req}")):
                    if tid in want:
                        add(tid, one, f"request {req}, {ws}")
                continue
        except (MastError, ValueError) as e:  # checked when received: only a damaged store gets here
            for tid in inp.holds.get(req, ()):
                errors.setdefault(tid, e)
            continue
        for tid, sp in found:
            if tid in errors:
                continue
            if isinstance(sp, Exception):
                errors[tid] = sp
            else:
                spans[tid][sp.span_id] = sp
    return spans, errors
