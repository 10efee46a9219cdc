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
the timeline.  Mapping (docs/formats/autogen.md):

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

import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import first_char, first_json, first_line_object, json_line, lines, load_json
from mast.ingest.autogen_common import (FRAMEWORK, KNOWN_TYPES, MessageConverter, is_agentchat_message,
                                        is_task_result)
from mast.model import Step, Trace


_TYPE_RX = re.compile(rb'"type"\s*:\s*"(' + b"|".join(t.encode() for t in sorted(KNOWN_TYPES)) + rb')"')


def build_trace(path: Path, index: int, steps: list[Step], task: str | None, meta: dict,
                source_format: str) -> Trace:
    return Trace(system=None, framework=FRAMEWORK, source_format=source_format, source_path=str(path),
                 source_index=index, steps=steps, task=task, metadata=meta)


class AgentChatImporter:
    name = "autogen"
    description = "AutoGen AgentChat 0.4-0.7: TaskResult JSON, message lists, run_stream JSONL"
    example = '{"messages": [{"id": "…", "source": "user", "models_usage": null, "content": "…", "type": "TextMessage"}, …'

    def detect(self, path: Path, head: bytes) -> bool:
        c = first_char(head)
        if c not in "[{":
            return False
        try:
            first = first_json(head)
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
        for lineno, obj in _stream_lines(path):
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


def _stream_lines(path: Path) -> Iterator[tuple[int, Any]]:
    for lineno, raw in lines(path):
        if raw.strip():
            yield lineno, json_line(path, lineno, raw)


def _is_jsonl(path: Path) -> bool:
    if path.suffix in (".jsonl", ".ndjson"):
        return True
    first = first_line_object(path)
    if first is None:
        return False
    obj, more = first
    # One JSON document on one line (a TaskResult written without indent) is not a stream.
    return more or not is_task_result(obj)
