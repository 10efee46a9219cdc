"""Arize Phoenix span exports: JSON arrays or JSON Lines of spans as Phoenix returns them.

A Phoenix span (``px.Client().get_spans()``, the REST ``/v1/projects/{id}/spans`` and the
UI's span download) is an OpenInference span with Phoenix's field names::

    {"name": ..., "context": {"trace_id": ..., "span_id": ...}, "span_kind": "LLM",
     "parent_id": ..., "start_time": "2026-07-23T00:00:02+00:00", "end_time": ...,
     "status_code": "OK" | "ERROR" | "UNSET", "status_message": ..., "attributes": {flat},
     "events": [{"name", "timestamp", "attributes"}]}

Unlike the OTel SDK's ``to_json`` there is no ``kind`` and the ids are free-form strings
(Phoenix keeps whatever the exporter sent; fixtures use ``"s01"``).  Accepted files: an
array of spans, one span per line, or an object whose values are arrays of spans (one
group of traces per key).  The spans become the OTel importer's :class:`Span` and go
through the same OpenInference mapping and step builder (``docs/formats/otel.md``), with
``span_kind`` as ``openinference.span.kind`` and an AGENT span's name as its agent when
no attribute names one.

Format notes: docs/formats/spans.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import DeclineDetects, first_json, first_line_object, iter_jsonl, load_json
from mast.ingest.formats.otel.spans import Span, _ns, group_traces
from mast.ingest.formats.otel.steps import build_trace, drop_duplicate_llm_groups
from mast.model import Trace

_KINDS = {"LLM", "TOOL", "AGENT", "CHAIN", "RETRIEVER", "EMBEDDING", "RERANKER", "GUARDRAIL", "EVALUATOR",
          "PROMPT", "DECISION", "UNKNOWN"}
_CTX_RX = re.compile(rb'"context"\s*:\s*\{\s*"trace_id"\s*:')
_SDK_KIND_RX = re.compile(rb'"kind"\s*:\s*"SpanKind\.')
_STATUS = {"OK": "OK", "ERROR": "ERROR", "UNSET": "UNSET", "": "UNSET"}


def looks_like(obj: Any) -> tuple[int, str] | None:
    """None when ``obj`` is a Phoenix span, else how far it got and why not."""
    if not isinstance(obj, dict):
        return 0, "the first record is not a span object"
    ctx = obj.get("context")
    if not isinstance(ctx, dict) or "trace_id" not in ctx or "span_id" not in ctx:
        return 0, "no context.trace_id / context.span_id"
    if "kind" in obj:
        return 2, "has the OTel SDK's kind (an otel span, not Phoenix's)"
    if "span_kind" not in obj and "parent_id" not in obj:
        return 3, "a span context, but no span_kind or parent_id"
    return None


def _flatten(attrs: dict) -> dict:
    """Phoenix's own span JSON keeps attributes nested as its store holds them
    (``{"llm": {"input_messages": [{"message": {...}}]}}``); the REST API flattens them to
    the dotted OpenInference keys the mapping reads.  Nested values become dotted keys (a
    list of objects by index); a list of plain values stays one value."""
    if not any(isinstance(v, dict) or (isinstance(v, list) and v and isinstance(v[0], dict)) for v in attrs.values()):
        return dict(attrs)
    out: dict = {}
    todo = [("", attrs)]
    while todo:  # iterative: an attribute tree is as deep as the exporter made it
        prefix, node = todo.pop()
        items = node.items() if isinstance(node, dict) else ((str(i), v) for i, v in enumerate(node))
        for k, v in items:
            key = f"{prefix}{k}"
            if isinstance(v, dict) or (isinstance(v, list) and v and all(isinstance(x, dict) for x in v)):
                todo.append((key + ".", v))
            else:
                out[key] = v
    return out


def _groups(obj: Any) -> dict[str, list] | None:
    """The span groups of a wrapper object: ``{"data": [...], "next_cursor": ...}`` (the REST
    API's page; the cursor, null or a string, is not spans) or ``{"group": [...], ...}``.
    None when ``obj`` is a span itself or holds no list."""
    if not isinstance(obj, dict) or "context" in obj:
        return None
    groups = {k: v for k, v in obj.items() if isinstance(v, list)}
    if not groups or any(not isinstance(v, (list, str)) and v is not None for v in obj.values()):
        return None
    return groups


def _span(path: Path, where: str, s: Any) -> Span:
    if not isinstance(s, dict):
        raise IngestError(str(path), where, f"expected a span object, found {type(s).__name__}")
    missing = [k for k in ("name", "context", "start_time") if k not in s]
    if missing:
        raise IngestError(str(path), where, "missing required field(s): " + ", ".join(missing))
    ctx = s["context"]
    if not isinstance(ctx, dict) or not ctx.get("trace_id") or not ctx.get("span_id"):
        raise IngestError(str(path), where, "missing required field(s): context.trace_id, context.span_id")
    attrs = s.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise IngestError(str(path), where, "attributes is not an object")
    attrs = _flatten(attrs)
    kind = str(s.get("span_kind") or attrs.get("openinference.span.kind") or "UNKNOWN").upper()
    if kind not in _KINDS:
        raise IngestError(str(path), where, f"unknown span_kind {s.get('span_kind')!r} (newer Phoenix version?)",
                          "Upgrade mast.")
    attrs.setdefault("openinference.span.kind", kind)
    code = str(s.get("status_code") or "UNSET").upper()
    if code not in _STATUS:
        raise IngestError(str(path), where, f"unknown status_code {s.get('status_code')!r}")
    events = []
    for e in s.get("events") or []:
        if not isinstance(e, dict):
            raise IngestError(str(path), where, "an event is not an object")
        events.append({"name": e.get("name"), "time_ns": _ns(path, where, e.get("timestamp"), "event time", False),
                       "attrs": dict(e.get("attributes") or {})})
    parent = s.get("parent_id")
    return Span(trace_id=str(ctx["trace_id"]), span_id=str(ctx["span_id"]),
                parent_id=str(parent) if parent not in (None, "") else None, name=str(s["name"]), kind=kind,
                start_ns=_ns(path, where, s["start_time"], "start_time", True),
                end_ns=_ns(path, where, s.get("end_time"), "end_time", False),
                status=_STATUS[code], status_msg=s.get("status_message") or None, attrs=attrs, events=events,
                links=[], resource={}, scope="phoenix", where=where)


class PhoenixImporter(DeclineDetects):
    name = "phoenix"
    description = "Arize Phoenix span exports: JSON/JSONL spans with context.trace_id, span_kind, flat OpenInference attributes"
    example = '[{"name": "pxi.turn", "context": {"trace_id": "…", "span_id": "s01"}, "span_kind": "AGENT", "parent_id": null, …'

    def decline(self, path: Path, head: bytes) -> tuple[int, str] | None:
        """How far this file got as a Phoenix export, and why it is not one (None: it is)."""
        try:
            obj = first_json(head)
        except ValueError:
            # a first span longer than the head (an LLM span with a long prompt): judge its keys
            if _CTX_RX.search(head) and b'"span_kind"' in head and not _SDK_KIND_RX.search(head):
                return None
            return 0, "the first record is not JSON (or is longer than the head)"
        groups = _groups(obj)
        if groups:
            first = next((g for g in groups.values() if g), None)
            if first:
                obj = first[0]  # {"name of a group": [spans], ...} or the REST API's {"data": [spans]}
        return looks_like(obj)

    def read(self, path: Path) -> Iterator[Trace]:
        spans: list[Span] = []
        one_line = first_line_object(path)
        # a page of the REST API saved on one line is one document, not JSON Lines of spans
        if path.suffix in (".jsonl", ".ndjson") or (one_line is not None and (one_line[1] or _groups(one_line[0]) is None)):
            for i, obj in iter_jsonl(path):
                for key, group in (_groups(obj) or {"": [obj]}).items():
                    for j, s in enumerate(group):
                        spans.append(_span(path, f"line {i + 1}" + (f", {key}[{j}]" if key else ""), s))
        else:
            data = load_json(path)
            if isinstance(data, list):
                groups = {"": data}
            elif isinstance(data, dict) and "context" in data:
                groups = {"": [data]}
            elif _groups(data):
                groups = _groups(data)
            else:
                raise IngestError(str(path), None, f"expected a JSON array of Phoenix spans, found {type(data).__name__}")
            for key, group in groups.items():
                for i, s in enumerate(group):
                    spans.append(_span(path, f"{key}[{i}]" if key else str(i), s))
        if not spans:
            raise IngestError(str(path), None, "no spans in file")
        for idx, g in enumerate(drop_duplicate_llm_groups(group_traces(spans))):
            yield build_trace(path, idx, g, source_format=self.name, name_agents=True)

