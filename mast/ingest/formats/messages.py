"""Generic message lists: ``[{role, name|agent, content}, ...]``.

Accepted shapes (one trace per conversation):
- a JSON array of messages, or ``{"messages": [...], "system"?, "task"?}``;
- JSON Lines where each line is a message (one trace for the file) or each line is a
  ``{"messages": [...]}`` conversation (one trace per line).

OpenAI-style ``tool_calls`` on an assistant message become ``tool_call`` steps (after the
message's own text, if any); ``role: tool`` messages become ``tool_result`` steps linked
to their call through ``span_id`` / ``parent_span_id`` (the call id).

Format notes: docs/formats/messages.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import as_text, first_char, first_json, first_line_object, iter_jsonl, load_json
from mast.model import Step, StepKind, Trace

_ROLE_MAP = {"human": "user", "ai": "assistant", "function": "tool", "developer": "system"}


def _is_message(obj: Any) -> bool:
    return isinstance(obj, dict) and "role" in obj and ("content" in obj or "tool_calls" in obj)


class MessagesImporter:
    name = "messages"
    description = "Generic message list: JSON array or JSONL of {role, name|agent, content} (OpenAI tool_calls)"

    def detect(self, path: Path, head: bytes) -> bool:
        c = first_char(head)
        if c not in "[{":
            return False
        obj = first_json(head)
        if _is_message(obj):
            return True
        return (isinstance(obj, dict) and isinstance(obj.get("messages"), list)
                and (not obj["messages"] or _is_message(obj["messages"][0])))

    def read(self, path: Path) -> Iterator[Trace]:
        if _is_jsonl(path):
            yield from self._read_jsonl(path)
            return
        data = load_json(path)
        if isinstance(data, dict):
            yield self._conversation(path, 0, data.get("messages"), data)
        elif isinstance(data, list):
            if data and all(isinstance(m, dict) and "messages" in m for m in data):
                for i, conv in enumerate(data):
                    yield self._conversation(path, i, conv.get("messages"), conv)
            else:
                yield self._conversation(path, 0, data, {})
        else:
            raise IngestError(str(path), None, f"expected a JSON array of messages, found {type(data).__name__}")

    def _read_jsonl(self, path: Path) -> Iterator[Trace]:
        msgs: list[tuple[int, Any]] = []
        for i, obj in iter_jsonl(path):
            if isinstance(obj, dict) and "messages" in obj:
                yield self._conversation(path, i, obj.get("messages"), obj)
            else:
                msgs.append((i, obj))
        if msgs:
            yield self._conversation(path, 0, [m for _, m in msgs], {}, lines=[i + 1 for i, _ in msgs])

    def _conversation(self, path: Path, index: int, messages: Any, meta: dict,
                      lines: list[int] | None = None) -> Trace:
        if not isinstance(messages, list):
            raise IngestError(str(path), index, "missing required field: messages (a list)")
        steps: list[Step] = []
        call_names: dict[str, str] = {}
        task = meta.get("task")
        for j, m in enumerate(messages):
            where = f"line {lines[j]}" if lines else (f"{index}, message {j}" if meta else f"message {j}")
            if not isinstance(m, dict):
                raise IngestError(str(path), where, f"expected a message object, found {type(m).__name__}")
            if "role" not in m:
                raise IngestError(str(path), where, "missing required field: role")
            if "content" not in m and "tool_calls" not in m:
                raise IngestError(str(path), where, "missing required field: content")
            role = str(m["role"])
            role = _ROLE_MAP.get(role, role)
            agent = m.get("name") or m.get("agent") or role
            content = as_text(m.get("content"))
            extras = {k: v for k, v in m.items()
                      if k not in ("role", "name", "agent", "content", "tool_calls", "tool_call_id")}
            if role == "tool":
                cid = m.get("tool_call_id")
                steps.append(Step(agent=m.get("name") or m.get("agent") or "tool", content=content,
                                  kind=StepKind.TOOL_RESULT, role="tool",
                                  tool_name=call_names.get(cid) if cid else m.get("name"),
                                  parent_span_id=cid, attributes=extras or None))
                continue
            calls = m.get("tool_calls") or []
            if content or not calls:
                steps.append(Step(agent=agent, content=content, kind=StepKind.MESSAGE, role=role,
                                  attributes=extras or None))
            for c in calls:
                fn = (c or {}).get("function") or {}
                name = fn.get("name") or c.get("name")
                cid = c.get("id")
                if cid and name:
                    call_names[cid] = name
                args = fn.get("arguments", c.get("arguments"))
                steps.append(Step(agent=agent, content=None, kind=StepKind.TOOL_CALL, role=role,
                                  tool_name=name, tool_args=as_text(args), span_id=cid))
            if task is None and role == "user" and content:
                task = content
        return Trace(system=meta.get("system"), framework=meta.get("framework"),
                     source_format=self.name, source_path=str(path), source_index=index,
                     steps=steps, task=task,
                     metadata={k: v for k, v in meta.items() if k not in ("messages", "task", "system")})


def _is_jsonl(path: Path) -> bool:
    """JSON Lines if so named, or if the first line is a complete JSON object by itself."""
    return path.suffix in (".jsonl", ".ndjson") or first_line_object(path) is not None
