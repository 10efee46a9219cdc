"""Generic message lists: ``[{role, name|agent, content}, ...]``.

Accepted shapes (one trace per conversation):
- a JSON array of messages, or ``{"messages": [...], "system"?, "task"?}``;
- JSON Lines where each line is a message (one trace for the file) or each line is a
  ``{"messages": [...]}`` conversation (one trace per line).

Messages become steps as :mod:`mast.ingest.openai_messages` has it: OpenAI-style
``tool_calls`` are ``tool_call`` steps, ``role: tool`` messages their ``tool_result`` steps
(linked through ``span_id`` / ``parent_span_id``, the call id) by the calling agent, a
system prompt a system-role step with no agent, and Magentic-One roles
(``"Orchestrator (-> WebSurfer)"``) an agent and its recipient.

Format notes: docs/formats/messages.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import DeclineDetects, first_char, first_json, first_line_object, iter_jsonl, load_json
from mast.ingest.openai_messages import conversation_steps, is_message as _is_message
from mast.model import Trace


class MessagesImporter(DeclineDetects):
    name = "messages"
    description = "Generic message list: JSON array or JSONL of {role, name|agent, content} (OpenAI tool_calls)"
    example = '[{"role": "system", "content": "…"}, {"role": "user", "content": "…"}, {"role": "assistant", "name": "planner", …'

    def decline(self, path: Path, head: bytes) -> tuple[int, str] | None:
        """How far this file got as a message list, and why it is not one (None: it is)."""
        if first_char(head) not in "[{":
            return 0, "not JSON"
        try:
            obj = first_json(head)
        except ValueError:
            return 0, "the first record is not JSON (or is longer than the head)"
        if _is_message(obj):
            return None
        if isinstance(obj, dict) and isinstance(obj.get("messages"), list):
            if not obj["messages"] or _is_message(obj["messages"][0]):
                return None
            return 2, "messages[0] has no role and content"
        if isinstance(obj, dict) and "role" in obj:
            return 2, "a message with a role but no content or tool_calls"
        return (1 if isinstance(obj, list) else 0), "the first record is not a {role, content} message"

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

        def where(j: int) -> str:
            return f"line {lines[j]}" if lines else (f"{index}, message {j}" if meta else f"message {j}")

        steps, first_user = conversation_steps(path, messages, where)
        task = meta.get("task") if meta.get("task") is not None else first_user
        return Trace(system=meta.get("system"), framework=meta.get("framework"),
                     source_format=self.name, source_path=str(path), source_index=index,
                     steps=steps, task=task,
                     metadata={k: v for k, v in meta.items() if k not in ("messages", "task", "system")})

def _is_jsonl(path: Path) -> bool:
    """JSON Lines if so named, or if the first line is a complete JSON object by itself."""
    return path.suffix in (".jsonl", ".ndjson") or first_line_object(path) is not None
