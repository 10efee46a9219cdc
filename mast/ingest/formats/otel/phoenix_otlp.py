"""Phoenix's OTLP-shaped spans: ``GET /v1/projects/{id}/spans/otlpv1`` pages and the UI's "OTLP JSON" download.

Phoenix's REST API answers the ``otlpv1`` route with ``{"data": [span, ...], "next_cursor":
null | "…"}``, each span its own pydantic rendering of an OTLP span with the proto's field
names and every field written, null or not::

    {"attributes": [{"key": "input.value", "value": {"array_value": null, "bool_value": null,
      "bytes_value": null, "double_value": null, "int_value": null, "kvlist_value": null,
      "string_value": "…"}}, …], "dropped_attributes_count": null, …, "end_time_unix_nano": …,
     "events": null | [{"attributes": [...], "name": …, "time_unix_nano": …}], "kind":
     "SPAN_KIND_INTERNAL", "links": null, "name": …, "parent_span_id": …, "span_id": …,
     "start_time_unix_nano": …, "status": {"code": 0 | 1 | 2, "message": …}, "trace_id": …}

The UI's download of a selection "as OTLP JSON" concatenates those pages' spans into
``{"resource_spans": [{"scope_spans": [{"spans": [...]}]}]}`` (no resource, no scope).

Differences from the ``/spans`` page of the same spans, which the reading below undoes so
both forms give the same trace: the OpenInference kind stays in the attributes
(``openinference.span.kind``) instead of ``span_kind``; attributes (nested ones flattened to
dotted keys, lists of objects by index, as ``/spans`` does too) are ``{key, value}`` pairs;
times are nanoseconds computed in floating point from Phoenix's microsecond times, so they
are rounded back to the microsecond.  Ids stay as Phoenix stored them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mast.errors import IngestError
from mast.ingest.formats.otel.spans import Span

_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
_VALUE_KEYS = ("string_value", "bool_value", "int_value", "double_value", "array_value", "bytes_value",
               "kvlist_value")


def is_otlp_span(obj: Any) -> bool:
    """Whether ``obj`` is an OTLP span with the proto's field names (and not a Phoenix ``/spans`` span)."""
    return isinstance(obj, dict) and "context" not in obj and (
        "trace_id" in obj or "span_id" in obj or "start_time_unix_nano" in obj)


def _us(ns: int | None) -> int | None:
    # Phoenix computes int(datetime.timestamp() * 1e9): a double of ~1.7e18 is off by up to
    # ~256 ns, while its stored times are whole microseconds; rounding recovers them exactly
    return None if ns is None else (ns + 500) // 1000 * 1000


def _ns(path: Path, where: str, v: Any, what: str, required: bool) -> int | None:
    if v is None or v == "" or v == 0 or v == "0":
        if required:
            raise IngestError(str(path), where, f"missing required field: {what}")
        return None
    if isinstance(v, bool) or not isinstance(v, (int, str)) or (isinstance(v, str) and not v.isdecimal()):
        raise IngestError(str(path), where, f"{what} {str(v)[:40]!r} is not a time in nanoseconds")
    return _us(int(v))


def _value(path: Path, where: str, key: str, v: Any) -> Any:
    """One OTLP AnyValue as Phoenix writes it: one of its ``*_value`` fields set, the others null."""
    if not isinstance(v, dict):
        return v
    todo = [(k, x) for k, x in v.items() if x is not None]
    if not todo:
        return None  # Phoenix writes a null (and an object-valued attribute) as an empty AnyValue
    k, x = todo[0]
    if k == "string_value" or k == "bytes_value":
        return x
    if k == "bool_value":
        return bool(x)
    if k == "int_value":
        try:
            return int(x)
        except (TypeError, ValueError):
            raise IngestError(str(path), where,
                              f"attribute {key!r}: int_value {str(x)[:40]!r} is not a number") from None
    if k == "double_value":
        try:
            return float(x)  # also Phoenix's "Infinity" / "NaN" spellings
        except (TypeError, ValueError):
            return x
    if k == "array_value":
        return [_value(path, where, key, i) for i in (x or {}).get("values") or []]
    if k == "kvlist_value":
        return {kv.get("key"): _value(path, where, key, kv.get("value")) for kv in (x or {}).get("values") or []
                if isinstance(kv, dict)}
    raise IngestError(str(path), where, f"attribute {key!r}: unknown value type {k!r} (newer Phoenix version?)",
                      "Upgrade mast.")


def _attrs(path: Path, where: str, a: Any) -> dict[str, Any]:
    if a is None:
        return {}
    if not isinstance(a, list):
        raise IngestError(str(path), where, "attributes is not a list of {key, value}")
    out: dict[str, Any] = {}
    for kv in a:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise IngestError(str(path), where, "an attribute without a key")
        v = kv.get("value")
        # most attributes are strings: Phoenix's AnyValue then has string_value set and six nulls
        s = v.get("string_value") if type(v) is dict else None
        out[kv["key"]] = s if s is not None else _value(path, where, kv["key"], v)
    return out


def otlp_span(path: Path, where: str, s: Any, kinds: set[str]) -> Span:
    """A Phoenix OTLP-shaped span as the OTel importer's :class:`Span` (kind: its OpenInference kind)."""
    if not isinstance(s, dict):
        raise IngestError(str(path), where, f"expected a span object, found {type(s).__name__}")
    missing = [k for k in ("trace_id", "span_id", "name", "start_time_unix_nano") if s.get(k) in (None, "")]
    if missing:
        raise IngestError(str(path), where, "missing required field(s): " + ", ".join(missing))
    attrs = _attrs(path, where, s.get("attributes"))
    kind = str(attrs.get("openinference.span.kind") or "UNKNOWN").upper()
    if kind not in kinds:
        raise IngestError(str(path), where, f"unknown openinference.span.kind {kind!r} (newer Phoenix version?)",
                          "Upgrade mast.")
    attrs["openinference.span.kind"] = kind
    st = s.get("status")
    if st is not None and not isinstance(st, dict):
        raise IngestError(str(path), where, "status is not an object")
    code = (st or {}).get("code")
    if code is None:
        code = 0
    if code not in _STATUS:
        raise IngestError(str(path), where, f"unknown status code {code!r} (OTLP has 0, 1 and 2)")
    events = []
    for e in s.get("events") or []:
        if not isinstance(e, dict):
            raise IngestError(str(path), where, "an event is not an object")
        events.append({"name": e.get("name"), "time_ns": _ns(path, where, e.get("time_unix_nano"), "event time", False),
                       "attrs": _attrs(path, where, e.get("attributes"))})
    parent = s.get("parent_span_id")
    return Span(trace_id=str(s["trace_id"]), span_id=str(s["span_id"]),
                parent_id=str(parent) if parent not in (None, "") else None, name=str(s["name"]), kind=kind,
                start_ns=_ns(path, where, s["start_time_unix_nano"], "start_time_unix_nano", True),
                end_ns=_ns(path, where, s.get("end_time_unix_nano"), "end_time_unix_nano", False),
                status=_STATUS[code], status_msg=(st or {}).get("message") or None, attrs=attrs, events=events,
                links=[], resource={}, scope="phoenix", where=where)
