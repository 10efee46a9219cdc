"""Arize Phoenix span exports: JSON arrays or JSON Lines of spans as Phoenix returns them.

A Phoenix span (``px.Client().get_spans()``, the REST ``/v1/projects/{id}/spans`` and the
UI's JSONL download) is an OpenInference span with Phoenix's field names::

    {"name": ..., "context": {"trace_id": ..., "span_id": ...}, "span_kind": "LLM",
     "parent_id": ..., "start_time": "2026-07-23T00:00:02+00:00", "end_time": ...,
     "status_code": "OK" | "ERROR" | "UNSET", "status_message": ..., "attributes": {flat},
     "events": [{"name", "timestamp", "attributes"}]}

Unlike the OTel SDK's ``to_json`` there is no ``kind`` and the ids are free-form strings
(Phoenix keeps whatever the exporter sent; fixtures use ``"s01"``).  Accepted files: an
array of spans, one span per line, or an object whose values are arrays of spans (one
group of traces per key).  The REST API's other span route, ``/spans/otlpv1``, and the UI's
"OTLP JSON" download give the same spans in OTLP shape (:mod:`.phoenix_otlp`); pages of
either kind, one per line or a JSON array of them, are one export: its spans are grouped
by trace id whatever page they came on.  The spans become the OTel importer's :class:`Span` and go
through the same OpenInference mapping and step builder (``docs/formats/otel.md``), with
``span_kind`` as ``openinference.span.kind`` and an AGENT span's name as its agent when
no attribute names one.

Format notes: docs/formats/spans.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator, Sequence

from mast.errors import IngestError
from mast.ingest._util import DeclineDetects, first_char, first_json, first_line_object, iter_jsonl, load_json, strip_bom
from mast.ingest.formats.otel.phoenix_otlp import is_otlp_span, otlp_span
from mast.ingest.formats.otel.spans import Span, _ns, covered, group_traces, span_union
from mast.ingest.formats.otel.steps import build_trace, drop_duplicate_llm_groups
from mast.model import Trace

_KINDS = {"LLM", "TOOL", "AGENT", "CHAIN", "RETRIEVER", "EMBEDDING", "RERANKER", "GUARDRAIL", "EVALUATOR",
          "PROMPT", "DECISION", "UNKNOWN"}
_CTX_RX = re.compile(rb'"context"\s*:\s*\{\s*"trace_id"\s*:')
_SDK_KIND_RX = re.compile(rb'"kind"\s*:\s*"SpanKind\.')
_STATUS = {"OK": "OK", "ERROR": "ERROR", "UNSET": "UNSET", "": "UNSET"}
#: A page of ``/spans/otlpv1`` whose first span does not end within the head: Phoenix writes
#: a span's fields in alphabetical order, so its attributes (a long prompt) come first.
_OTLP_PAGE_RX = re.compile(rb'^\s*\[?\s*\{\s*"data"\s*:\s*\[\s*\{\s*"attributes"\s*:\s*\[\s*\{\s*"key"\s*:')
_UI_OTLP_RX = re.compile(rb'^\s*\{\s*"resource_spans"\s*:\s*\[\s*\{\s*"scope_spans"\s*:\s*\[\s*\{\s*"spans"\s*:\s*\[')
#: Phoenix's pydantic OTLP span writes every unset field as null (``kvlist_value`` is never
#: set, ``links`` neither); protobuf's own JSON leaves unset fields out.
_PX_NULLS_RX = re.compile(rb'"(?:kvlist_value|links|trace_state)"\s*:\s*null')


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
    if not isinstance(obj, dict) or "context" in obj or is_otlp_span(obj) or "resource_spans" in obj:
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


def _any_span(path: Path, where: str, s: Any) -> Span:
    """A span of either route: ``/spans`` (``context``, ``span_kind``) or ``/spans/otlpv1``."""
    return otlp_span(path, where, s, _KINDS) if is_otlp_span(s) else _span(path, where, s)


def _doc_spans(path: Path, where: str, doc: Any) -> list[Span]:
    """The spans of one document: a span, a page or group object, the UI's OTLP JSON download."""
    sep = ", " if where else ""
    if isinstance(doc, dict) and "resource_spans" in doc:
        out = []
        for i, rs in enumerate(doc["resource_spans"] if isinstance(doc["resource_spans"], list) else []):
            for j, ss in enumerate((rs or {}).get("scope_spans") or [] if isinstance(rs, dict) else []):
                for k, s in enumerate((ss or {}).get("spans") or [] if isinstance(ss, dict) else []):
                    out.append(_any_span(path, f"{where}{sep}resource_spans[{i}].scope_spans[{j}].spans[{k}]", s))
        return out
    groups = _groups(doc)
    if groups is None and isinstance(doc, dict) and isinstance(doc.get("data"), list):
        # Phoenix's pages hold data and next_cursor only (Langfuse's have a meta object)
        raise IngestError(str(path), where or None, "a page, but not Phoenix's (keys: " + ", ".join(sorted(doc)[:5])
                          + "): a page of another API?")
    if groups is None:
        return [_any_span(path, where or "0", doc)]
    return [_any_span(path, f"{where}{sep}{key}[{j}]", s) for key, group in groups.items() for j, s in enumerate(group)]


class PhoenixImporter(DeclineDetects):
    name = "phoenix"
    description = ("Arize Phoenix span exports: JSON/JSONL spans with context.trace_id, span_kind, flat OpenInference "
                   "attributes; REST pages of /spans and /spans/otlpv1, the UI's OTLP JSON download")
    example = '[{"name": "pxi.turn", "context": {"trace_id": "…", "span_id": "s01"}, "span_kind": "AGENT", "parent_id": null, …'

    def companion(self, path: Path, head: bytes) -> str | None:
        """An empty page saved beside the others (``{"data": [], "next_cursor": null}``):
        nothing to read, and no error (mast.ingest.registry.companion_note)."""
        if first_char(head) != "{" or b'"next_cursor"' not in head:
            return None
        obj = first_json(head)
        if isinstance(obj, dict) and obj.get("data") == [] and set(obj) == {"data", "next_cursor"}:
            return "an empty page of Phoenix's REST API (the end of a paged export): nothing to read"
        return None

    def decline(self, path: Path, head: bytes) -> tuple[int, str] | None:
        """How far this file got as a Phoenix export, and why it is not one (None: it is)."""
        body = strip_bom(head)
        if _UI_OTLP_RX.match(body):
            # the UI's OTLP JSON download; protobuf's own JSON of a request is otel's
            return None if _PX_NULLS_RX.search(head) else (1, "an OTLP request with the proto's field names (otel)")
        try:
            obj = first_json(head)
        except ValueError:
            # a first span longer than the head (an LLM span with a long prompt): judge its keys
            if _CTX_RX.search(head) and b'"span_kind"' in head and not _SDK_KIND_RX.search(head):
                return None
            if _OTLP_PAGE_RX.match(body) and b'"string_value"' in head:
                return None
            return 0, "the first record is not JSON (or is longer than the head)"
        groups = _groups(obj)
        if groups:
            first = next((g for g in groups.values() if g), None)
            if first:
                obj = first[0]  # {"name of a group": [spans], ...} or the REST API's {"data": [spans]}
        if is_otlp_span(obj):
            if "trace_id" in obj and "span_id" in obj and "start_time_unix_nano" in obj:
                return None  # a span of GET /v1/projects/{id}/spans/otlpv1
            return 2, "an OTLP span with the proto's field names, but not trace_id, span_id and start_time_unix_nano"
        return looks_like(obj)

    def read(self, path: Path) -> Iterator[Trace]:
        spans = self._spans(path)
        for idx, g in enumerate(drop_duplicate_llm_groups(group_traces(spans))):
            yield build_trace(path, idx, g, source_format=self.name, name_agents=True)

    def read_pieces(self, paths: Sequence[Path]) -> Iterator[tuple[Trace, bool]]:
        """Several files as one export (mast.ingest.pieces): pages saved one per file, a
        download in parts; each trace of their spans, and whether one file holds it all."""
        spans, sets = span_union([self._spans(p) for p in paths])
        for idx, g in enumerate(drop_duplicate_llm_groups(group_traces(spans))):
            yield build_trace(paths[0], idx, g, source_format=self.name, name_agents=True), covered(g, sets)

    def _spans(self, path: Path) -> list[Span]:
        spans: list[Span] = []
        # a page of the REST API saved on one line is one document, not JSON Lines of spans
        # (asked only without the suffix: it decodes the first line, a whole page)
        if path.suffix in (".jsonl", ".ndjson") or ((one_line := first_line_object(path)) is not None
                                                     and (one_line[1] or _groups(one_line[0]) is None)):
            for i, obj in iter_jsonl(path):
                spans.extend(_doc_spans(path, f"line {i + 1}", obj))
        else:
            data = load_json(path)
            if isinstance(data, list):
                for i, d in enumerate(data):
                    # a JSON array of spans, or of the pages of one export
                    spans.extend(_doc_spans(path, str(i), d) if _groups(d) else [_any_span(path, str(i), d)])
            elif isinstance(data, dict) and ("context" in data or is_otlp_span(data)):
                spans.append(_any_span(path, "0", data))
            elif isinstance(data, dict) and ("resource_spans" in data or _groups(data)):
                spans.extend(_doc_spans(path, "", data))
            else:
                raise IngestError(str(path), None, f"expected a JSON array of Phoenix spans, found {type(data).__name__}")
        if not spans:
            raise IngestError(str(path), None, "no spans in file")
        return spans

