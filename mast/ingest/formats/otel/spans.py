"""Reading spans: OTLP/JSON documents, span JSON Lines and the SDK's ``to_json`` dumps, as :class:`Span`.

Ids become lower-case hex, times nanoseconds, attributes a flat dict; every error names
the file and the document, line or span it is in.  :func:`group` gathers spans into
traces (one per trace id, or per set of traces joined by links).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence

from mast.errors import IngestError
from mast.ingest._util import too_deep
from mast.unionfind import Groups


_HEX_RX = re.compile(r"^(?:0x)?([0-9a-fA-F]{16}|[0-9a-fA-F]{32})$")
_KIND = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
_NONE = object()  # a dict.get default no attribute value can be


@dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int | None
    status: str
    status_msg: str | None
    attrs: dict[str, Any]
    events: list[dict]
    links: list[tuple[str, str | None]]
    resource: dict[str, Any]
    scope: str | None
    where: str
    children: list["Span"] = field(default_factory=list)


def _id(path: Path, where: str, v: Any, what: str, required: bool = True) -> str | None:
    if v in (None, "", "0x0", "0000000000000000"):
        if required:
            raise IngestError(str(path), where, f"missing required field: {what}")
        return None
    s = str(v)
    m = _HEX_RX.match(s)
    if m:
        return m.group(1).lower()
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) in (8, 16):
        return raw.hex()
    raise IngestError(str(path), where, f"{what} {s!r} is neither hex nor base64 of 8/16 bytes")


def _any(path: Path, where: str, v: Any) -> Any:
    """Decode an OTLP AnyValue."""
    if not isinstance(v, dict):
        return v
    if not v:
        return None
    k, x = next(iter(v.items()))
    if k == "stringValue":
        return x
    if k == "boolValue":
        return bool(x)
    if k in ("intValue", "doubleValue"):
        try:
            return int(x) if k == "intValue" else float(x)
        except (TypeError, ValueError):
            raise IngestError(str(path), where, f"attribute {k} {str(x)[:40]!r} is not a number") from None
    if k == "arrayValue":
        return [_any(path, where, i) for i in (x or {}).get("values", [])]
    if k == "kvlistValue":
        return {kv.get("key"): _any(path, where, kv.get("value")) for kv in (x or {}).get("values", [])}
    if k == "bytesValue":
        return x
    raise IngestError(str(path), where, f"unknown attribute value type {k!r} (newer OTLP version?)",
                      "Upgrade mast.")


def _attrs(path: Path, where: str, a: Any) -> dict[str, Any]:
    if type(a) is list:
        # the usual list, every value one AnyValue (most of them strings), in one
        # comprehension; anything it cannot take as it stands goes the loop below, for
        # the same result or error
        try:
            d = {kv["key"]: x["stringValue"] if "stringValue" in x and len(x) == 1 else _any(path, where, x)
                 for kv in a for x in (kv["value"],)}
            "".join(d)  # every key a string (a TypeError otherwise: the loop below names it)
            return d
        except (TypeError, KeyError):
            pass
    return _attrs_general(path, where, a)


def _attrs_general(path: Path, where: str, a: Any) -> dict[str, Any]:
    """:func:`_attrs` without its shortcut: every shape, and every error."""
    if a is None:
        return {}
    if isinstance(a, dict):
        return dict(a)
    if isinstance(a, list):
        out = {}
        for kv in a:
            if type(kv) is dict and "key" in kv:
                v = kv.get("value")
            elif not isinstance(kv, dict) or "key" not in kv:
                raise IngestError(str(path), where, "attribute without key")
            else:
                v = kv.get("value")
            if type(kv["key"]) is not str:
                raise IngestError(str(path), where, f"attribute key {kv['key']!r} is not a string")
            # most attributes are strings: skip the general decoder for them
            if type(v) is dict and len(v) == 1:
                x = v.get("stringValue", _NONE)
                out[kv["key"]] = x if x is not _NONE else _any(path, where, v)
            else:
                out[kv["key"]] = _any(path, where, v)
        return out
    raise IngestError(str(path), where, "attributes are neither a list nor an object")


def _ns(path: Path, where: str, v: Any, what: str, required: bool) -> int | None:
    if v in (None, "", 0, "0"):
        if required:
            raise IngestError(str(path), where, f"missing required field: {what}")
        return None
    if isinstance(v, (int, float)):
        return int(v)
    s = str(v)
    if s.isdecimal():  # (isdigit() admits "²", which int() refuses)
        return int(s)
    if len(s) == 32 and s[19] == "." and s.endswith("+00:00") and s[20:26].isdecimal() and s.isascii():
        # the SDKs' own ISO form (``2026-12-01T14:10:41.938490+00:00``): the spans of a run
        # share their seconds, so the second is parsed once and the microseconds by int()
        sec = _utc_second(s[:19])
        if sec is not None:
            return sec * 1_000_000_000 + int(s[20:26]) * 1000
    try:
        d = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise IngestError(str(path), where, f"{what} {s[:40]!r} is not a time") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return int(d.timestamp()) * 1_000_000_000 + d.microsecond * 1000


@lru_cache(maxsize=4096)
def _utc_second(text: str) -> int | None:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM:SS`` in UTC; None when it is no such time or
    before 1970 (where the general path's truncation of a negative timestamp differs)."""
    try:
        d = datetime.fromisoformat(text + "+00:00")
    except ValueError:
        return None
    sec = int(d.timestamp())
    return sec if sec >= 0 else None


#: ``Span.start_ns`` of a span whose start time is unknown (OTLP ``"0"`` or absent): it
#: sorts first, keeping file order among such spans, and is stored as a missing time.
UNKNOWN_NS = 0


@lru_cache(maxsize=4096)
def _iso_second(sec: int) -> str:
    # the spans of a run share their seconds: formatting each second once halves this cost
    return datetime.fromtimestamp(sec, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def iso_ns(ns: int | None) -> str | None:
    if not ns:  # None, or UNKNOWN_NS
        return None
    sec, sub = divmod(ns, 1_000_000_000)
    return f"{_iso_second(sec)}.{sub // 1000:06d}+00:00"


#: trace ids as written -> as :class:`Span` has them (lower-case hex): the spans of a trace
#: share one, so each is validated once; bounded, cleared when full
_TRACE_IDS: dict[str, str] = {}
_TRACE_IDS_MAX = 65536


def _otlp_span(path: Path, where: str, s: Any, resource: dict, scope: str | None) -> Span:
    if not isinstance(s, dict):
        raise IngestError(str(path), where, "expected a span object")
    if not ("traceId" in s and "spanId" in s and "name" in s):
        for req in ("traceId", "spanId", "name"):
            if req not in s:
                raise IngestError(str(path), where, f"missing required field: {req}")
    g = s.get
    attrs = _attrs(path, where, g("attributes"))
    st = g("status") or {}
    code = st.get("code", 0)
    # (the names looked up first: a default argument would format the code on every span)
    status = (_STATUS.get(code) if isinstance(code, int) else None) or str(code).replace("STATUS_CODE_", "")
    kind = g("kind", 0)
    kind = (_KIND.get(kind) if isinstance(kind, int) else None) or str(kind).replace("SPAN_KIND_", "")
    ev, ln = g("events"), g("links")
    events = [{"name": e.get("name"), "time_ns": _ns(path, where, e.get("timeUnixNano"), "event time", False),
               "attrs": _attrs(path, where, e.get("attributes"))} for e in ev] if ev else []
    links = [(_id(path, where, x.get("traceId"), "link traceId"), _id(path, where, x.get("spanId"), "link spanId", False))
             for x in ln] if ln else []
    tid = s["traceId"]
    trace_id = _TRACE_IDS.get(tid) if type(tid) is str else None
    if trace_id is None:
        trace_id = _id(path, where, tid, "traceId")
        if type(tid) is str:
            if len(_TRACE_IDS) >= _TRACE_IDS_MAX:
                _TRACE_IDS.clear()
            _TRACE_IDS[tid] = trace_id
    span_id = _id(path, where, s["spanId"], "spanId")
    parent_id = _id(path, where, g("parentSpanId"), "parentSpanId", False)
    name = str(s["name"])
    # times: the usual decimal string read here, anything else by _ns (proto3 JSON leaves a
    # zero time out, and some tools write "0" for an unknown one: a missing value, not a
    # reason to refuse the export)
    t0, t1 = g("startTimeUnixNano"), g("endTimeUnixNano")
    t0 = int(t0) if type(t0) is str and t0 != "0" and t0.isdecimal() else _ns(path, where, t0, "startTimeUnixNano", False)
    t1 = int(t1) if type(t1) is str and t1 != "0" and t1.isdecimal() else _ns(path, where, t1, "endTimeUnixNano", False)
    # positional, in Span's field order (keywords cost more, per span)
    return Span(trace_id, span_id, parent_id, name, kind, t0 or UNKNOWN_NS, t1, status, st.get("message") or None,
                attrs, events, links, resource, scope, where)


def _sdk_span(path: Path, where: str, s: dict) -> Span:
    ctx = s.get("context")
    if not isinstance(ctx, dict) or "name" not in s:
        raise IngestError(str(path), where, "missing required field(s): name, context")
    st = s.get("status") or {}
    events = [{"name": e.get("name"), "time_ns": _ns(path, where, e.get("timestamp"), "event time", False),
               "attrs": dict(e.get("attributes") or {})} for e in s.get("events") or []]
    links = []
    for ln in s.get("links") or []:
        c = ln.get("context") or {}
        links.append((_id(path, where, c.get("trace_id"), "link trace_id"), _id(path, where, c.get("span_id"), "link span_id", False)))
    res = (s.get("resource") or {}).get("attributes") or {}
    return Span(trace_id=_id(path, where, ctx.get("trace_id"), "context.trace_id"),
                span_id=_id(path, where, ctx.get("span_id"), "context.span_id"),
                parent_id=_id(path, where, s.get("parent_id"), "parent_id", False), name=str(s["name"]),
                kind=str(s.get("kind") or "").replace("SpanKind.", ""),
                start_ns=_ns(path, where, s.get("start_time"), "start_time", True),
                end_ns=_ns(path, where, s.get("end_time"), "end_time", False),
                status=str(st.get("status_code") or "UNSET"), status_msg=st.get("description") or None,
                attrs=dict(s.get("attributes") or {}), events=events, links=links, resource=dict(res),
                scope=(s.get("instrumentation_scope") or {}).get("name") if isinstance(s.get("instrumentation_scope"), dict) else None,
                where=where)


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def camel_keys(doc: Any) -> Any:
    """An OTLP document written with the proto's own field names (``resource_spans``,
    ``start_time_unix_nano``, ``string_value``: protobuf's ``MessageToDict(...,
    preserving_proto_field_name=True)``) in the OTLP/JSON names.  Only object keys change;
    an attribute's ``key`` is a value and stays as written.  Iterative: as deep as the file."""
    out: Any = {} if isinstance(doc, dict) else [] if isinstance(doc, list) else doc
    todo = [(doc, out)]
    while todo:
        src, dst = todo.pop()
        items = src.items() if isinstance(src, dict) else enumerate(src)
        for k, v in items:
            new = {} if isinstance(v, dict) else [] if isinstance(v, list) else v
            if isinstance(dst, dict):
                dst[_camel(k)] = new
            else:
                dst.append(new)
            if isinstance(v, (dict, list)):
                todo.append((v, new))
    return out


def _doc_spans(path: Path, where: str, doc: Any) -> Iterator[Span]:
    if isinstance(doc, dict) and "resource_spans" in doc and "resourceSpans" not in doc:
        doc = camel_keys(doc)
    if isinstance(doc, dict) and "resourceSpans" in doc:
        rss = doc["resourceSpans"]
        if not isinstance(rss, list):
            raise IngestError(str(path), where, "resourceSpans is not a list")
        for i, rs in enumerate(rss):
            w = f"{where}resourceSpans[{i}]"
            res = _attrs(path, w, ((rs or {}).get("resource") or {}).get("attributes"))
            sss = (rs or {}).get("scopeSpans", (rs or {}).get("instrumentationLibrarySpans"))
            if not isinstance(sss, list):
                raise IngestError(str(path), w, "missing required field: scopeSpans")
            for j, ss in enumerate(sss):
                scope = ((ss or {}).get("scope") or (ss or {}).get("instrumentationLibrary") or {}).get("name")
                for k, s in enumerate((ss or {}).get("spans") or []):
                    yield _otlp_span(path, f"{w}.scopeSpans[{j}].spans[{k}]", s, res, scope)
    elif isinstance(doc, dict) and "context" in doc and "kind" in doc:
        yield _sdk_span(path, where.rstrip(": ") or "0", doc)
    elif isinstance(doc, dict) and "traceId" in doc and "spanId" in doc:
        res = _attrs(path, where, (doc.get("resource") or {}).get("attributes")) if isinstance(doc.get("resource"), dict) else {}
        scope = (doc.get("scope") or {}).get("name") if isinstance(doc.get("scope"), dict) else None
        yield _otlp_span(path, where.rstrip(": ") or "0", doc, res, scope)
    elif isinstance(doc, dict) and isinstance(doc.get("context"), dict):
        # the span has a context but not the SDK's kind: Phoenix writes spans that way
        raise IngestError(str(path), where.rstrip(": ") or None,
                          "a span with a context but no kind: not an OTel SDK span"
                          + (" (a Phoenix span export: span_kind, parent_id)" if "span_kind" in doc else ""),
                          "Try --format phoenix, or see `mast formats`.")
    else:
        raise IngestError(str(path), where.rstrip(": ") or None,
                          "not an OpenTelemetry span or OTLP request (expected resourceSpans, traceId/spanId or context)")


def load_doc_spans(path: Path, doc: Any, where: str = "") -> list[Span]:
    """The spans of one parsed document (an OTLP request, or one span), as a file's are read;
    ``path`` and ``where`` name it in errors (the live endpoint reads its requests so)."""
    return list(_doc_spans(path, where, doc))


def load_spans(path: Path) -> list[Span]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise IngestError(str(path), None, f"cannot read file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise IngestError(str(path), None, f"not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise IngestError(str(path), None, "file is empty")
    spans: list[Span] = []
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):  # JSON Lines (or too deep: the loop below names the line)
        doc = None
        dec = json.JSONDecoder()
        pos, line = 0, 1
        L = len(text)
        while True:
            while pos < L and text[pos] in " \t\r\n":
                if text[pos] == "\n":
                    line += 1
                pos += 1
            if pos >= L:
                break
            try:
                obj, end = dec.raw_decode(text, pos)
            except RecursionError:
                raise too_deep(path, f"line {line}") from None
            except ValueError as e:
                raise IngestError(str(path), f"line {line}", f"invalid JSON (file truncated?): {e.msg}") from None
            spans.extend(_doc_spans(path, f"line {line}: ", obj))
            line += text.count("\n", pos, end)
            pos = end
        return spans
    docs = doc if isinstance(doc, list) else [doc]
    for i, d in enumerate(docs):
        spans.extend(_doc_spans(path, f"{i}: " if isinstance(doc, list) else "", d))
    return spans


# Attributes that name the one run a span belongs to, whatever trace id it was exported
# under: ag2 1.x's hub traces every envelope as its own trace, tied only by the channel
# (a workflow channel is one run); the GenAI conventions' conversation id.  Deliberately
# not ``session.id`` or a LangGraph thread id: those span many runs.
RUN_ID_ATTRS = ("ag2.network.channel_id", "gen_ai.conversation.id")


def group_traces(spans: list[Span]) -> list[list[Span]]:
    """Spans by trace id, with the traces of one run stitched into one group.

    Two trace ids are one run when a span of one links to the other (span ``links``),
    when a span's parent is a span exported under the other trace id (a parent run in
    another trace), or when spans of both carry the same run id (``RUN_ID_ATTRS``).
    Union-find over trace ids: besides the spans themselves it holds one entry per trace
    id, span id and distinct run id, so memory grows with the export, not with the
    number of pairs compared.
    """
    groups = Groups()
    find, union = groups.find, groups.union

    # span id -> its trace id, "" when several traces use it (some exports number span
    # ids per trace): only an unambiguous id can tie a parent across traces
    span_trace: dict[str, str] = {}
    for s in spans:
        find(s.trace_id)
        if span_trace.setdefault(s.span_id, s.trace_id) != s.trace_id:
            span_trace[s.span_id] = ""
    run_first: dict[tuple[str, str], str] = {}
    for s in spans:
        for lt, _ in s.links:
            if lt in groups and lt != s.trace_id:
                union(s.trace_id, lt)
        if s.parent_id:
            pt = span_trace.get(s.parent_id)
            if pt and pt != s.trace_id:
                union(s.trace_id, pt)
        for key in RUN_ID_ATTRS:
            v = s.attrs.get(key)
            if isinstance(v, str) and v:
                first = run_first.setdefault((key, v), s.trace_id)
                if first != s.trace_id:
                    union(s.trace_id, first)
    groups: dict[str, list[Span]] = {}
    order: list[str] = []
    for s in spans:
        r = find(s.trace_id)
        if r not in groups:
            groups[r] = []
            order.append(r)
        groups[r].append(s)
    out = [groups[r] for r in order]
    out.sort(key=lambda g: min(s.start_ns for s in g))
    return out


def span_union(pieces: Sequence[Sequence[Span]]) -> tuple[list[Span], list[set[tuple[str, str]]]]:
    """The spans of several pieces of one export (pages saved as separate files), each
    ``(trace id, span id)`` once, the first piece's copy kept; and each piece's ids, so
    that :func:`covered` can tell a union from a piece that holds it all."""
    seen: set[tuple[str, str]] = set()
    out: list[Span] = []
    sets: list[set[tuple[str, str]]] = []
    for piece in pieces:
        ids: set[tuple[str, str]] = set()
        for s in piece:
            k = (s.trace_id, s.span_id)
            ids.add(k)
            if k not in seen:
                seen.add(k)
                out.append(s)
        sets.append(ids)
    return out, sets


def covered(group: Sequence[Span], sets: Sequence[set[tuple[str, str]]]) -> bool:
    """Whether one piece alone holds every span of ``group`` (two exports of one run, or a
    piece and a part of it): then there is nothing to join, and run identity chooses."""
    ids = {(s.trace_id, s.span_id) for s in group}
    return any(ids <= p for p in sets)
