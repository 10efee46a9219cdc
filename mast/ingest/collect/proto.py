"""OTLP trace requests in protobuf, decoded into the OTLP/JSON shape the otel importer reads.

A hand-written reader of the protobuf wire format for the few messages of
``opentelemetry/proto/collector/trace/v1/trace_service.proto`` (ExportTraceServiceRequest
down to AnyValue), so that receiving spans needs no protobuf runtime and no generated
code.  The output is what an OTLP/JSON file holds (``resourceSpans`` → ``scopeSpans`` →
``spans``, ids as lower-case hex, times as integers, attributes as ``[{key, value}]``):
one mapping for files and for the live endpoint.

Unknown fields are skipped (forward compatible, as protobuf readers are); a truncated
message, a bad varint, a group wire type or a length past the end is :class:`WireError`.
Deprecated fields (instrumentation_library_spans, the old status code) are read where
older SDKs still send them.

:func:`index_request` is the receiver's fast path: the official generated message
(``opentelemetry-proto``; protobuf's upb runtime parses in C, 30-40x faster than this
reader) checks the whole body and gives each span's trace id, span id and whether it is
an ended root, and what may stitch its trace to others (parent, links, run ids), which
is all a request needs before it is staged.  When its traces are built,
:func:`request_spans` parses it again in C and makes the wanted spans straight into the
otel importer's spans; this reader serves old SDKs' bodies and the reasons for a 400.
"""

from __future__ import annotations

import struct
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from mast.errors import IngestError
from mast.ingest.formats.otel.spans import _KIND, _STATUS, RUN_ID_ATTRS, UNKNOWN_NS, Span, _id

_F64 = struct.Struct("<Q")
_D64 = struct.Struct("<d")
_I64 = struct.Struct("<q")


class WireError(ValueError):
    """The body is not a well-formed OTLP ExportTraceServiceRequest."""


def _fields(buf: bytes, start: int, end: int, what: str):
    """Yield ``(field number, wire type, value)``: value is an int (varint, fixed) or a
    ``(start, end)`` slice of ``buf`` for length-delimited fields."""
    pos = start
    while pos < end:
        # the tag: a varint (inlined, this loop is the hot path)
        b = buf[pos]
        pos += 1
        tag = b & 0x7F
        shift = 7
        while b & 0x80:
            if pos >= end or shift > 63:
                raise WireError(f"truncated or bad tag in {what}")
            b = buf[pos]
            pos += 1
            tag |= (b & 0x7F) << shift
            shift += 7
        fn, wt = tag >> 3, tag & 7
        if fn == 0:
            raise WireError(f"field number 0 in {what}")
        if wt == 0 or wt == 2:
            v = 0
            shift = 0
            while True:
                if pos >= end or shift > 63:
                    raise WireError(f"truncated varint in {what} (field {fn})")
                b = buf[pos]
                pos += 1
                v |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            if wt == 0:
                yield fn, 0, v
            else:
                if pos + v > end:
                    raise WireError(f"field {fn} of {what} runs past the end of its message (truncated body?)")
                yield fn, 2, (pos, pos + v)
                pos += v
        elif wt == 1:
            if pos + 8 > end:
                raise WireError(f"truncated 64-bit field {fn} in {what}")
            yield fn, 1, _F64.unpack_from(buf, pos)[0]
            pos += 8
        elif wt == 5:
            if pos + 4 > end:
                raise WireError(f"truncated 32-bit field {fn} in {what}")
            yield fn, 5, int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        else:
            raise WireError(f"wire type {wt} (field {fn}) in {what}: not an OTLP message")
    if pos != end:
        raise WireError(f"{what} runs past its end")


def _str(buf: bytes, sl: tuple[int, int], what: str) -> str:
    try:
        return buf[sl[0]:sl[1]].decode("utf-8")
    except UnicodeDecodeError:
        raise WireError(f"{what} is not UTF-8") from None


def _len(wt: int, fn: int, what: str) -> None:
    if wt != 2:
        raise WireError(f"field {fn} of {what} has wire type {wt}, expected length-delimited")


def _any(buf: bytes, s: int, e: int, depth: int) -> dict:
    if depth > 32:
        raise WireError("attribute values nested too deep")
    out: dict = {}
    for fn, wt, v in _fields(buf, s, e, "AnyValue"):
        if fn == 1:
            _len(wt, fn, "AnyValue")
            out = {"stringValue": _str(buf, v, "string value")}
        elif fn == 2:
            out = {"boolValue": bool(v)}
        elif fn == 3:
            out = {"intValue": v - (1 << 64) if v >= 1 << 63 else v}
        elif fn == 4:
            if wt != 1:
                raise WireError("double value without 64-bit wire type")
            out = {"doubleValue": _D64.unpack(_F64.pack(v))[0]}
        elif fn == 5:
            _len(wt, fn, "AnyValue")
            vals = [_any(buf, a, b, depth + 1) for f2, w2, (a, b) in _fields(buf, v[0], v[1], "ArrayValue")
                    if f2 == 1 and w2 == 2]
            out = {"arrayValue": {"values": vals}}
        elif fn == 6:
            _len(wt, fn, "AnyValue")
            out = {"kvlistValue": {"values": _kvs(buf, v[0], v[1], depth + 1, "KeyValueList")}}
        elif fn == 7:
            _len(wt, fn, "AnyValue")
            out = {"bytesValue": buf[v[0]:v[1]].hex()}
    return out


def _kv(buf: bytes, s: int, e: int, depth: int) -> dict:
    key, val = None, {}
    for fn, wt, v in _fields(buf, s, e, "KeyValue"):
        if fn == 1:
            _len(wt, fn, "KeyValue")
            key = _str(buf, v, "attribute key")
        elif fn == 2:
            _len(wt, fn, "KeyValue")
            val = _any(buf, v[0], v[1], depth)
    if key is None:
        raise WireError("attribute without key")
    return {"key": key, "value": val}


def _kvs(buf: bytes, s: int, e: int, depth: int, what: str) -> list[dict]:
    out = []
    for fn, wt, v in _fields(buf, s, e, what):
        if fn == 1:
            _len(wt, fn, what)
            out.append(_kv(buf, v[0], v[1], depth))
    return out


def _hex(buf: bytes, sl: tuple[int, int]) -> str:
    return buf[sl[0]:sl[1]].hex()


def _event(buf: bytes, s: int, e: int) -> dict:
    out: dict[str, Any] = {"attributes": []}
    for fn, wt, v in _fields(buf, s, e, "Span.Event"):
        if fn == 1:
            out["timeUnixNano"] = v
        elif fn == 2:
            _len(wt, fn, "Span.Event")
            out["name"] = _str(buf, v, "event name")
        elif fn == 3:
            _len(wt, fn, "Span.Event")
            out["attributes"].append(_kv(buf, v[0], v[1], 0))
    return out


def _link(buf: bytes, s: int, e: int) -> dict:
    out: dict[str, Any] = {"attributes": []}
    for fn, wt, v in _fields(buf, s, e, "Span.Link"):
        if fn == 1:
            _len(wt, fn, "Span.Link")
            out["traceId"] = _hex(buf, v)
        elif fn == 2:
            _len(wt, fn, "Span.Link")
            out["spanId"] = _hex(buf, v)
        elif fn == 4:
            _len(wt, fn, "Span.Link")
            out["attributes"].append(_kv(buf, v[0], v[1], 0))
    return out


def _status(buf: bytes, s: int, e: int) -> dict:
    out: dict[str, Any] = {}
    for fn, wt, v in _fields(buf, s, e, "Status"):
        if fn == 2:
            _len(wt, fn, "Status")
            out["message"] = _str(buf, v, "status message")
        elif fn == 3:
            out["code"] = v
    return out


def _span(buf: bytes, s: int, e: int) -> dict:
    sp: dict[str, Any] = {"attributes": []}
    attrs = sp["attributes"]
    for fn, wt, v in _fields(buf, s, e, "Span"):
        if fn == 9:
            _len(wt, fn, "Span")
            attrs.append(_kv(buf, v[0], v[1], 0))
        elif fn == 1:
            _len(wt, fn, "Span")
            sp["traceId"] = _hex(buf, v)
        elif fn == 2:
            _len(wt, fn, "Span")
            sp["spanId"] = _hex(buf, v)
        elif fn == 4:
            _len(wt, fn, "Span")
            if v[1] > v[0]:
                sp["parentSpanId"] = _hex(buf, v)
        elif fn == 5:
            _len(wt, fn, "Span")
            sp["name"] = _str(buf, v, "span name")
        elif fn == 6:
            sp["kind"] = v
        elif fn == 7:
            sp["startTimeUnixNano"] = v
        elif fn == 8:
            sp["endTimeUnixNano"] = v
        elif fn == 11:
            _len(wt, fn, "Span")
            sp.setdefault("events", []).append(_event(buf, v[0], v[1]))
        elif fn == 13:
            _len(wt, fn, "Span")
            sp.setdefault("links", []).append(_link(buf, v[0], v[1]))
        elif fn == 15:
            _len(wt, fn, "Span")
            sp["status"] = _status(buf, v[0], v[1])
    return sp


def _scope_spans(buf: bytes, s: int, e: int) -> dict:
    out: dict[str, Any] = {"scope": {}, "spans": []}
    for fn, wt, v in _fields(buf, s, e, "ScopeSpans"):
        if fn == 1:
            _len(wt, fn, "ScopeSpans")
            for f2, w2, v2 in _fields(buf, v[0], v[1], "InstrumentationScope"):
                if f2 == 1 and w2 == 2:
                    out["scope"]["name"] = _str(buf, v2, "scope name")
                elif f2 == 2 and w2 == 2:
                    out["scope"]["version"] = _str(buf, v2, "scope version")
        elif fn == 2:
            _len(wt, fn, "ScopeSpans")
            out["spans"].append(_span(buf, v[0], v[1]))
    return out


def _resource_spans(buf: bytes, s: int, e: int) -> dict:
    out: dict[str, Any] = {"resource": {"attributes": []}, "scopeSpans": []}
    for fn, wt, v in _fields(buf, s, e, "ResourceSpans"):
        if fn == 1:
            _len(wt, fn, "ResourceSpans")
            out["resource"]["attributes"] = _kvs(buf, v[0], v[1], 0, "Resource")
        elif fn in (2, 1000):  # 1000: instrumentation_library_spans (OTLP < 0.19), same layout
            _len(wt, fn, "ResourceSpans")
            out["scopeSpans"].append(_scope_spans(buf, v[0], v[1]))
    return out


def decode_request(body: bytes) -> dict:
    """An ExportTraceServiceRequest as its OTLP/JSON document; :class:`WireError` if malformed."""
    buf = bytes(body)
    rss = []
    for fn, wt, v in _fields(buf, 0, len(buf), "ExportTraceServiceRequest"):
        if fn == 1:
            _len(wt, fn, "ExportTraceServiceRequest")
            rss.append(_resource_spans(buf, v[0], v[1]))
    return {"resourceSpans": rss}


#: the run id attribute keys as they appear in a protobuf body (a KeyValue's key is its UTF-8 bytes)
_RUN_KEYS = tuple(k.encode() for k in RUN_ID_ATTRS)

#: what :func:`index_request` gives per span, in document order: trace id, span id,
#: whether it is a root that has ended, and what may tie its trace to others (the parent
#: span id, the trace ids it links to, its run ids as ``key=value``: see
#: ``mast.ingest.formats.otel.spans.group_traces``); the last two None when it has none
Index = tuple[list[str], list[str], list[bool], list["str | None"], list["list[str] | None"], list["list[str] | None"]]


def index_request(body: bytes) -> Index:
    """Check a whole ExportTraceServiceRequest and index its spans (:data:`Index`; ids as
    lower-case hex).  :class:`WireError` (with this reader's reason) if malformed."""
    try:
        req = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RuntimeError, RecursionError):
        decode_request(body)  # raises the reason; protobuf's own error names none
        raise WireError("not a well-formed ExportTraceServiceRequest") from None
    tids: list[str] = []
    sids: list[str] = []
    roots: list[bool] = []
    parents: list[str | None] = []
    links: list[list[str] | None] = []
    runs: list[list[str] | None] = []
    # a run id's key is in the body as its bytes: without one, no span's attributes are read
    any_run = any(k in body for k in _RUN_KEYS)
    for rs in req.resource_spans:
        if not rs.scope_spans:
            # an SDK older than OTLP 0.19 sends instrumentation_library_spans (field 1000),
            # which the generated message no longer has: this reader still knows it
            return _index_decoded(decode_request(body))
        for ss in rs.scope_spans:
            for sp in ss.spans:
                t, s = sp.trace_id, sp.span_id
                if len(t) != 16 or len(s) != 8 or not any(t) or not any(s):
                    raise WireError(f"span {len(sids)}: trace id or span id missing or of the wrong length")
                tids.append(t.hex())
                sids.append(s.hex())
                p = sp.parent_span_id
                has_parent = any(p)  # zeros: no parent
                roots.append(not has_parent and sp.end_time_unix_nano != 0)
                parents.append(p.hex() if has_parent else None)
                links.append([ln.trace_id.hex() for ln in sp.links if any(ln.trace_id)] or None if sp.links else None)
                run = None
                if any_run:
                    for kv in sp.attributes:
                        if kv.key in RUN_ID_ATTRS and kv.value.string_value:
                            (run := run or []).append(f"{kv.key}={kv.value.string_value}")
                runs.append(run)
    return tids, sids, roots, parents, links, runs


def _index_decoded(doc: dict) -> Index:
    tids: list[str] = []
    sids: list[str] = []
    roots: list[bool] = []
    parents: list[str | None] = []
    links: list[list[str] | None] = []
    runs: list[list[str] | None] = []
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                t, s = sp.get("traceId", ""), sp.get("spanId", "")
                if len(t) != 32 or len(s) != 16 or not t.strip("0") or not s.strip("0"):
                    raise WireError(f"span {len(sids)}: trace id or span id missing or of the wrong length")
                tids.append(t)
                sids.append(s)
                p = sp.get("parentSpanId", "")
                roots.append(not p.strip("0") and bool(sp.get("endTimeUnixNano")))
                parents.append(p if p.strip("0") else None)
                links.append([ln["traceId"] for ln in sp.get("links") or () if ln.get("traceId", "").strip("0")] or None)
                runs.append([f"{kv['key']}={kv['value']['stringValue']}" for kv in sp["attributes"]
                             if kv["key"] in RUN_ID_ATTRS and kv["value"].get("stringValue")] or None)
    return tids, sids, roots, parents, links, runs


# -- building: the spans of some traces, from the generated message ------------------------
#
# Straight to the otel importer's Span: the values, checks and errors of reading the
# request's OTLP/JSON form with ``load_doc_spans`` (a test holds the two equal), without
# building that form first (a dict per span, attribute and value: half the build's cost).

def _value(v, depth: int) -> Any:
    if depth > 32:
        raise WireError("attribute values nested too deep")
    k = v.WhichOneof("value")
    if k == "string_value":
        return v.string_value
    if k == "int_value":
        return v.int_value
    if k == "bool_value":
        return v.bool_value
    if k == "double_value":
        return v.double_value
    if k == "array_value":
        return [_value(x, depth + 1) for x in v.array_value.values]
    if k == "kvlist_value":
        return _flat(v.kvlist_value.values, depth + 1)
    if k == "bytes_value":
        return v.bytes_value.hex()
    return None


def _flat(kvs, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        key = kv.key
        if not key:  # as the reader above (and protobuf's JSON mapping, which leaves it out)
            raise WireError("attribute without key")
        v = kv.value
        # most attributes are strings: skip the general decoder for them
        out[key] = v.string_value if v.WhichOneof("value") == "string_value" else _value(v, depth)
    return out


def _span_obj(sp, path: str, where: str, resource: dict, scope: str | None) -> Span:
    name = sp.name
    if not name:
        raise IngestError(path, where, "missing required field: name")
    p = sp.parent_span_id
    st = sp.status
    code = st.code
    links = [(_id(path, where, ln.trace_id.hex(), "link traceId"), _id(path, where, ln.span_id.hex(), "link spanId", False))
             for ln in sp.links] if sp.links else []
    events = [{"name": e.name or None, "time_ns": e.time_unix_nano or None, "attrs": _flat(e.attributes)}
              for e in sp.events] if sp.events else []
    kind = sp.kind
    return Span(trace_id=sp.trace_id.hex(), span_id=sp.span_id.hex(),
                parent_id=_id(path, where, p.hex(), "parentSpanId", False) if p else None, name=name,
                kind=_KIND.get(kind, str(kind)), start_ns=sp.start_time_unix_nano or UNKNOWN_NS,
                end_ns=sp.end_time_unix_nano or None, status=_STATUS.get(code, str(code)), status_msg=st.message or None,
                attrs=_flat(sp.attributes), events=events, links=links, resource=resource, scope=scope, where=where)


def request_spans(body: bytes, want: set[str], where: str = "", path_prefix: str = ""):
    """``(trace id, Span or the error that refused it)`` for each span of a request whose
    trace id is in ``want``, read as the otel importer reads the request's OTLP/JSON form
    (``where`` prefixes each span's place; an error names ``path_prefix`` + the trace id).
    The request is parsed in C; only the spans wanted become Python objects.  None if it
    has ResourceSpans the generated message cannot read (OTLP < 0.19): decode it with
    :func:`decode_request`."""
    try:
        req = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RuntimeError, RecursionError):
        decode_request(body)
        raise WireError("not a well-formed ExportTraceServiceRequest") from None
    if any(not rs.scope_spans for rs in req.resource_spans):
        return None
    out: list[tuple[str, Any]] = []
    for i, rs in enumerate(req.resource_spans):
        resource = None
        for j, ss in enumerate(rs.scope_spans):
            scope = False
            for k, sp in enumerate(ss.spans):
                tid = sp.trace_id.hex()
                if tid not in want:
                    continue
                try:
                    if resource is None:
                        resource = _flat(rs.resource.attributes)
                    if scope is False:
                        scope = ss.scope.name or None
                    out.append((tid, _span_obj(sp, path_prefix + tid, f"{where}resourceSpans[{i}].scopeSpans[{j}].spans[{k}]",
                                           resource, scope)))
                except (IngestError, ValueError) as e:
                    out.append((tid, e))
    return out
