"""Nested span-tree dumps, as OpenInference-based evaluation sets publish their traces.

One trace per document: ``{"trace_id": ..., "spans": [span, ...]}`` where a span is::

    {"span_id", "parent_span_id", "span_name", "span_kind": "Internal",
     "timestamp": "2025-03-19T16:40:46.830526Z", "duration": "PT1M48.7S",
     "status_code": "Unset" | "Ok" | "Error", "status_message",
     "span_attributes": {flat OpenInference attributes}, "resource_attributes",
     "service_name", "scope_name", "events": [...], "links": [...], "logs": [...],
     "child_spans": [span, ...]}

(TRAIL, Patronus AI 2025, publishes its GAIA and SWE-bench smolagents traces this way.)
A file holds one document, a JSON array of them, or one per line.  The tree is
flattened into the OTel importer's :class:`Span` (``timestamp`` + ISO-8601 ``duration``
give start and end) and read by the same OpenInference mapping and step builder
(``docs/formats/otel.md``); an AGENT span's name is its agent when no attribute names
one, so a smolagents manager and its managed agents are told apart, and the call of a
managed agent is a handoff.  ``logs`` are kept only as a count (they hold the harness's
function calls, not the agents' work).

Format notes: docs/formats/spans.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import DeclineDetects, documents, first_char, strip_bom
from mast.ingest.formats.otel.spans import Span, _ns
from mast.ingest.formats.otel.steps import build_trace
from mast.model import Trace

_DUR_RX = re.compile(r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
_STATUS = {"UNSET": "UNSET", "OK": "OK", "ERROR": "ERROR"}
_HEAD_RX = re.compile(rb'^\s*\[?\s*\{\s*"(trace_id|spans)"\s*:')


def duration_ns(v: Any) -> int | None:
    """ISO-8601 duration (``PT1M48.7S``, ``P1DT2H``) → nanoseconds; None when absent."""
    if v in (None, ""):
        return None
    m = _DUR_RX.match(str(v).strip())
    if not m or str(v).strip() in ("P", "PT"):
        raise ValueError(f"duration {v!r} is not an ISO-8601 duration")
    d, h, mi, s = (float(x) if x else 0.0 for x in m.groups())
    return round((((d * 24 + h) * 60 + mi) * 60 + s) * 1e9)


def _get(d: dict, *keys: str) -> Any:
    for k in keys:
        if k in d:
            return d[k]
    return None


class SpanTreeImporter(DeclineDetects):
    name = "spantree"
    description = "Nested span-tree dumps {trace_id, spans: [{span_id, span_name, span_attributes, child_spans}]} (TRAIL)"
    example = '{"trace_id": "…", "spans": [{"span_id": "…", "parent_span_id": null, "span_name": "main", "child_spans": […'

    def decline(self, path: Path, head: bytes) -> tuple[int, str] | None:
        """How far this file got as a span-tree dump, and why it is not one (None: it is)."""
        if first_char(head) not in "[{":
            return 0, "not JSON"
        body = strip_bom(head)
        if not _HEAD_RX.match(body) or b'"spans"' not in body:
            return (1 if b'"trace_id"' in body else 0), "no {trace_id, spans} document"
        if b'"span_name"' not in body and b'"child_spans"' not in body:
            return 2, "a {trace_id, spans} document whose spans have no span_name / child_spans"
        return None

    def read(self, path: Path) -> Iterator[Trace]:
        for i, doc in documents(path):
            yield self._trace(path, i, doc)

    def _trace(self, path: Path, index: int, doc: Any) -> Trace:
        if not isinstance(doc, dict):
            raise IngestError(str(path), index, f"expected a {{trace_id, spans}} object, found {type(doc).__name__}")
        missing = [k for k in ("trace_id", "spans") if k not in doc]
        if missing:
            raise IngestError(str(path), index, "missing required field(s): " + ", ".join(missing))
        if not isinstance(doc["spans"], list):
            raise IngestError(str(path), index, "field spans is not a list")
        tid = str(doc["trace_id"])
        spans: list[Span] = []
        logs = 0
        # iterative walk: TRAIL's SWE-bench trees are deep enough to matter for recursion
        stack = [(s, None, f"{index}, spans[{j}]") for j, s in reversed(list(enumerate(doc["spans"])))]
        while stack:
            s, parent, where = stack.pop()
            sp = self._span(path, where, s, tid, parent)
            spans.append(sp)
            logs += len(s.get("logs") or [])
            kids = s.get("child_spans") or []
            if not isinstance(kids, list):
                raise IngestError(str(path), where, "child_spans is not a list")
            stack.extend((c, sp.span_id, f"{where}.child_spans[{k}]") for k, c in reversed(list(enumerate(kids))))
        if not spans:
            raise IngestError(str(path), index, "trace has no spans")
        t = build_trace(path, index, spans, source_format=self.name, name_agents=True)
        t.metadata["source_id"] = [tid]
        if logs:
            t.metadata["logs"] = logs
        return t

    def _span(self, path: Path, where: str, s: Any, tid: str, parent: str | None) -> Span:
        if not isinstance(s, dict):
            raise IngestError(str(path), where, f"expected a span object, found {type(s).__name__}")
        missing = [k for k in ("span_id", "span_name", "timestamp") if k not in s]
        if missing:
            raise IngestError(str(path), where, "missing required field(s): " + ", ".join(missing))
        attrs = s.get("span_attributes") or {}
        if not isinstance(attrs, dict):
            raise IngestError(str(path), where, "span_attributes is not an object")
        code = str(s.get("status_code") or "UNSET").upper().replace("STATUS_CODE_", "")
        if code not in _STATUS:
            raise IngestError(str(path), where, f"unknown status_code {s.get('status_code')!r} (newer format?)",
                              "Upgrade mast.")
        start = _ns(path, where, s["timestamp"], "timestamp", True)
        try:
            dur = duration_ns(s.get("duration"))
        except ValueError as e:
            raise IngestError(str(path), where, str(e)) from None
        events = []
        for e in s.get("events") or []:
            if not isinstance(e, dict):
                raise IngestError(str(path), where, "an event is not an object")
            events.append({"name": _get(e, "name", "Name"),
                           "time_ns": _ns(path, where, _get(e, "timestamp", "Timestamp"), "event time", False),
                           "attrs": dict(_get(e, "attributes", "Attributes") or {})})
        res = s.get("resource_attributes") if isinstance(s.get("resource_attributes"), dict) else {}
        if s.get("service_name") and "service.name" not in res:
            res = {**res, "service.name": s["service_name"]}
        pid = s.get("parent_span_id") or parent
        return Span(trace_id=tid, span_id=str(s["span_id"]), parent_id=str(pid) if pid else None,
                    name=str(s["span_name"]), kind=str(s.get("span_kind") or "").upper(), start_ns=start,
                    end_ns=start + dur if dur is not None else None, status=_STATUS[code],
                    status_msg=s.get("status_message") or None, attrs=dict(attrs), events=events, links=[],
                    resource=res, scope=s.get("scope_name"), where=where)
