"""Tiny OTLP/JSON traces with a known answer, for the coordination tests and the report's.

A trace is a tree of spans given as nested tuples; times are seconds from a fixed origin,
so every figure the analytics compute can be worked out by hand.  The documents are what
an OpenTelemetry SDK's OTLP exporter writes (GenAI semantic conventions: ``invoke_agent``,
``chat``, ``execute_tool``), read through the real OTLP importer.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

ORIGIN_NS = 1_764_000_000 * 10**9


@dataclass
class S:
    """One span: ``op`` is agent / llm / tool / root; children nest inside it."""
    op: str
    name: str
    start: float
    end: float
    children: list["S"] = field(default_factory=list)
    tokens: tuple[int, int] | None = None
    model: str | None = None
    parent: str | None = None  # an explicit parent span id (for broken links)
    span_id: str | None = None


def _attrs(s: S) -> list[dict]:
    a: dict[str, object] = {}
    if s.op == "agent":
        a = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": s.name}
    elif s.op == "llm":
        a = {"gen_ai.operation.name": "chat", "gen_ai.request.model": s.model or "gpt-4o-mini",
             "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text",
                                                                                   "content": f"{s.name} done"}]}])}
        if s.tokens:
            a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"] = s.tokens
    elif s.op == "tool":
        a = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": s.name,
             "gen_ai.tool.call.result": f"{s.name} result"}
    elif s.op == "root":
        a = {"gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": s.name}]}])}
    return [{"key": k, "value": ({"intValue": str(v)} if isinstance(v, int) else {"stringValue": str(v)})}
            for k, v in a.items()]


def otlp(root: S, service: str, trace_hex: str) -> dict:
    ids = itertools.count(1)
    spans: list[dict] = []

    def walk(s: S, parent: str | None) -> None:
        sid = s.span_id or f"{next(ids):016x}"
        spans.append({"traceId": trace_hex, "spanId": sid, "parentSpanId": s.parent or parent or "",
                      "name": f"{s.op} {s.name}", "kind": 1,
                      "startTimeUnixNano": str(ORIGIN_NS + round(s.start * 1e9)),
                      "endTimeUnixNano": str(ORIGIN_NS + round(s.end * 1e9)),
                      "attributes": _attrs(s), "status": {"code": 1}})
        for c in s.children:
            walk(c, sid)

    walk(root, None)
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                               "scopeSpans": [{"scope": {"name": "mast.tests"}, "spans": spans}]}]}


def llm(agent_tokens: tuple[int, int], start: float, end: float, name: str = "call", model: str | None = None) -> S:
    return S("llm", name, start, end, tokens=agent_tokens, model=model)


# Two workers in parallel under a coordinator.  The coordinator plans [0, 1], both workers
# start at 1 (A works [1, 3], B [1, 4]), the coordinator collects [4, 5].
PARALLEL = S("root", "research two topics", 0, 5, [
    S("agent", "coordinator", 0, 5, [
        llm((100, 20), 0, 1, "plan", model="gpt-4o"),
        S("agent", "worker_a", 1, 3, [llm((50, 30), 1, 3, "topic a")]),
        S("agent", "worker_b", 1, 4, [llm((60, 40), 1, 4, "topic b")]),
        llm((80, 20), 4, 5, "collect", model="gpt-4o"),
    ])])

# A pure pipeline: three agents one after another under a workflow span with no agent.
PIPELINE = S("root", "write a report", 0, 6, [
    S("agent", "researcher", 0, 2, [llm((10, 10), 0, 2, "research")]),
    S("agent", "writer", 2, 5, [llm((10, 10), 2, 3, "draft"), S("tool", "spellcheck", 3, 5)]),
    S("agent", "editor", 5, 6, [llm((10, 10), 5, 6, "edit")]),
])

# One agent: a model call, a tool, a model call.
SINGLE = S("root", "add two numbers", 0, 4, [
    S("agent", "solo", 0, 4, [llm((5, 5), 0, 1, "think"), S("tool", "calculator", 1, 3), llm((5, 5), 3, 4, "answer")]),
])


def write(path: Path, root: S, service: str, trace_no: int) -> Path:
    path.write_text(json.dumps(otlp(root, service, f"{trace_no:032x}")))
    return path
