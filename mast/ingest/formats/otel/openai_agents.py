"""OpenAI Agents SDK traces as its own tracing processors write them.

The SDK (``openai-agents``) traces every run itself: a trace object and spans whose
``export()`` dicts are what its ``BackendSpanExporter`` POSTs to OpenAI (``{"data":
[item, ...]}``) and what a user's own ``TracingProcessor`` writing them to a file gets::

    {"object": "trace", "id": "trace_<32 hex>", "workflow_name": "Agent workflow",
     "group_id": null, "metadata": null}
    {"object": "trace.span", "id": "span_<24 hex>", "trace_id": "trace_…", "parent_id": "span_…" | null,
     "started_at": "2026-12-01T13:37:08.234306+00:00", "ended_at": "…",
     "span_data": {"type": "agent" | "generation" | "response" | "function" | "handoff" | "custom" |
                   "guardrail" | "mcp_tools" | …, …},
     "error": null | {"message": "…", "data": {…}}}

Accepted files: one item per line, one batch (``{"data": [...]}``) per line, or one JSON
document that is a batch or an array of items.  Items of one trace may be spread over
batches.  The spans become the OTel importer's :class:`Span` with OpenInference attributes
(agent → AGENT with ``agent.name``; generation / response → LLM with its usage, a
generation's input and output messages; function → TOOL; handoff → a ``handoff to X``
span, a handoff from the agent whose turn it is to ``to_agent``; custom ``task`` / ``turn``
and the rest → plain spans) and go through the same step builder as OpenInference's own
instrumentation of the SDK, so both give the same trace.  The task is the first user
message a generation was sent; a run through the Responses API exports no message text
(its spans carry the response id and usage only), so its task is unknown.  An unknown
``object`` is refused as a newer SDK version; an unknown span type is kept as a plain span.

Format notes: docs/formats/spans.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import DeclineDetects, first_line_object, gc_paused, jsonl_records, load_json, strip_bom
from mast.ingest.formats.otel.spans import Span, _ns, _utc_second
from mast.ingest.formats.otel.steps import build_trace
from mast.model import Trace

#: the scope the spans get, so the dialect helpers know them (``dialects.is_openai_agents``)
SCOPE = "openai-agents"
_OBJECTS = ("trace", "trace.span")
_HEAD_RX = re.compile(rb'^\s*\[?\s*\{\s*("data"\s*:\s*\[\s*\{\s*)?"object"\s*:\s*"trace(\.span)?"')


def _item_kind(obj: Any) -> str | None:
    if isinstance(obj, dict):
        if obj.get("object") in _OBJECTS and "id" in obj:
            return "item"
        data = obj.get("data")
        if isinstance(data, list) and data and isinstance(data[0], dict) and data[0].get("object") in _OBJECTS:
            return "batch"
    return None


#: a generation's fields and their attributes, in the order they were always listed
_GENERATION = (("model", "gen_ai.request.model"), ("response_id", "openai_agents.response_id"),
               ("input", "input.value"), ("output", "gen_ai.output.messages"))


def _attrs(sd: dict) -> tuple[str, dict[str, Any]]:
    """A span's name and OpenInference attributes from its ``span_data``, None values left out."""
    t = sd.get("type")
    g = sd.get
    # each branch adds only the values that are set, in the order the attributes were
    # always listed (a dict built whole and then filtered costs a second pass per span)
    if t == "agent":
        name = g("name")
        a = {"openinference.span.kind": "AGENT"}
        if name is not None:
            a["agent.name"] = name
        for k, key in (("tools", "openai_agents.tools"), ("handoffs", "openai_agents.handoffs")):
            v = g(k)
            if v is not None:
                a[key] = v
        return str(name or "agent"), a
    if t == "generation" or t == "response":
        u = g("usage")
        a = {"openinference.span.kind": "LLM"}
        if isinstance(u, dict):
            v = u.get("input_tokens")
            if v is not None:
                a["gen_ai.usage.input_tokens"] = v
            v = u.get("output_tokens")
            if v is not None:
                a["gen_ai.usage.output_tokens"] = v
        # input and output kept parsed: the dialect helpers take message lists as they are
        for k, key in _GENERATION:
            v = g(k)
            if v is not None:
                a[key] = v
        return str(t), a
    if t == "function":
        name = g("name")
        a = {"openinference.span.kind": "TOOL"}
        if name is not None:
            a["tool.name"] = name
        for k, key in (("input", "input.value"), ("output", "output.value"), ("mcp_data", "openai_agents.mcp_data")):
            v = g(k)
            if v is not None:
                a[key] = v
        return str(name or "function"), a
    if t == "handoff":
        to = g("to_agent")
        a = {"openinference.span.kind": "TOOL", "tool.name": f"handoff to {to}"}
        v = g("from_agent")
        if v is not None:
            a["input.value"] = v
        if to is not None:
            a["output.value"] = to
        return f"handoff to {to}", a
    # custom (task, turn), guardrail, mcp_tools, speech…: structure only
    # kept as decoded: nothing reads these but by key, so no JSON round trip
    out = {"openai_agents." + k: v for k, v in sd.items() if k != "type" and v is not None}
    if t is not None:
        out["openai_agents.type"] = t
    return str(g("name") or t or "span"), out


def _error_text(err: Any) -> str | None:
    if not isinstance(err, dict):
        return str(err) if err else None
    msg = str(err.get("message") or "error")
    data = err.get("data")
    detail = data.get("error") if isinstance(data, dict) else None
    return f"{msg}: {detail}" if detail else msg


#: ``YYYY-MM-DDTHH:MM:SS`` -> its epoch second, for the seconds seen in the SDK's own ISO
#: form (the spans of a run share them); bounded, cleared when full
_SECONDS: dict[str, int] = {}
_SECONDS_MAX = 65536


def _time(path: Path, where: str, v: Any, what: str, required: bool) -> int | None:
    # the SDK's own ISO form (``2026-12-01T14:10:41.938490+00:00``), on every span twice:
    # tested before _ns' general ones, its second looked up by the text it is written as
    if type(v) is str and len(v) == 32 and v[19] == "." and v.endswith("+00:00"):
        frac = v[20:26]
        if frac.isdecimal() and frac.isascii():
            head = v[:19]
            sec = _SECONDS.get(head)
            if sec is None and head.isascii():
                sec = _utc_second(head)
                if sec is not None:
                    if len(_SECONDS) >= _SECONDS_MAX:
                        _SECONDS.clear()
                    _SECONDS[head] = sec
            if sec is not None:
                return sec * 1_000_000_000 + int(frac) * 1000
    return _ns(path, where, v, what, required)


def _span(path: Path, where: str, it: dict) -> Span:
    g = it.get
    sd, started = g("span_data"), g("started_at")
    if sd is None or started is None or "id" not in it or "trace_id" not in it:
        missing = [k for k in ("id", "trace_id", "started_at", "span_data") if k not in it]
        if missing:
            raise IngestError(str(path), where, "missing required field(s): " + ", ".join(missing))
    if not isinstance(sd, dict):
        raise IngestError(str(path), where, "span_data is not an object")
    name, attrs = _attrs(sd)
    err = g("error")
    parent = g("parent_id")
    # positional, in Span's field order (keywords cost more, per span)
    return Span(str(it["trace_id"]), str(it["id"]), str(parent) if parent else None, name, "INTERNAL",
                _time(path, where, started, "started_at", True),
                _time(path, where, g("ended_at"), "ended_at", False),
                "ERROR" if err else "OK", _error_text(err) if err is not None else None,
                attrs, [], [], {}, SCOPE, where)


class OpenAIAgentsImporter(DeclineDetects):
    name = "openai-agents"
    description = "OpenAI Agents SDK traces: trace/span export() dicts, as JSON Lines or the backend exporter's batches"
    example = '{"object": "trace", "id": "trace_e5526e38…", "workflow_name": "Agent workflow", "group_id": null, …'

    def decline(self, path: Path, head: bytes) -> tuple[int, str] | None:
        """How far this file got as an OpenAI Agents export, and why it is not one (None: it is)."""
        body = strip_bom(head)
        if not body.lstrip()[:1] in (b"{", b"["):
            return 0, "not JSON"
        if _HEAD_RX.match(body):
            return None
        if b'"trace.span"' in body or b'"span_data"' in body:
            return 2, 'spans with span_data, but the first record is no {"object": "trace" | "trace.span"} item or batch'
        return 0, 'no {"object": "trace" | "trace.span"} item'

    @staticmethod
    def _gather(path: Path, docs: Any, traces: dict[str, dict], spans: dict[str, list[Span]]) -> None:
        """The file's trace items into ``traces`` and its spans, by trace id, into ``spans``."""
        for where, doc in docs:
            if type(doc) is dict and doc.get("object") == "trace.span" and "id" in doc:
                # the common line, one span: what the general route below does with it
                sp = _span(path, where, doc)
                group = spans.get(sp.trace_id)
                if group is None:
                    spans[sp.trace_id] = [sp]
                else:
                    group.append(sp)
                continue
            kind = _item_kind(doc)
            if kind == "batch":
                items = [(f"{where}, data[{j}]" if where else f"data[{j}]", x) for j, x in enumerate(doc["data"])]
            elif isinstance(doc, dict) and "object" in doc:
                items = [(where, doc)]
            else:
                found = "" if isinstance(doc, dict) else f", found {type(doc).__name__}"
                raise IngestError(str(path), where, 'expected an {"object": "trace" | "trace.span"} item or a '
                                  '{"data": [...]} batch' + found)
            for w, it in items:
                if not isinstance(it, dict):
                    raise IngestError(str(path), w, f"expected an item object, found {type(it).__name__}")
                obj = it.get("object")
                if obj == "trace":
                    if "id" not in it:
                        raise IngestError(str(path), w, "missing required field: id")
                    traces.setdefault(str(it["id"]), it)
                    spans.setdefault(str(it["id"]), [])
                elif obj == "trace.span":
                    sp = _span(path, w, it)
                    spans.setdefault(sp.trace_id, []).append(sp)
                else:
                    raise IngestError(str(path), w, f"unknown object {obj!r} (newer SDK version?)", "Upgrade mast.")

    def read(self, path: Path) -> Iterator[Trace]:
        first = first_line_object(path)
        if first is not None and (first[1] or path.suffix in (".jsonl", ".ndjson")):
            docs: Any = ((f"line {i + 1}", d) for i, d in jsonl_records(path))
        else:
            data = load_json(path)
            docs = ((f"{i}" if isinstance(data, list) else None, d)
                    for i, d in enumerate(data if isinstance(data, list) else [data]))
        traces: dict[str, dict] = {}
        spans: dict[str, list[Span]] = {}
        with gc_paused():
            self._gather(path, docs, traces, spans)
        n = 0
        for tid, group in spans.items():
            if not group:
                continue  # a trace whose spans are in another file (or were never exported)
            tr = traces.get(tid, {})
            wf = tr.get("workflow_name")
            if wf:
                for s in group:
                    if not s.parent_id:
                        s.attrs["gen_ai.workflow.name"] = wf  # the system name, unless the SDK's default
            with gc_paused():  # (not around the yield below)
                t = build_trace(path, n, group, source_format=self.name, name_agents=True)
            t.metadata.update({k: v for k, v in (("workflow_name", wf), ("group_id", tr.get("group_id")),
                                                 ("trace_metadata", tr.get("metadata"))) if v})
            n += 1
            yield t
        if n == 0:
            raise IngestError(str(path), None, "no spans in file")
