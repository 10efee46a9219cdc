"""AutoGen AgentChat (autogen-agentchat 0.4-0.7): TaskResult JSON, message lists, run_stream JSONL.

Accepted files (one trace per run):
- ``TaskResult`` JSON: ``{"messages": [<message>...], "stop_reason": str|null}``
  (``result.model_dump(mode="json")``), or a JSON array of several;
- a message list: ``[<message>...]`` (``[m.dump() for m in result.messages]``);
- ``run_stream`` JSONL: one message per line; a ``TaskResult`` line ends a run (its
  ``messages`` are authoritative, the streamed lines before it are the same messages).
  Lines after the last TaskResult form a run that was cut off: it is kept, with
  ``metadata.incomplete = true`` and no termination step.

Every message is a flat object discriminated by ``type`` with the producing agent in
``source``.  ``id``/``created_at`` exist from 0.6 only; without them the file order is
the timeline.  Mapping (see FORMATS.md A1):

- TextMessage, MultiModalMessage, StructuredMessage, ToolCallSummaryMessage -> message
  (role ``user`` when ``source == "user"``);
- ToolCallRequestEvent -> one ``tool_call`` per element (``span_id`` = call id);
  ToolCallExecutionEvent -> one ``tool_result`` per element (``parent_span_id`` = call id,
  ``status`` error when ``is_error``);
- HandoffMessage -> ``handoff`` (``target_agent``); the ``transfer_to_*`` tool call and
  result that produced it are folded into that one step (their tokens move with it);
- StopMessage -> ``termination``; ``stop_reason`` -> a final ``termination`` step;
- ModelClientStreamingChunkEvent is skipped (the final message repeats it);
- ThoughtEvent, SelectSpeakerEvent, SelectorEvent, MemoryQueryEvent, Code*Event,
  UserInputRequestedEvent and any type this importer does not know (newer releases add
  event types) -> ``event`` steps, the type kept in ``attributes.type``.

``models_usage`` becomes the step's tokens (on the first step a message yields).
A message without ``type`` or ``source`` is an error naming the file and the record.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest import register
from mast.ingest._util import as_text, first_char, load_json, strip_bom
from mast.ingest.autogen_common import iso_utc
from mast.model import Step, StepKind, Trace

FRAMEWORK = "autogen"

MESSAGE_TYPES = {"TextMessage", "MultiModalMessage", "StructuredMessage", "ToolCallSummaryMessage"}
EVENT_TYPES = {"ThoughtEvent", "SelectSpeakerEvent", "SelectorEvent", "MemoryQueryEvent",
               "UserInputRequestedEvent", "CodeGenerationEvent", "CodeExecutionEvent"}
KNOWN_TYPES = MESSAGE_TYPES | EVENT_TYPES | {
    "StopMessage", "HandoffMessage", "ToolCallRequestEvent", "ToolCallExecutionEvent",
    "ModelClientStreamingChunkEvent"}
_TYPE_RX = re.compile(rb'"type"\s*:\s*"(' + b"|".join(t.encode() for t in sorted(KNOWN_TYPES)) + rb')"')


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


def build_trace(path: Path, index: int, steps: list[Step], task: str | None, meta: dict,
                source_format: str) -> Trace:
    return Trace(system=None, framework=FRAMEWORK, source_format=source_format, source_path=str(path),
                 source_index=index, steps=steps, task=task, metadata=meta)


def _first_json_value(head: bytes) -> Any:
    text = strip_bom(head).decode("utf-8", "replace").lstrip()
    return json.JSONDecoder().raw_decode(text)[0]


class AgentChatImporter:
    name = "autogen"
    description = "AutoGen AgentChat 0.4-0.7: TaskResult JSON, message lists, run_stream JSONL"

    def detect(self, path: Path, head: bytes) -> bool:
        c = first_char(head)
        if c not in "[{":
            return False
        text = strip_bom(head).decode("utf-8", "replace").lstrip()
        dec = json.JSONDecoder()
        try:
            if c == "[":
                first = dec.raw_decode(text[1:].lstrip())[0]
            else:
                first = dec.raw_decode(text)[0]
        except ValueError:
            # A first record longer than the head: fall back to its opening keys.
            return bool(_TYPE_RX.search(head)) and b'"source"' in head and b'"delivery_stage"' not in head \
                and b'"payload"' not in head
        return is_agentchat_message(first) or is_task_result(first)

    def read(self, path: Path) -> Iterator[Trace]:
        if _is_jsonl(path):
            yield from self._read_stream(path)
            return
        data = load_json(path)
        if is_task_result(data) or (isinstance(data, dict) and "messages" in data):
            yield self._task_result(path, 0, data)
        elif isinstance(data, list) and data and all(isinstance(d, dict) and "messages" in d for d in data):
            for i, d in enumerate(data):
                yield self._task_result(path, i, d)
        elif isinstance(data, list):
            conv = MessageConverter(path)
            for j, m in enumerate(data):
                conv.add(m, f"message {j}")
            steps = conv.finish(None, complete=False)
            yield build_trace(path, 0, steps, conv.task, _meta(conv, None, "message list"), self.name)
        else:
            raise IngestError(str(path), None, "expected a TaskResult object or a list of AgentChat messages, "
                              f"found {type(data).__name__}")

    def _task_result(self, path: Path, index: int, d: Any) -> Trace:
        if not isinstance(d, dict) or not isinstance(d.get("messages"), list):
            raise IngestError(str(path), index, "TaskResult lacks its required field: messages (a list)")
        conv = MessageConverter(path)
        for j, m in enumerate(d["messages"]):
            conv.add(m, f"{index}, message {j}")
        steps = conv.finish(d.get("stop_reason"), complete=True)
        return build_trace(path, index, steps, conv.task, _meta(conv, d.get("stop_reason"), "TaskResult"), self.name)

    def _read_stream(self, path: Path) -> Iterator[Trace]:
        index = 0
        conv = MessageConverter(path)
        streamed = 0
        first_line: int | None = None
        for lineno, obj in _iter_lines(path):
            if is_task_result(obj) or (isinstance(obj, dict) and "stop_reason" in obj and "messages" in obj):
                # The TaskResult repeats the run's messages: read them (ids dedupe 0.6+ lines);
                # for 0.4-0.5 (no ids) the TaskResult alone is the run.
                run = MessageConverter(path)
                if not isinstance(obj.get("messages"), list):
                    raise IngestError(str(path), f"line {lineno}", "TaskResult lacks its required field: messages")
                for j, m in enumerate(obj["messages"]):
                    run.add(m, f"line {lineno}, message {j}")
                steps = run.finish(obj.get("stop_reason"), complete=True)
                meta = _meta(run, obj.get("stop_reason"), "run_stream")
                meta["lines"] = [first_line or lineno, lineno]
                yield build_trace(path, index, steps, run.task, meta, self.name)
                index += 1
                conv, streamed, first_line = MessageConverter(path), 0, None
                continue
            conv.add(obj, f"line {lineno}")
            streamed += 1
            first_line = first_line or lineno
        if streamed:
            steps = conv.finish(None, complete=False)
            meta = _meta(conv, None, "run_stream")
            meta["incomplete"] = True
            meta["lines"] = [first_line, None]
            yield build_trace(path, index, steps, conv.task, meta, self.name)


def _meta(conv: MessageConverter, stop_reason: Any, artefact: str) -> dict:
    meta: dict[str, Any] = {"artefact": artefact}
    if stop_reason is not None:
        meta["stop_reason"] = stop_reason
    if conv.versions:
        meta["agentchat_version"] = sorted(conv.versions)[0] if len(conv.versions) == 1 else "mixed"
    return meta


def _iter_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(1-based line number, object) for each non-blank line; a bad line is an error."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise IngestError(str(path), None, f"cannot read file: {e.strerror or e}") from None
    with f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise IngestError(str(path), f"line {i}", f"invalid JSON ({e}); file truncated?") from None


def _is_jsonl(path: Path) -> bool:
    if path.suffix in (".jsonl", ".ndjson"):
        return True
    with path.open("rb") as f:
        line = strip_bom(f.readline()).strip()
    if not line.startswith(b"{"):
        return False
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    # One JSON document on one line (a TaskResult written without indent) is not a stream.
    with path.open("rb") as f:
        f.readline()
        return bool(f.read(64).strip()) or not is_task_result(obj)


register(AgentChatImporter())
