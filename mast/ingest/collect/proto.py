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
an ended root, which is all a request needs before it is staged.  The body is decoded in
full (by this reader, into the OTLP/JSON shape) only when its trace is built.
"""

from __future__ import annotations

import struct
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

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


def index_request(body: bytes) -> tuple[list[str], list[str], list[bool]]:
    """Check a whole ExportTraceServiceRequest and index its spans: their trace ids and
    span ids (lower-case hex) and whether each is a root span that has ended, in
    document order.  :class:`WireError` (with this reader's reason) if malformed."""
    try:
        req = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RuntimeError, RecursionError):
        decode_request(body)  # raises the reason; protobuf's own error names none
        raise WireError("not a well-formed ExportTraceServiceRequest") from None
    tids: list[str] = []
    sids: list[str] = []
    roots: list[bool] = []
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
                roots.append(not any(sp.parent_span_id) and sp.end_time_unix_nano != 0)  # zeros: no parent
    return tids, sids, roots


def _index_decoded(doc: dict) -> tuple[list[str], list[str], list[bool]]:
    tids: list[str] = []
    sids: list[str] = []
    roots: list[bool] = []
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                t, s = sp.get("traceId", ""), sp.get("spanId", "")
                if len(t) != 32 or len(s) != 16 or not t.strip("0") or not s.strip("0"):
                    raise WireError(f"span {len(sids)}: trace id or span id missing or of the wrong length")
                tids.append(t)
                sids.append(s)
                roots.append(not sp.get("parentSpanId", "").strip("0") and bool(sp.get("endTimeUnixNano")))
    return tids, sids, roots


# -- building: the spans of some traces, from the generated message ------------------------

def _any_doc(v, depth: int) -> dict:
    if depth > 32:
        raise WireError("attribute values nested too deep")
    k = v.WhichOneof("value")
    if k == "string_value":
        return {"stringValue": v.string_value}
    if k == "int_value":
        return {"intValue": v.int_value}
    if k == "bool_value":
        return {"boolValue": v.bool_value}
    if k == "double_value":
        return {"doubleValue": v.double_value}
    if k == "array_value":
        return {"arrayValue": {"values": [_any_doc(x, depth + 1) for x in v.array_value.values]}}
    if k == "kvlist_value":
        return {"kvlistValue": {"values": _kvs_doc(v.kvlist_value.values, depth + 1)}}
    if k == "bytes_value":
        return {"bytesValue": v.bytes_value.hex()}
    return {}


def _kvs_doc(kvs, depth: int = 0) -> list[dict]:
    out = []
    for kv in kvs:
        if not kv.key:  # as the reader above (and protobuf's JSON mapping, which leaves it out)
            raise WireError("attribute without key")
        out.append({"key": kv.key, "value": _any_doc(kv.value, depth)})
    return out


def _span_doc(sp) -> dict:
    """A span in the shape :func:`_span` gives (fields the wire leaves out, left out)."""
    d: dict[str, Any] = {"attributes": _kvs_doc(sp.attributes), "traceId": sp.trace_id.hex(),
                         "spanId": sp.span_id.hex(), "kind": sp.kind,
                         "startTimeUnixNano": sp.start_time_unix_nano, "endTimeUnixNano": sp.end_time_unix_nano}
    if sp.parent_span_id:
        d["parentSpanId"] = sp.parent_span_id.hex()
    if sp.name:
        d["name"] = sp.name
    if sp.events:
        d["events"] = [dict({"attributes": _kvs_doc(e.attributes), "timeUnixNano": e.time_unix_nano},
                            **({"name": e.name} if e.name else {})) for e in sp.events]
    if sp.links:
        d["links"] = [{"attributes": _kvs_doc(ln.attributes), "traceId": ln.trace_id.hex(),
                       "spanId": ln.span_id.hex()} for ln in sp.links]
    if sp.HasField("status"):
        st: dict[str, Any] = {}
        if sp.status.message:
            st["message"] = sp.status.message
        if sp.status.code:
            st["code"] = sp.status.code
        d["status"] = st
    return d


def span_docs(body: bytes, want: set[str]):
    """``(where, trace id, span document)`` for each span of a request whose trace id is in
    ``want``: each span as an OTLP/JSON span object with its ``resource`` and ``scope``
    (a document the otel importer reads alone).  The request is parsed in C; only the
    spans wanted are turned into Python objects.  None if the request has ResourceSpans
    the generated message cannot read (OTLP < 0.19): decode it with :func:`decode_request`."""
    try:
        req = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RuntimeError, RecursionError):
        decode_request(body)
        raise WireError("not a well-formed ExportTraceServiceRequest") from None
    if any(not rs.scope_spans for rs in req.resource_spans):
        return None
    out = []
    for i, rs in enumerate(req.resource_spans):
        resource = None
        for j, ss in enumerate(rs.scope_spans):
            scope = None
            for k, sp in enumerate(ss.spans):
                tid = sp.trace_id.hex()
                if tid not in want:
                    continue
                if resource is None:
                    resource = {"attributes": _kvs_doc(rs.resource.attributes)}
                if scope is None:
                    scope = {n: v for n, v in (("name", ss.scope.name), ("version", ss.scope.version)) if v}
                out.append((f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]", tid,
                            dict(_span_doc(sp), resource=resource, scope=scope)))
    return out
