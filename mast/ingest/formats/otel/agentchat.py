"""AutoGen AgentChat over OTel: the conversation lives in ``autogen process`` spans' ``message``.

When those spans are present they, not the span tree, give the steps (see
docs/formats/otel.md, "AutoGen").
"""

from __future__ import annotations

import json
import re

from mast.ingest._util import as_text
from mast.ingest.formats.otel.dialects import kind_of, llm_output, span_tokens
from mast.ingest.formats.otel.spans import Span, iso_ns
from mast.ingest.langchain_messages import step, transfer_target
from mast.model import StepKind


# ``autogen process <AgentType>_<team id>…``: the runtime delivering a message to an agent
_PROCESS_RX = re.compile(r"^autogen process (?P<type>[A-Za-z0-9]+?)_[0-9a-f]{8}-")

_AC_TEXT = {"TextMessage", "ToolCallSummaryMessage", "MultiModalMessage", "StructuredMessage", "ThoughtEvent",
            "UserInputRequestedEvent", "SelectorEvent", "MemoryQueryEvent"}


def agentchat_steps(spans: list[Span]) -> tuple[list, str | None] | None:
    """AgentChat puts the conversation only in the ``message`` attribute of its runtime
    ``autogen process`` spans (``invoke_agent`` / ``execute_tool`` carry no content): read
    the chat messages from there, once each, in the order they were first delivered.
    A handoff (transfer tool call + its result + ``HandoffMessage``) is one step."""
    found: list[tuple] = []  # (message, or (manager, LLM span); start ns)
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
    found.extend(_manager_llm_calls(spans))
    found.sort(key=lambda x: x[1])  # stable: messages keep their delivery order
    steps: list = []
    handoff_calls: set = set()
    task = None
    pending = [0, 0, False]  # usage of a message that produced no step (a transfer call)
    for m, t_ns in found:
        if isinstance(m, tuple):  # (manager, LLM span)
            manager, m = m
            text, _ = llm_output(m)
            tin, tout = span_tokens(m.attrs)
            steps.append(step(agent=manager, role="assistant", kind=StepKind.LLM_CALL, content=text,
                              started_at=iso_ns(m.start_ns), ended_at=iso_ns(m.end_ns), span_id=m.span_id,
                              parent_span_id=m.parent_id, tokens_in=tin, tokens_out=tout,
                              status="error" if m.status == "ERROR" else "ok", attributes={"span": m.name}))
            continue
        typ, src = m["type"], str(m["source"])
        ts = m.get("created_at") or iso_ns(t_ns)
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


def _manager_llm_calls(spans: list[Span]) -> list[tuple[tuple[str, Span], int]]:
    """LLM spans a team's manager made itself (SelectorGroupChat's speaker selection): those
    whose nearest ``autogen process`` ancestor is reached without an ``invoke_agent`` on the
    way.  An agent's own calls sit under its ``invoke_agent`` span and are already counted
    by its messages' ``models_usage``; the manager's never reach a message."""
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    out = []
    for s in spans:
        if kind_of(s) != "llm":
            continue
        cur = by_id.get((s.trace_id, s.parent_id))
        while cur is not None and not cur.name.startswith(("autogen process", "invoke_agent")):
            cur = by_id.get((cur.trace_id, cur.parent_id))
        m = _PROCESS_RX.match(cur.name) if cur is not None else None
        if m:
            out.append(((m.group("type"), s), s.start_ns))
    return out
