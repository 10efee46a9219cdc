"""What the AutoGen-family importers share, so no format module imports another.

- :class:`MessageConverter` turns AutoGen AgentChat messages into steps; the AgentChat
  files (``autogen``) and the core event log (``autogen-events``) carry the same
  messages, and the mapping is written down in docs/formats/autogen.md;
- :func:`collapse_transfer_handoffs` turns AG2's handoff idiom (a ``transfer_to_<agent>``
  tool call plus its tool result) into one ``handoff`` step.
- :func:`not_none_text` reads AG2's ``"content": "None"`` (``str(None)``) as no content.
- :func:`ag2_tool_status` reads a failed AG2 tool execution from its result text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

from mast.errors import IngestError
from mast.ingest._util import as_text, iso_utc
from mast.model import Step, StepKind

_TRANSFER_RX = re.compile(r"^transfer_to_(?P<target>.+?)(?:_\d+)?$")
_TRANSFER_TEXT_RX = re.compile(r"^Transfer(?:red)? to (?P<target>[\w\-. ]+?)(?:[,.].*)?$", re.S)


def not_none_text(v: Any) -> str | None:
    """Message content as text; AG2 writes ``str(None)`` for tool-call messages."""
    if v is None or v == "None":
        return None
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, default=str)


# AG2's ``ConversableAgent.execute_function`` answers a failed execution (the function
# raised, its arguments were not JSON, or it is not registered) with ``"Error: ..."`` and
# no other mark: chat histories, ``GroupChat.messages`` and the runtime logs carry only
# this text (the ``.run()`` events add ``is_exec_success``).
_AG2_FAILED_PREFIX = "Error: "


def ag2_tool_status(content: Any) -> str:
    """``error`` for a tool result AG2 produced from a failed execution, else ``ok``."""
    return "error" if isinstance(content, str) and content.startswith(_AG2_FAILED_PREFIX) else "ok"


def transfer_target(tool_name: str | None, result: str | None, agents: Iterable[str]) -> str | None:
    """The agent a ``transfer_to_*`` handoff tool hands over to, or None if it is not one.

    AG2 names handoff tools ``transfer_to_<agent>_<n>`` and answers ``Transfer to <agent>``;
    the tool name is authoritative when it names a known agent (agent names may themselves
    end in ``_<digits>``).
    """
    if not tool_name or not tool_name.startswith("transfer_to_"):
        return None
    known = set(agents)
    bare = tool_name[len("transfer_to_"):]
    if bare in known:
        return bare
    m = _TRANSFER_RX.match(tool_name)
    if m and m.group("target") in known:
        return m.group("target")
    if result:
        t = _TRANSFER_TEXT_RX.match(result.strip())
        if t:
            return t.group("target").strip()
    return m.group("target") if m else bare


def collapse_transfer_handoffs(steps: list[Step], agents: Iterable[str],
                               targets: dict[str, str] | None = None) -> list[Step]:
    """Replace each ``transfer_to_*`` tool call and its result by one handoff step.

    ``targets`` maps a call id to a target known from elsewhere in the source (AG2's
    ``executed_function`` event names it).  The handoff step keeps the call's span id,
    tool name and arguments, and the tokens of the call, so totals do not change.
    """
    agents = list(agents)
    targets = targets or {}
    results = {s.parent_span_id: s for s in steps if s.kind is StepKind.TOOL_RESULT and s.parent_span_id}
    drop: set[int] = set()
    out: list[Step] = []
    for s in steps:
        if id(s) in drop:
            continue
        if s.kind is StepKind.TOOL_CALL and s.span_id and (s.tool_name or "").startswith("transfer_to_"):
            res = results.get(s.span_id)
            target = targets.get(s.span_id) or transfer_target(s.tool_name, res.content if res else None, agents)
            if target:
                if res is not None:
                    drop.add(id(res))
                attrs = dict(s.attributes or {})
                if res is not None:
                    attrs["handoff_result"] = res.content
                    if res.agent and res.agent != s.agent:
                        attrs["executed_by"] = res.agent
                out.append(Step(agent=s.agent, content=res.content if res else None, kind=StepKind.HANDOFF,
                                role=s.role, tool_name=s.tool_name, tool_args=s.tool_args, target_agent=target,
                                span_id=s.span_id, started_at=s.started_at,
                                ended_at=(res.started_at if res else s.ended_at), tokens_in=s.tokens_in,
                                tokens_out=s.tokens_out, cost_usd=s.cost_usd,
                                status=res.status if res else s.status, attributes=attrs or None))
                continue
        out.append(s)
    return out


def json_or_text(v: Any) -> Any:
    """Parse a JSON string when it is one; otherwise return it unchanged."""
    if isinstance(v, str):
        t = v.strip()
        if t[:1] in ("{", "[", '"') or t in ("null", "true", "false") or re.match(r"^-?\d", t or "x"):
            try:
                return json.loads(t)
            except ValueError:
                return v
    return v


# -- AgentChat messages (the TaskResult/run_stream files and the core event log carry the same ones)

FRAMEWORK = "autogen"

MESSAGE_TYPES = {"TextMessage", "MultiModalMessage", "StructuredMessage", "ToolCallSummaryMessage"}
EVENT_TYPES = {"ThoughtEvent", "SelectSpeakerEvent", "SelectorEvent", "MemoryQueryEvent",
               "UserInputRequestedEvent", "CodeGenerationEvent", "CodeExecutionEvent"}
KNOWN_TYPES = MESSAGE_TYPES | EVENT_TYPES | {
    "StopMessage", "HandoffMessage", "ToolCallRequestEvent", "ToolCallExecutionEvent",
    "ModelClientStreamingChunkEvent"}




def is_agentchat_message(obj: Any) -> bool:
    return (isinstance(obj, dict) and obj.get("type") in KNOWN_TYPES and "source" in obj
            and "content" in obj)


def is_task_result(obj: Any) -> bool:
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list) or "stop_reason" not in obj:
        return False
    ms = obj["messages"]
    return not ms or is_agentchat_message(ms[0])


def _usage(m: dict) -> tuple[int | None, int | None]:
    u = m.get("models_usage")
    if not isinstance(u, dict):
        return None, None
    return u.get("prompt_tokens"), u.get("completion_tokens")


class MessageConverter:
    """Turns AgentChat messages into steps, one run at a time.

    Kept as a class because the event-log importer feeds it messages one by one and
    handoffs need the tool call/result steps emitted before them.
    """

    def __init__(self, path: Path, keep_usage: bool = True):
        self.path = path
        self.keep_usage = keep_usage
        self.steps: list[Step] = []
        self.task: str | None = None
        self.seen_ids: set[str] = set()
        self.versions: set[str] = set()

    def add(self, m: Any, where: str, ts: str | None = None) -> None:
        if not isinstance(m, dict):
            raise IngestError(str(self.path), where, f"expected an AgentChat message object, found {type(m).__name__}")
        missing = [k for k in ("type", "source") if k not in m]
        if missing:
            raise IngestError(str(self.path), where, "not an AgentChat message: missing required field(s) "
                              + ", ".join(missing))
        mtype = m["type"]
        if not isinstance(mtype, str) or not isinstance(m["source"], str):
            raise IngestError(str(self.path), where, "not an AgentChat message: type and source must be strings")
        mid = m.get("id")
        if mid is not None:
            if mid in self.seen_ids:
                return  # the same message seen twice (e.g. stream line and TaskResult)
            self.seen_ids.add(mid)
        if mtype != "ModelClientStreamingChunkEvent" and "content" not in m:
            raise IngestError(str(self.path), where, f"{mtype} lacks its required field: content")
        self.versions.add(">=0.6" if "created_at" in m or "id" in m else "0.4-0.5")
        src = m["source"]
        role = "user" if src == "user" else "assistant"
        when = iso_utc(m.get("created_at")) or ts
        tin, tout = _usage(m) if self.keep_usage else (None, None)
        base_attrs: dict[str, Any] = {"type": mtype}
        if mid:
            base_attrs["message_id"] = mid
        if not self.keep_usage and m.get("models_usage"):
            base_attrs["models_usage"] = m["models_usage"]
        if m.get("metadata"):
            base_attrs["metadata"] = m["metadata"]
        content = m.get("content")

        if mtype == "ModelClientStreamingChunkEvent":
            return
        if mtype in MESSAGE_TYPES:
            text = content if isinstance(content, str) else as_text(content)
            if mtype == "ToolCallSummaryMessage" and m.get("tool_calls"):
                base_attrs["tool_call_ids"] = [c.get("id") for c in m["tool_calls"] if isinstance(c, dict)]
            if mtype == "StructuredMessage" and m.get("format_string"):
                base_attrs["format_string"] = m["format_string"]
            self.steps.append(Step(agent=src, content=text, kind=StepKind.MESSAGE, role=role, span_id=mid,
                                   started_at=when, tokens_in=tin, tokens_out=tout, attributes=base_attrs))
            if self.task is None and src == "user" and text:
                self.task = text
        elif mtype == "ToolCallRequestEvent":
            if not isinstance(content, list):
                raise IngestError(str(self.path), where, "ToolCallRequestEvent content is not a list of calls")
            for j, c in enumerate(content):
                if not isinstance(c, dict) or "name" not in c:
                    raise IngestError(str(self.path), where, f"tool call {j} lacks its name")
                first = j == 0
                self.steps.append(Step(agent=src, content=None, kind=StepKind.TOOL_CALL, role="assistant",
                                       tool_name=c.get("name"), tool_args=as_text(c.get("arguments")),
                                       span_id=c.get("id"), started_at=when,
                                       tokens_in=tin if first else None, tokens_out=tout if first else None,
                                       attributes=base_attrs))
        elif mtype == "ToolCallExecutionEvent":
            if not isinstance(content, list):
                raise IngestError(str(self.path), where, "ToolCallExecutionEvent content is not a list of results")
            for j, r in enumerate(content):
                if not isinstance(r, dict) or "call_id" not in r:
                    raise IngestError(str(self.path), where, f"tool result {j} lacks its call_id")
                self.steps.append(Step(agent=src, content=as_text(r.get("content")), kind=StepKind.TOOL_RESULT,
                                       role="tool", tool_name=r.get("name"), parent_span_id=r.get("call_id"),
                                       started_at=when, status="error" if r.get("is_error") else "ok",
                                       attributes=base_attrs))
        elif mtype == "HandoffMessage":
            target = m.get("target")
            if not isinstance(target, str):
                raise IngestError(str(self.path), where, "HandoffMessage lacks its required field: target")
            self._handoff(src, target, as_text(content), when, mid, base_attrs)
        elif mtype == "StopMessage":
            self.steps.append(Step(agent=src, content=as_text(content), kind=StepKind.TERMINATION, role=role,
                                   span_id=mid, started_at=when, tokens_in=tin, tokens_out=tout,
                                   attributes=base_attrs))
        else:
            target = None
            if mtype == "SelectSpeakerEvent" and isinstance(content, list) and content:
                target = str(content[0])
            if mtype not in EVENT_TYPES:
                base_attrs["unknown_type"] = True
            self.steps.append(Step(agent=src, content=content if isinstance(content, str) else as_text(content),
                                   kind=StepKind.EVENT, role=role, span_id=mid, target_agent=target,
                                   started_at=when, tokens_in=tin, tokens_out=tout, attributes=base_attrs))

    def _handoff(self, src: str, target: str, content: str | None, when: str | None, mid: str | None,
                 attrs: dict) -> None:
        """Fold the transfer tool call + its result into the handoff step (one step, not three)."""
        call = result = None
        for s in reversed(self.steps):
            if s.kind is StepKind.LLM_CALL or (s.attributes or {}).get("type") == "ToolCall":
                continue  # event-log records interleaved with the messages (no call ids)
            if s.agent != src:
                break
            if s.kind is StepKind.TOOL_RESULT and result is None and (
                    s.content == content or (s.tool_name or "") == f"transfer_to_{target}"):
                result = s
            elif s.kind is StepKind.TOOL_CALL and result is not None and s.span_id == result.parent_span_id:
                call = s
                break
        attrs = dict(attrs)
        tin = tout = None
        tool_name = tool_args = span = None
        if call is not None and result is not None:
            tool_name, tool_args, span = call.tool_name, call.tool_args, call.span_id
            tin, tout = call.tokens_in, call.tokens_out
            attrs["tool_call_id"] = span
            self.steps = [s for s in self.steps if s is not call and s is not result]
        self.steps.append(Step(agent=src, content=content, kind=StepKind.HANDOFF, role="assistant",
                               tool_name=tool_name, tool_args=tool_args, target_agent=target,
                               span_id=span or mid, started_at=when, tokens_in=tin, tokens_out=tout,
                               attributes=attrs))

    def finish(self, stop_reason: Any, complete: bool) -> list[Step]:
        if complete and stop_reason is not None:
            self.steps.append(Step(agent=None, content=str(stop_reason), kind=StepKind.TERMINATION,
                                   attributes={"source": "TaskResult.stop_reason"}))
        return self.steps
