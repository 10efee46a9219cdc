"""OpenTelemetry spans: OTLP/JSON files, span JSON Lines and the SDK's ``to_json`` dumps.

Accepted files (one importer, ``otel``):
- OTLP/JSON ``ExportTraceServiceRequest`` (``{"resourceSpans": [...]}``), one document
  or one per line (the Collector ``file`` exporter);
- span JSON Lines: one span per line, in OTLP shape (``traceId``/``spanId``, attributes
  as a ``[{key, value}]`` list or a flat object) or the SDK's ``ReadableSpan.to_json()``
  shape (``context.trace_id``, ``kind: "SpanKind.X"``), also pretty-printed and
  concatenated as ``ConsoleSpanExporter`` writes it.
Required per span: trace id, span id, name, start time.  Ids may be hex (optionally
``0x``-prefixed) or protobuf's base64; both become lower-case hex.  An attribute value of
an unknown OTLP type is refused as a newer format.

Three attribute dialects are read (FORMATS.md §4):
- OTel GenAI semantic conventions, both generations: ``gen_ai.operation.name``,
  ``gen_ai.input/output.messages`` (parts JSON, possibly as strings), and the older
  ``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*`` attributes and ``gen_ai.*`` span
  events; tokens from ``gen_ai.usage.{input,output}_tokens`` (or the deprecated
  ``prompt_tokens``/``completion_tokens``);
- OpenInference (``openinference.span.kind``, ``input.value``/``output.value``,
  flattened ``llm.input_messages.N.*`` / ``llm.output_messages.N.*``, ``llm.token_count.*``,
  ``llm.cost.total``);
- extras: LangSmith (``langsmith.span.kind``, ``langsmith.metadata.*``, ``gen_ai.prompt``/
  ``gen_ai.completion`` as JSON) and CrewAI (``crewai.agent.role``, ``crewai.crew.*``;
  CrewAI's ``gen_ai.agent.name`` is a hash, so the role wins).

Traces: spans are grouped by trace id; traces joined by span ``links`` are stitched
into one (AgentChat splits a run into many traces).  A trace made only of LLM spans that
sits, in time, inside an LLM span of another trace is a duplicate (OpenInference's
CrewAI event-listener mode re-emits every OpenAI call as its own root) and is dropped; an
LLM span with an LLM span below it yields one step (the inner one, which has the tokens).

AutoGen AgentChat keeps the conversation only in the ``message`` attribute of its runtime
``autogen process`` spans: when those are present the steps are its chat messages
(deduplicated by message id; a transfer tool call, its result and the ``HandoffMessage``
are one ``handoff``), with tokens from ``models_usage``.

Otherwise, steps follow the depth-first order of the span tree (children by start time): LLM spans →
``llm_call``; tool spans → ``tool_call`` + ``tool_result`` (``tool_call.span_id`` =
``tool_result.parent_span_id`` = the span id) or, for ``transfer_to_X`` and CrewAI
delegation tools, one ``handoff``; an agent span for another agent than the last
handoff's target → implicit ``handoff``; ERROR status → ``error`` once, at the innermost
span with that message (langgraph-supervisor ``ParentCommand`` is a handoff, not an
error); the root's input → the first ``message`` (the task); the root's end →
``termination``.  Agent = the span's own agent attribute, else its nearest ancestor's.
System name: ``service.name`` (unless a default or the library's own name), else the crew
/ workflow / graph name, else ``--system``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import as_text, strip_bom
from mast.ingest.langchain_messages import NotAMessage, lc_message, step, text_of, transfer_target
from mast.model import Outcome, StepKind, Trace

_HEX_RX = re.compile(r"^(?:0x)?([0-9a-fA-F]{16}|[0-9a-fA-F]{32})$")
_KIND = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
_LLM_OPS = {"chat", "text_completion", "generate_content", "generate", "completion"}
_AGENT_OPS = {"invoke_agent"}  # create_agent is construction, not a turn
_PARENT_CMD_RX = re.compile(r"ParentCommand\(")
_GOTO_RX = re.compile(r"goto=(?:\[)?['\"]([^'\"]+)['\"]")
_DELEGATE_RX = re.compile(r"(?i)^(delegate work to coworker|ask question to coworker)$")
_DEFAULT_SERVICES = {"crewai", "langsmith", "langchain", "langgraph", "autogen", "ag2", "openinference"}


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


# -- parsing -------------------------------------------------------------------------------

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
    if k == "intValue":
        return int(x)
    if k == "doubleValue":
        return float(x)
    if k == "arrayValue":
        return [_any(path, where, i) for i in (x or {}).get("values", [])]
    if k == "kvlistValue":
        return {kv.get("key"): _any(path, where, kv.get("value")) for kv in (x or {}).get("values", [])}
    if k == "bytesValue":
        return x
    raise IngestError(str(path), where, f"unknown attribute value type {k!r} (newer OTLP version?)",
                      "Upgrade mast.")


def _attrs(path: Path, where: str, a: Any) -> dict[str, Any]:
    if a is None:
        return {}
    if isinstance(a, dict):
        return dict(a)
    if isinstance(a, list):
        out = {}
        for kv in a:
            if not isinstance(kv, dict) or "key" not in kv:
                raise IngestError(str(path), where, "attribute without key")
            out[kv["key"]] = _any(path, where, kv.get("value"))
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
    if s.isdigit():
        return int(s)
    try:
        d = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise IngestError(str(path), where, f"{what} {s!r} is not a time") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return int(d.timestamp()) * 1_000_000_000 + d.microsecond * 1000


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    d = datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{(ns % 1_000_000_000) // 1000:06d}+00:00"


def _otlp_span(path: Path, where: str, s: Any, resource: dict, scope: str | None) -> Span:
    if not isinstance(s, dict):
        raise IngestError(str(path), where, "expected a span object")
    for req in ("traceId", "spanId", "name"):
        if req not in s:
            raise IngestError(str(path), where, f"missing required field: {req}")
    attrs = _attrs(path, where, s.get("attributes"))
    st = s.get("status") or {}
    code = st.get("code", 0)
    status = _STATUS.get(code, str(code).replace("STATUS_CODE_", "")) if isinstance(code, int) else str(code).replace("STATUS_CODE_", "")
    kind = s.get("kind", 0)
    events = [{"name": e.get("name"), "time_ns": _ns(path, where, e.get("timeUnixNano"), "event time", False),
               "attrs": _attrs(path, where, e.get("attributes"))} for e in s.get("events") or []]
    links = [(_id(path, where, ln.get("traceId"), "link traceId"), _id(path, where, ln.get("spanId"), "link spanId", False))
             for ln in s.get("links") or []]
    return Span(trace_id=_id(path, where, s["traceId"], "traceId"), span_id=_id(path, where, s["spanId"], "spanId"),
                parent_id=_id(path, where, s.get("parentSpanId"), "parentSpanId", False), name=str(s["name"]),
                kind=_KIND.get(kind, str(kind).replace("SPAN_KIND_", "")) if isinstance(kind, int) else str(kind).replace("SPAN_KIND_", ""),
                start_ns=_ns(path, where, s.get("startTimeUnixNano"), "startTimeUnixNano", True),
                end_ns=_ns(path, where, s.get("endTimeUnixNano"), "endTimeUnixNano", False),
                status=status, status_msg=st.get("message") or None, attrs=attrs, events=events, links=links,
                resource=resource, scope=scope, where=where)


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


def _doc_spans(path: Path, where: str, doc: Any) -> Iterator[Span]:
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
    else:
        raise IngestError(str(path), where.rstrip(": ") or None,
                          "not an OpenTelemetry span or OTLP request (expected resourceSpans, traceId/spanId or context)")


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
    except ValueError:
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


# -- classification ---------------------------------------------------------------------------

def _kind_of(s: Span) -> str:
    a = s.attrs
    oi = str(a.get("openinference.span.kind") or "").upper()
    ls = str(a.get("langsmith.span.kind") or "").lower()
    op = str(a.get("gen_ai.operation.name") or "").lower()
    ag2 = str(a.get("ag2.span.type") or "").lower()
    if oi == "LLM" or ls in ("llm", "chat") or op in _LLM_OPS or ag2 == "llm" or "llm.request.type" in a:
        return "llm"
    if oi == "TOOL" or ls == "tool" or op == "execute_tool" or ag2 == "tool":
        return "tool"
    if oi == "AGENT" or op in _AGENT_OPS or ag2 == "agent":
        return "agent"
    if "gen_ai.prompt.0.content" in a or "gen_ai.completion.0.content" in a:
        return "llm"
    return "other"


def _metadata(a: dict) -> dict:
    md = a.get("metadata")
    if isinstance(md, str):
        try:
            md = json.loads(md)
        except ValueError:
            md = None
    return md if isinstance(md, dict) else {}


def _own_agent(s: Span) -> str | None:
    a = s.attrs
    for k in ("crewai.agent.role", "tool.agent_role"):
        if a.get(k):
            return str(a[k]).strip()
    md = _metadata(a)
    for src in (md, {k[len("langsmith.metadata."):]: v for k, v in a.items() if k.startswith("langsmith.metadata.")}):
        if src.get("lc_agent_name"):
            return str(src["lc_agent_name"])
        ns = src.get("langgraph_checkpoint_ns") or src.get("checkpoint_ns")
        if isinstance(ns, str) and ns:
            return ns.split("|", 1)[0].split(":", 1)[0]
    if a.get("graph.node.id") and str(a.get("openinference.span.kind", "")).upper() == "AGENT":
        return str(a["graph.node.id"]).strip()
    if a.get("agent.name"):
        return str(a["agent.name"])
    if a.get("gen_ai.agent.name") and not (s.scope or "").startswith("crewai"):
        return str(a["gen_ai.agent.name"])
    return None


def _json_maybe(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _parts_text(msgs: Any) -> tuple[str | None, list[tuple[str | None, str | None, Any]]]:
    """Text and tool calls from GenAI ``parts`` messages (the newer convention)."""
    msgs = _json_maybe(msgs)
    if not isinstance(msgs, list):
        return (as_text(msgs) if msgs else None), []
    texts, calls = [], []
    for m in msgs:
        if not isinstance(m, dict):
            continue
        parts = m.get("parts")
        if isinstance(parts, list):
            for p in parts:
                if not isinstance(p, dict):
                    continue
                if p.get("type") in ("text", "reasoning") and p.get("content") is not None:
                    if p.get("type") == "text":
                        texts.append(str(p["content"]))
                elif p.get("type") == "tool_call":
                    calls.append((p.get("id"), p.get("name"), p.get("arguments")))
        elif "content" in m:  # a plain {role, content} list
            t = text_of(m.get("content"))
            if t:
                texts.append(t)
            for c in m.get("tool_calls") or []:
                fn = c.get("function") or {}
                calls.append((c.get("id"), fn.get("name") or c.get("name"), fn.get("arguments", c.get("arguments"))))
    return ("\n".join(texts) if texts else None), calls


def _flat_messages(a: dict, prefix: str) -> list[dict]:
    """OpenInference flattened ``llm.output_messages.N.message.*`` → a list of messages."""
    out: dict[int, dict] = {}
    p = prefix + "."
    for k, v in a.items():
        if not k.startswith(p):
            continue
        rest = k[len(p):]
        idx, _, field_ = rest.partition(".")
        if not idx.isdigit():
            continue
        m = out.setdefault(int(idx), {"tool_calls": {}})
        field_ = field_.removeprefix("message.")
        if field_.startswith("tool_calls."):
            j, _, tf = field_[len("tool_calls."):].partition(".")
            if j.isdigit():
                m["tool_calls"].setdefault(int(j), {})[tf.removeprefix("tool_call.")] = v
        else:
            m[field_] = v
    return [out[i] for i in sorted(out)]


def _old_gen(a: dict, prefix: str) -> list[dict]:
    """OpenLLMetry-style ``gen_ai.completion.N.{role,content,tool_calls.M.*}``."""
    out: dict[int, dict] = {}
    p = prefix + "."
    for k, v in a.items():
        if k.startswith(p):
            idx, _, f = k[len(p):].partition(".")
            if idx.isdigit():
                out.setdefault(int(idx), {})[f] = v
    return [out[i] for i in sorted(out)]


def _llm_output(s: Span) -> tuple[str | None, list[str | None]]:
    a = s.attrs
    if a.get("gen_ai.output.messages") is not None:
        t, calls = _parts_text(a["gen_ai.output.messages"])
        return t, [c[1] for c in calls]
    fm = _flat_messages(a, "llm.output_messages")
    if fm:
        text = "\n".join(str(m["content"]) for m in fm if m.get("content")) or None
        names = [tc.get("function.name") for m in fm for tc in m["tool_calls"].values()]
        return text, names
    og = _old_gen(a, "gen_ai.completion")
    if og:
        text = "\n".join(str(m["content"]) for m in og if m.get("content")) or None
        names = [v for m in og for k, v in m.items() if k.startswith("tool_calls.") and k.endswith(".name")]
        return text, names
    if a.get("gen_ai.completion") is not None:
        return _langsmith_completion(a["gen_ai.completion"])
    for e in s.events:  # the event generation of the conventions
        if e["name"] in ("gen_ai.choice", "gen_ai.content.completion"):
            ea = e["attrs"]
            body = _json_maybe(ea.get("message") or ea.get("body") or ea.get("gen_ai.completion"))
            if isinstance(body, dict):
                return text_of(body.get("content")), [((c.get("function") or {}).get("name")) for c in body.get("tool_calls") or []]
            if body:
                return as_text(body), []
    if a.get("output.value") is not None:
        return _value_text(a["output.value"]), []
    return None, []


def _langsmith_completion(v: Any) -> tuple[str | None, list]:
    v = _json_maybe(v)
    if isinstance(v, dict):
        gens = v.get("generations")
        if isinstance(gens, list) and gens:
            g = gens[0][0] if isinstance(gens[0], list) and gens[0] else gens[0]
            if isinstance(g, dict):
                try:
                    m = lc_message(g.get("message"))
                except NotAMessage:
                    m = None
                if m:
                    return text_of(m.get("content")), [c.get("name") for c in m.get("tool_calls") or []]
                return g.get("text") or None, []
    return (as_text(v) if v not in (None, "") else None), []


def _value_text(v: Any) -> str | None:
    """``input.value`` / ``output.value``: the last message's text when it is a message dump."""
    j = _json_maybe(v)
    if isinstance(j, dict) and isinstance(j.get("messages"), list):
        j = j["messages"]
    if isinstance(j, list) and j:
        last = j[-1]
        try:
            m = lc_message(last)
        except NotAMessage:
            m = None
        if m:
            return text_of(m.get("content"))
        if isinstance(last, dict) and "content" in last:
            return text_of(last["content"])
    if isinstance(j, dict) and "output" in j and len(j) == 1:
        return as_text(j["output"])
    return as_text(v) if v not in (None, "") else None


def _input_text(s: Span) -> str | None:
    """The task a root span was given."""
    a = s.attrs
    if a.get("gen_ai.input.messages") is not None:
        msgs = _json_maybe(a["gen_ai.input.messages"])
        if isinstance(msgs, list):
            users = [m for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
            if users:
                return _parts_text([users[0]])[0]
    if a.get("crewai.crew.inputs") is not None:
        return as_text(_json_maybe(a["crewai.crew.inputs"]))
    for key in ("input.value", "gen_ai.prompt"):
        if a.get(key) is None:
            continue
        j = _json_maybe(a[key])
        if isinstance(j, dict) and isinstance(j.get("messages"), list):
            for it in j["messages"]:
                try:
                    m = lc_message(it[0] if isinstance(it, list) and it else it)
                except NotAMessage:
                    m = None
                if m and m.get("type") == "human":
                    return text_of(m.get("content"))
                if isinstance(it, dict) and it.get("role") == "user":
                    return text_of(it.get("content"))
        return as_text(j)
    fm = _flat_messages(a, "llm.input_messages")
    users = [m for m in fm if m.get("role") == "user" and m.get("content")]
    if users:
        return str(users[0]["content"])
    return None


def _root_output(s: Span) -> str | None:
    a = s.attrs
    if a.get("crewai.crew.output") is not None:
        return as_text(a["crewai.crew.output"])
    if a.get("gen_ai.output.messages") is not None:
        return _parts_text(a["gen_ai.output.messages"])[0]
    if a.get("output.value") is not None:
        return _value_text(a["output.value"])
    if a.get("gen_ai.completion") is not None:
        return _value_text(a["gen_ai.completion"])
    return None


def _tokens(a: dict) -> tuple[int | None, int | None]:
    def first(*keys):
        for k in keys:
            if a.get(k) is not None:
                try:
                    return int(a[k])
                except (TypeError, ValueError):
                    return None
        return None
    return (first("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                  "llm.usage.prompt_tokens"),
            first("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion",
                  "llm.usage.completion_tokens"))


def _error_text(s: Span) -> str | None:
    for e in s.events:
        if e["name"] == "exception":
            ea = e["attrs"]
            msg = ea.get("exception.message")
            typ = ea.get("exception.type")
            if msg or typ:
                return f"{typ}: {msg}" if typ and msg else str(msg or typ)
    return s.status_msg


def _tool_name(s: Span) -> str:
    a = s.attrs
    for k in ("gen_ai.tool.name", "tool.name"):
        if a.get(k):
            return str(a[k])
    n = s.name
    for pre in ("execute_tool ", "call tool ", "tool "):
        if n.startswith(pre):
            return n[len(pre):]
    return n[:-4] if n.endswith(".run") else n


# -- importer ---------------------------------------------------------------------------------

class OTelImporter:
    name = "otel"
    description = "OpenTelemetry spans: OTLP/JSON, span JSONL or SDK to_json (GenAI semconv, OpenInference, LangSmith, CrewAI)"

    def detect(self, path: Path, head: bytes) -> bool:
        text = strip_bom(head).decode("utf-8", "replace").lstrip()
        if not text.startswith("{") and not text.startswith("["):
            return False
        if re.match(r'[\[\s]*\{\s*"resourceSpans"\s*:', text):
            return True
        # one span per line / concatenated SDK spans: look at the first object's keys
        body = text[1:].lstrip() if text.startswith("[") else text
        try:
            obj = json.JSONDecoder().raw_decode(body)[0]
        except ValueError:
            m = re.match(r'\{\s*"name"\s*:\s*"[^"]*",\s*"context"\s*:\s*\{\s*"trace_id"\s*:\s*"0x', body)
            return bool(m)
        if not isinstance(obj, dict):
            return False
        if "resourceSpans" in obj:
            return True
        ctx = obj.get("context")
        if isinstance(ctx, dict) and "trace_id" in ctx and "span_id" in ctx and "name" in obj:
            return True
        return ("traceId" in obj and "spanId" in obj and "name" in obj
                and ("startTimeUnixNano" in obj or "attributes" in obj))

    def read(self, path: Path) -> Iterator[Trace]:
        spans = load_spans(path)
        if not spans:
            raise IngestError(str(path), None, "no spans in file")
        groups = _group(spans)
        groups = _drop_duplicate_llm_groups(groups)
        for idx, g in enumerate(groups):
            yield _trace(path, idx, g)


def _group(spans: list[Span]) -> list[list[Span]]:
    """Spans by trace, traces joined through links (union-find)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    present = {s.trace_id for s in spans}
    for s in spans:
        find(s.trace_id)
        for lt, _ in s.links:
            if lt in present and lt != s.trace_id:
                a, b = find(s.trace_id), find(lt)
                if a != b:
                    parent[max(a, b)] = min(a, b)
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


def _drop_duplicate_llm_groups(groups: list[list[Span]]) -> list[list[Span]]:
    llm_spans = [(s.start_ns, s.end_ns or s.start_ns, gi) for gi, g in enumerate(groups) for s in g
                 if _kind_of(s) == "llm"]
    keep = []
    for gi, g in enumerate(groups):
        if len(groups) > 1 and all(_kind_of(s) == "other" and not s.name.startswith("autogen process") for s in g):
            continue  # nothing happened in it (AgentChat's agent construction roots, a "build team" span)
        if len(groups) > 1 and all(_kind_of(s) == "llm" for s in g):
            lo = min(s.start_ns for s in g)
            hi = max(s.end_ns or s.start_ns for s in g)
            if any(oi != gi and st <= lo and hi <= en for st, en, oi in llm_spans):
                continue  # a re-emitted copy of an LLM call already inside another trace
        keep.append(g)
    return keep


_AC_TEXT = {"TextMessage", "ToolCallSummaryMessage", "MultiModalMessage", "StructuredMessage", "ThoughtEvent",
            "UserInputRequestedEvent", "SelectorEvent", "MemoryQueryEvent"}


def _agentchat_steps(spans: list[Span]) -> tuple[list, str | None] | None:
    """AgentChat puts the conversation only in the ``message`` attribute of its runtime
    ``autogen process`` spans (``invoke_agent`` / ``execute_tool`` carry no content): read
    the chat messages from there, once each, in the order they were first delivered.
    A handoff (transfer tool call + its result + ``HandoffMessage``) is one step."""
    found: list[tuple[dict, int]] = []
    seen: set = set()
    for sp in sorted(spans, key=lambda x: x.start_ns):
        if not sp.name.startswith("autogen process") or not isinstance(sp.attrs.get("message"), str):
            continue
        try:
            body = json.loads(sp.attrs["message"])
        except ValueError:
            continue
        if not isinstance(body, dict):
            continue
        cands: list = []
        if isinstance(body.get("messages"), list):
            cands += body["messages"]
        if isinstance(body.get("message"), dict):
            cands.append(body["message"])
        resp = body.get("response")
        if isinstance(resp, dict):
            cands += [resp.get("chat_message")] + list(resp.get("inner_messages") or [])
        for m in cands:
            if not isinstance(m, dict) or "type" not in m or "source" not in m:
                continue
            key = m.get("id") or json.dumps([m.get("type"), m.get("source"), m.get("content")], default=str)
            if key in seen:
                continue
            seen.add(key)
            found.append((m, sp.start_ns))
    if not found:
        return None
    steps: list = []
    handoff_calls: set = set()
    task = None
    pending = [0, 0, False]  # usage of a message that produced no step (a transfer call)
    for m, t_ns in found:
        typ, src = m["type"], str(m["source"])
        ts = m.get("created_at") or _iso(t_ns)
        if isinstance(ts, str) and ts.endswith("Z"):
            ts = ts[:-1] + "+00:00"
        usage = m.get("models_usage") or {}
        first = len(steps)
        user = src == "user"
        if typ == "ToolCallRequestEvent":
            for c in m.get("content") or []:
                target = transfer_target(c.get("name"))
                if target:
                    handoff_calls.add(c.get("id"))
                    continue
                steps.append(step(agent=src, role="assistant", kind=StepKind.TOOL_CALL, tool_name=c.get("name"),
                                  tool_args=c.get("arguments"), span_id=c.get("id"), started_at=ts))
        elif typ == "ToolCallExecutionEvent":
            for r in m.get("content") or []:
                if r.get("call_id") in handoff_calls:
                    continue
                steps.append(step(agent=src, role="tool", kind=StepKind.TOOL_RESULT, tool_name=r.get("name"),
                                  content=as_text(r.get("content")), parent_span_id=r.get("call_id"),
                                  status="error" if r.get("is_error") else "ok", started_at=ts))
        elif typ == "HandoffMessage":
            steps.append(step(agent=src, role="assistant", kind=StepKind.HANDOFF, target_agent=m.get("target"),
                              content=as_text(m.get("content")), started_at=ts))
        elif typ == "StopMessage":
            steps.append(step(agent=src, kind=StepKind.TERMINATION, content=as_text(m.get("content")),
                              started_at=ts, status="stopped"))
        else:
            kind = StepKind.MESSAGE if typ in _AC_TEXT or "Message" in typ else StepKind.EVENT
            content = m.get("content")
            steps.append(step(agent=None if user else src, role="user" if user else "assistant", kind=kind,
                              content=as_text(content), started_at=ts, attributes={"type": typ}))
            if user and task is None and isinstance(content, str):
                task = content
        if usage:
            pending[0] += usage.get("prompt_tokens") or 0
            pending[1] += usage.get("completion_tokens") or 0
            pending[2] = True
        if pending[2] and len(steps) > first:
            steps[first].tokens_in, steps[first].tokens_out = pending[0], pending[1]
            pending[:] = [0, 0, False]
    return steps, task


def _trace(path: Path, index: int, spans: list[Span]) -> Trace:
    by_id: dict[tuple[str, str], Span] = {}
    for s in spans:
        s.children = []
        by_id[(s.trace_id, s.span_id)] = s
    ids = {s.span_id: s for s in spans}
    roots: list[Span] = []
    for s in spans:
        p = by_id.get((s.trace_id, s.parent_id)) if s.parent_id else None
        if p is None and s.parent_id:
            p = ids.get(s.parent_id)
        if p is not None and p is not s:
            p.children.append(s)
        else:
            roots.append(s)
    for s in spans:
        s.children.sort(key=lambda c: c.start_ns)
    roots.sort(key=lambda c: c.start_ns)
    kinds = {id(s): _kind_of(s) for s in spans}

    def has_llm_below(s: Span) -> bool:
        stack = list(s.children)
        while stack:
            c = stack.pop()
            if kinds[id(c)] == "llm":
                return True
            stack.extend(c.children)
        return False

    def has_error_below(s: Span, msg: str | None) -> bool:
        stack = list(s.children)
        while stack:
            c = stack.pop()
            if c.status == "ERROR":
                t = _error_text(c) or ""
                # the same failure, re-raised (and re-worded) by every enclosing span
                if msg is None or t == msg or (t and msg and (t in msg or msg in t)):
                    return True
            stack.extend(c.children)
        return False

    main = max(roots, key=lambda r: (_subtree_size(r), -r.start_ns))
    ac = _agentchat_steps(spans)
    if ac is not None:
        steps, task = ac
        if not steps or steps[-1].kind != StepKind.TERMINATION:
            last = next((x.agent for x in reversed(steps) if x.agent), None)
            steps.append(step(agent=last, kind=StepKind.TERMINATION, status="completed",
                              started_at=_iso(max((x.end_ns or x.start_ns) for x in spans))))
        return Trace(system=_system(spans, main), framework="autogen", source_format="otel", source_path=str(path),
                     source_index=index, steps=steps, task=task,
                     started_at=_iso(min(x.start_ns for x in spans)),
                     ended_at=_iso(max((x.end_ns or x.start_ns) for x in spans)),
                     metadata={"source_id": sorted({x.trace_id for x in spans}), "spans": len(spans),
                               "first_record": spans[0].where, "dialects": ["autogen-runtime"]})
    steps = []
    state = {"last_target": None, "cur_agent": None, "last_agent_span": None}
    task = _input_text(main)
    first_task = next((x.attrs["crewai.task.description"] for x in sorted(spans, key=lambda x: x.start_ns)
                       if x.attrs.get("crewai.task.description")), None)
    if first_task and main.attrs.get("crewai.crew.inputs") is not None:
        task = str(first_task)  # a crew's task is its first task, as the event importer has it
    if task:
        steps.append(step(agent=None, role="user", kind=StepKind.MESSAGE, content=task,
                          started_at=_iso(main.start_ns), span_id=main.span_id))

    def visit(s: Span, inherited: str | None) -> str | None:
        """Emit the steps of one span; return the agent its children inherit."""
        own = _own_agent(s)
        agent = own or inherited
        k = kinds[id(s)]
        st, en = _iso(s.start_ns), _iso(s.end_ns)
        err = s.status == "ERROR"
        emsg = _error_text(s) if err else None
        parent_cmd = bool(emsg and _PARENT_CMD_RX.search(emsg))
        if k == "agent" or (own and own != state["cur_agent"] and k != "llm" and k != "tool"):
            if agent and state["cur_agent"] and agent != state["cur_agent"] and state["last_target"] != agent:
                steps.append(step(agent=state["cur_agent"], kind=StepKind.HANDOFF, target_agent=agent,
                                  started_at=st, span_id=s.span_id, parent_span_id=s.parent_id,
                                  attributes={"implicit": True, "span": s.name}))
            if agent and agent != state["cur_agent"]:
                state["cur_agent"] = agent
                state["last_target"] = None
        if k == "llm" and not has_llm_below(s):
            text, calls = _llm_output(s)
            tin, tout = _tokens(s.attrs)
            cost = s.attrs.get("llm.cost.total", s.attrs.get("gen_ai.usage.cost"))
            model = s.attrs.get("gen_ai.response.model") or s.attrs.get("gen_ai.request.model") or s.attrs.get("llm.model_name")
            steps.append(step(agent=agent, role="assistant", kind=StepKind.LLM_CALL, content=text, started_at=st,
                              ended_at=en, span_id=s.span_id, parent_span_id=s.parent_id, tokens_in=tin,
                              tokens_out=tout, cost_usd=float(cost) if cost is not None else None,
                              status="error" if err else "ok",
                              attributes=_clean({"span": s.name, "model": model,
                                                 "tool_calls": [c for c in calls if c] or None})))
            if err and not parent_cmd:
                steps.append(step(agent=agent, kind=StepKind.ERROR, content=emsg, started_at=en, status="error",
                                  parent_span_id=s.span_id))
        elif k == "tool":
            name = _tool_name(s)
            a = s.attrs
            args = a.get("gen_ai.tool.call.arguments", a.get("input.value", a.get("gen_ai.prompt")))
            result = a.get("gen_ai.tool.call.result", a.get("output.value", a.get("gen_ai.completion")))
            target = transfer_target(name) or (_delegate_target(args) if _DELEGATE_RX.match(name) else None)
            dest = a.get("langsmith.metadata.__handoff_destination")
            if target or (emsg and parent_cmd and _GOTO_RX.search(emsg)):
                target = target or _GOTO_RX.search(emsg).group(1)
                steps.append(step(agent=agent, kind=StepKind.HANDOFF, target_agent=str(dest or target),
                                  tool_name=name, tool_args=_args_text(args), span_id=s.span_id,
                                  parent_span_id=s.parent_id, started_at=st, ended_at=en,
                                  attributes=_clean({"tool_call_id": a.get("gen_ai.tool.call.id")})))
                state["last_target"] = str(dest or target)
            else:
                steps.append(step(agent=agent, role="assistant", kind=StepKind.TOOL_CALL, tool_name=name,
                                  tool_args=_args_text(args), span_id=s.span_id, parent_span_id=s.parent_id,
                                  started_at=st, attributes=_clean({"tool_call_id": a.get("gen_ai.tool.call.id")})))
                rtext = _value_text(result) if result is not None else None
                steps.append(step(agent=agent, role="tool", kind=StepKind.TOOL_RESULT, tool_name=name,
                                  content=rtext if rtext is not None else (emsg if err else None),
                                  parent_span_id=s.span_id, started_at=en or st,
                                  status="error" if err and not parent_cmd else "ok"))
        elif err and not parent_cmd and s is not main and not has_error_below(s, emsg):
            steps.append(step(agent=agent, kind=StepKind.ERROR, content=emsg, started_at=en or st,
                              span_id=s.span_id, parent_span_id=s.parent_id, status="error",
                              attributes={"span": s.name}))
        elif parent_cmd and not any(kinds[id(c)] == "tool" for c in _descendants(s)):
            m = _GOTO_RX.search(emsg or "")
            if m and not _PARENT_CMD_RX.search(" ".join(_error_text(c) or "" for c in s.children if c.status == "ERROR")):
                if state["last_target"] != m.group(1):
                    steps.append(step(agent=agent, kind=StepKind.HANDOFF, target_agent=m.group(1), started_at=en or st,
                                      span_id=s.span_id, parent_span_id=s.parent_id, attributes={"via": "ParentCommand"}))
                    state["last_target"] = m.group(1)
        return agent

    # depth-first, children by start time; iterative, so deep span trees cannot overflow
    stack: list[tuple[Span, str | None]] = [(r, None) for r in reversed(roots)]
    while stack:
        sp, inherited = stack.pop()
        agent_below = visit(sp, inherited)
        stack.extend((c, agent_below) for c in reversed(sp.children))
    outcome = Outcome.UNKNOWN
    m_err = main.status == "ERROR" and not _PARENT_CMD_RX.search(_error_text(main) or "")
    if m_err:
        emsg = _error_text(main)
        if not has_error_below(main, emsg):
            steps.append(step(agent=state["cur_agent"], kind=StepKind.ERROR, content=emsg, status="error",
                              started_at=_iso(main.end_ns), span_id=main.span_id))
        outcome = Outcome.FAILURE
    if main.end_ns:
        # a run stitched from several traces ends when its last root does
        end = max((r.end_ns for r in roots if r.end_ns), default=main.end_ns)
        steps.append(step(agent=state["cur_agent"], kind=StepKind.TERMINATION,
                          content=None if m_err else _root_output(main), started_at=_iso(end),
                          status="failed" if m_err else "completed", parent_span_id=main.span_id))
    return Trace(system=_system(spans, main), framework=_framework(spans), source_format="otel",
                 source_path=str(path), source_index=index, steps=steps, task=task, outcome=outcome,
                 started_at=_iso(min(s.start_ns for s in spans)),
                 ended_at=_iso(max((s.end_ns or s.start_ns) for s in spans)),
                 metadata=_clean({"source_id": sorted({s.trace_id for s in spans}), "spans": len(spans),
                                  "first_record": spans[0].where,
                                  "dialects": sorted(_dialects(spans)) or None}))


def _descendants(s: Span) -> Iterator[Span]:
    stack = list(s.children)
    while stack:
        c = stack.pop()
        yield c
        stack.extend(c.children)


def _subtree_size(s: Span) -> int:
    return 1 + sum(1 for _ in _descendants(s))


def _delegate_target(args: Any) -> str | None:
    j = _json_maybe(args)
    if isinstance(j, dict) and j.get("coworker"):
        return str(j["coworker"]).strip()
    return None


def _args_text(v: Any) -> str | None:
    if v is None:
        return None
    return as_text(_json_maybe(v)) if not isinstance(v, str) else v


def _system(spans: list[Span], main: Span) -> str | None:
    svc = main.resource.get("service.name") or next((s.resource.get("service.name") for s in spans
                                                     if s.resource.get("service.name")), None)
    if svc and not str(svc).startswith("unknown_service") and str(svc).lower() not in _DEFAULT_SERVICES:
        return str(svc)
    for key in ("crewai.crew.name", "gen_ai.workflow.name", "langsmith.trace.name"):
        for s in [main, *spans]:
            # CrewAI's and LangGraph's default names ("crew", "LangGraph") name nothing
            if s.attrs.get(key) and str(s.attrs[key]) not in ("crew", "LangGraph"):
                return str(s.attrs[key])
    return None


def _framework(spans: list[Span]) -> str:
    scopes = " ".join(sorted({s.scope or "" for s in spans}))
    if "crewai" in scopes or any("crewai.crew.id" in s.attrs or "crew_id" in s.attrs for s in spans):
        return "crewai"
    if "ag2" in scopes or any("ag2.span.type" in s.attrs for s in spans):
        return "ag2"
    if "autogen" in scopes.lower() or any(str(s.attrs.get("gen_ai.system")) == "autogen" for s in spans):
        return "autogen"
    if any("langgraph_node" in _metadata(s.attrs) or "langsmith.metadata.langgraph_node" in s.attrs for s in spans):
        return "langgraph"
    if "langchain" in scopes or "langsmith" in scopes:
        return "langchain"
    return "otel"


def _dialects(spans: list[Span]) -> set[str]:
    out = set()
    for s in spans:
        a = s.attrs
        if "openinference.span.kind" in a:
            out.add("openinference")
        if "langsmith.span.kind" in a:
            out.add("langsmith")
        if any(k.startswith("crewai.") for k in a):
            out.add("crewai")
        if "gen_ai.input.messages" in a or "gen_ai.output.messages" in a:
            out.add("gen_ai")
        if any(k.startswith("gen_ai.prompt.") or k.startswith("gen_ai.completion.") for k in a):
            out.add("gen_ai_legacy")
        elif "gen_ai.operation.name" in a:
            out.add("gen_ai")
    return out


def _clean(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}
