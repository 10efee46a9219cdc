"""ag2 1.x (PyPI ``ag2`` 1.x, ``import ag2``; not AG2 Classic) history event logs.

An agent with a knowledge store (``Agent(..., knowledge=KnowledgeConfig(store=...))``)
persists its stream's history at the end of every ``ask`` to ``/log/<stream id>.jsonl``
in that store (``ag2.knowledge.EventLogWriter``): one event a line,
``{"type": "<module>.<class>", "data": event.to_dict()}``, nested events as
``{"__event__": "<class>", ...}``, dataclasses as ``{"__dataclass__": ..., "data": {...}}``.
A file is one stream of one agent: one trace.  The agent is named by the store's
``/.initialized`` (ag2 writes the agent's name there when it bootstraps the store), else
the store folder's name (``metadata.agent_from`` says which).

Events -> steps:
- ``ModelRequest``: one ``message`` per text part; a hub channel renders a peer's message as
  ``[sender]: text``, so the sender becomes the step's agent and the log's agent its
  target.  The first request's text is the task.
- ``ModelResponse``: ``llm_call`` (text, tool calls in attributes, tokens from its ``usage``);
- ``ToolCallEvent`` (the loose record of each call): ``tool_call`` (``span_id`` = call id);
  ``ToolResultEvent``: ``tool_result`` (``parent_span_id`` = call id), or, when the tool
  returned ``ag2.network.handoff.Handoff``, the call becomes one ``handoff`` to its target
  (tool name and arguments kept, the reason as content); ``ToolErrorEvent``:
  a ``tool_result`` with status ``error``; the batch wrappers (``ToolCallsEvent``,
  ``ToolResultsEvent``) repeat those and are skipped;
- ``UsageEvent``: kind ``model_call`` repeats the response's usage (skipped); other kinds
  (compaction, sub-task roll-ups) are ``event`` steps carrying their tokens;
- any other class (``UnknownEvent``, newer event types): an ``event`` step naming the class.
``created_at`` (epoch seconds) gives the times.  No outcome is recorded in a history: it is
unknown (a turn that raised leaves its request unanswered; ``metadata.unanswered``).
Format notes: docs/formats/ag2x.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import as_text, drop_none, first_line_object, iso_utc, iter_jsonl, strip_bom
from mast.model import Step, StepKind, Trace

FRAMEWORK = "ag2x"
_TYPE_RX = re.compile(rb'^\s*\{\s*"type"\s*:\s*"ag2\.[A-Za-z0-9_.]+"\s*,\s*"data"\s*:\s*\{')
SPEAKER_RX = re.compile(r"^\[([^\]\n]{1,200})\]: ")
_SKIP = {"ToolCallsEvent", "ToolResultsEvent"}


def _cls(t: str) -> str:
    return t.rsplit(".", 1)[-1]


def _parts_text(parts: Any) -> list[str]:
    """The text of a list of ag2 input parts (TextInput content; data parts as JSON)."""
    out = []
    for p in parts if isinstance(parts, list) else []:
        if not isinstance(p, dict):
            continue
        if isinstance(p.get("content"), str):
            out.append(p["content"])
        elif "data" in p:
            out.append(as_text(_plain(p["data"])) or "")
        elif isinstance(p.get("url"), str):
            out.append(p["url"])
    return out


def _plain(v: Any) -> Any:
    """ag2's serialised value without its type tags (dataclass/pydantic wrappers unwrapped)."""
    if isinstance(v, dict):
        if "__dataclass__" in v or "__pydantic__" in v:
            return _plain(v.get("data"))
        if "__enum__" in v:
            return v.get("value")
        return {k: _plain(x) for k, x in v.items() if k != "__event__"}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _usage(d: dict) -> tuple[int | None, int | None]:
    u = _plain(d.get("usage"))
    if not isinstance(u, dict):
        return None, None
    tin, tout = u.get("prompt_tokens"), u.get("completion_tokens")
    return (tin if isinstance(tin, int) else None), (tout if isinstance(tout, int) else None)


def agent_of(path: Path) -> tuple[str | None, str]:
    """The agent a history file belongs to, and where the name came from."""
    store = path.parent.parent if path.parent.name == "log" else None
    if store is not None:
        marker = store / ".initialized"
        try:
            name = marker.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            name = ""
        if name and len(name) <= 200 and "\n" not in name:
            return name, "store"
        return store.name, "folder"
    return None, "none"


class AG2xEventsImporter:
    name = "ag2x-events"
    description = "ag2 1.x history event logs (EventLogWriter: /log/<stream>.jsonl, {type: ag2.events.*, data})"
    example = '{"type": "ag2.events.input_events.ModelRequest", "data": {"created_at": 1796131923.85, "parts": [{"__event__": …'

    def detect(self, path: Path, head: bytes) -> bool:
        return bool(_TYPE_RX.match(strip_bom(head)))

    def decline(self, path: Path, head: bytes) -> tuple[int, str] | None:
        if self.detect(path, head):
            return None
        if b'"type"' in head[:200] and b'"ag2.' in head[:200]:
            return 2, 'an ag2 type name, but not an event log line ({"type": "ag2.<module>.<class>", "data": {...}})'
        return None

    def read(self, path: Path) -> Iterator[Trace]:
        if first_line_object(path) is None:
            raise IngestError(str(path), "line 1", "not an ag2 event log line (one JSON object per line)")
        me, agent_from = agent_of(path)
        steps: list[Step] = []
        task: str | None = None
        times: list[str] = []
        last_request = last_response = -1
        call_at: dict[str, int] = {}  # tool call id -> its step
        n = 0
        for idx, rec in iter_jsonl(path):
            where = f"line {idx + 1}"
            if not isinstance(rec, dict) or not isinstance(rec.get("type"), str) or not rec["type"]:
                raise IngestError(str(path), where, "missing required field: type")
            if not isinstance(rec.get("data"), dict):
                raise IngestError(str(path), where, "missing required field: data (an object)")
            n += 1
            cls, d = _cls(rec["type"]), rec["data"]
            at = iso_utc(d.get("created_at")) if isinstance(d.get("created_at"), (int, float)) else None
            if at:
                times.append(at)
            if cls in _SKIP:
                continue
            if cls == "ModelRequest":
                last_request = n
                for text in _parts_text(d.get("parts")):
                    m = SPEAKER_RX.match(text)
                    sender = m.group(1) if m else None
                    body = text[m.end():] if m else text
                    if task is None and body:
                        task = body
                    steps.append(Step(agent=sender, content=body, kind=StepKind.MESSAGE, role="user",
                                      target_agent=me if sender else None, started_at=at))
            elif cls == "ModelResponse":
                last_response = n
                msg = _plain(d.get("message"))
                text = msg.get("content") if isinstance(msg, dict) else None
                batch = _plain(d.get("tool_calls"))
                calls = batch.get("calls") if isinstance(batch, dict) else None
                called = [drop_none({"id": c.get("id"), "name": c.get("name")})
                          for c in (calls if isinstance(calls, list) else []) if isinstance(c, dict)]
                tin, tout = _usage(d)
                steps.append(Step(agent=me, content=as_text(text), kind=StepKind.LLM_CALL, role="assistant",
                                  started_at=at, tokens_in=tin, tokens_out=tout, status="ok",
                                  attributes=drop_none({"model": d.get("model"), "tool_calls": called or None})))
            elif cls in ("ToolCallEvent", "BuiltinToolCallEvent"):
                if not d.get("name"):
                    raise IngestError(str(path), where, f"missing required field: data.name ({cls})")
                if d.get("id"):
                    call_at[str(d["id"])] = len(steps)
                steps.append(Step(agent=me, content=None, kind=StepKind.TOOL_CALL, role="assistant",
                                  tool_name=str(d["name"]), tool_args=as_text(d.get("arguments")),
                                  span_id=as_text(d.get("id")), started_at=at))
            elif cls in ("ToolResultEvent", "ToolErrorEvent"):
                res = self._result(path, where, cls, d, me, at)
                i = call_at.get(str(d.get("parent_id")))
                if res.kind == StepKind.HANDOFF and i is not None:
                    # the routing tool's call is the handoff (as transfer_to_X is elsewhere)
                    call = steps[i]
                    res.tool_args, res.span_id, res.parent_span_id = call.tool_args, call.span_id, None
                    res.started_at = call.started_at
                    steps[i] = res
                else:
                    steps.append(res)
            elif cls == "UsageEvent":
                if d.get("kind") == "model_call":
                    continue
                tin, tout = _usage(d)
                steps.append(Step(agent=me, content=None, kind=StepKind.EVENT, started_at=at, tokens_in=tin,
                                  tokens_out=tout, attributes=drop_none({"event": cls, "usage_kind": d.get("kind"),
                                                                         "label": d.get("label")})))
            else:
                steps.append(Step(agent=me, content=as_text(_plain(d.get("content", d.get("message")))),
                                  kind=StepKind.EVENT, started_at=at, attributes={"event": rec["type"]}))
        if not n:
            raise IngestError(str(path), None, "no events in file")
        yield Trace(system=None, framework=FRAMEWORK, source_format=self.name, source_path=str(path),
                    source_index=0, steps=steps, task=task, started_at=min(times, default=None),
                    ended_at=max(times, default=None),
                    metadata=drop_none({"stream_id": path.stem, "agent": me, "agent_from": agent_from,
                                        "events": n, "unanswered": True if last_request > last_response else None}))

    def _result(self, path: Path, where: str, cls: str, d: dict, me: str | None, at: str | None) -> Step:
        if not d.get("parent_id"):
            raise IngestError(str(path), where, f"missing required field: data.parent_id ({cls})")
        name = as_text(d.get("name"))
        if cls == "ToolErrorEvent":
            err = _plain(d.get("error"))
            text = err.get("message") if isinstance(err, dict) else as_text(err)
            etype = err.get("__exception__") if isinstance(err, dict) else None
            return Step(agent=me, content=as_text(text), kind=StepKind.TOOL_RESULT, role="tool", tool_name=name,
                        parent_span_id=str(d["parent_id"]), started_at=at, status="error",
                        attributes={"error_type": etype} if etype else None)
        result = d.get("result")
        parts = result.get("data", {}).get("parts") if isinstance(result, dict) and isinstance(result.get("data"), dict) \
            else None
        for p in parts if isinstance(parts, list) else []:
            data = p.get("data") if isinstance(p, dict) else None
            if isinstance(data, dict) and str(data.get("__dataclass__", "")).endswith(".Handoff"):
                h = _plain(data)
                if isinstance(h, dict) and h.get("target"):
                    return Step(agent=me, content=as_text(h.get("reason")) or None, kind=StepKind.HANDOFF,
                                tool_name=name, target_agent=str(h["target"]), parent_span_id=str(d["parent_id"]),
                                started_at=at, attributes={"tool_call_id": str(d["parent_id"])})
        text = "\n".join(_parts_text(parts)) if isinstance(parts, list) else as_text(_plain(result))
        return Step(agent=me, content=text, kind=StepKind.TOOL_RESULT, role="tool", tool_name=name,
                    parent_span_id=str(d["parent_id"]), started_at=at, status="ok")
