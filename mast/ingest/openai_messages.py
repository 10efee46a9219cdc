"""OpenAI-style message lists to steps, shared by the ``messages`` and ``trajectory`` importers.

A message is ``{role, content, name|agent?, tool_calls?, tool_call_id?}``:
- ``system`` (and ``developer``) messages are system-role steps with no agent: a system
  prompt is an instruction, not a participant;
- an assistant's ``tool_calls`` become ``tool_call`` steps (after the message's own text,
  if any) with ``span_id`` = the call id;
- a ``tool`` (or ``function``) message is the ``tool_result`` of the call it answers
  (``parent_span_id`` = the call id, ``tool_name`` from the call), and its agent is the
  agent that made the call: the tool's name never becomes an agent; its status is ``ok``
  (an answer came back), as every importer has it, unless the importer knows the answer
  for a failure (the ``trajectory`` importer's ``Error: …``);
- a role in Magentic-One's syntax (``"Orchestrator (-> WebSurfer)"``) is parsed by
  :mod:`mast.ingest.magentic_roles`: agent, recipient, ``(thought)`` kept as an attribute,
  ``(termination condition)`` a termination step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from mast.errors import IngestError
from mast.ingest._util import as_text
from mast.ingest.magentic_roles import STANDARD_ROLES, is_magentic_role, parse_role_cached as parse_role
from mast.model import Step, StepKind

ROLE_MAP = {"human": "user", "ai": "assistant", "function": "tool", "developer": "system"}
_OWN_KEYS = ("role", "name", "agent", "content", "tool_calls", "tool_call_id")


def is_message(obj: Any) -> bool:
    return isinstance(obj, dict) and "role" in obj and ("content" in obj or "tool_calls" in obj)


#: Content part types that are text (Chat Completions' ``text``; the Responses API's
#: ``input_text`` / ``output_text``, which agent benchmarks also write into message lists).
_TEXT_PARTS = ("text", "input_text", "output_text")


def content_text(v: Any) -> str | None:
    """A message's content as text: a list of text parts (``[{"type": "text", "text": …}]``,
    how the OpenAI API and newer benchmark harnesses write content) is its text, not the
    JSON of the list; anything else (an image part among them) as before."""
    if isinstance(v, list) and v and all(isinstance(p, dict) and p.get("type") in _TEXT_PARTS
                                         and isinstance(p.get("text"), str) for p in v):
        return "\n".join(p["text"] for p in v)
    return as_text(v)


def conversation_steps(path: Path, messages: list, where: Callable[[int], Any]) -> tuple[list[Step], str | None]:
    """The steps of one conversation and its task (the first user message's text).

    ``where(j)`` names message ``j`` in errors (a line, or a record and message index).
    """
    steps: list[Step] = []
    calls: dict[str, tuple[str | None, str | None]] = {}  # call id -> (tool name, calling agent)
    last_agent: str | None = None
    task = None
    for j, m in enumerate(messages):
        if not isinstance(m, dict):
            raise IngestError(str(path), where(j), f"expected a message object, found {type(m).__name__}")
        if "role" not in m:
            raise IngestError(str(path), where(j), "missing required field: role")
        if "content" not in m and "tool_calls" not in m:
            raise IngestError(str(path), where(j), "missing required field: content")
        raw_role = str(m["role"])
        role = ROLE_MAP.get(raw_role, raw_role)
        content = content_text(m.get("content"))
        extras = {k: v for k, v in m.items() if k not in _OWN_KEYS}
        if role == "tool":
            cid = m.get("tool_call_id")
            name, caller = calls.get(cid, (None, None)) if cid else (None, None)
            if m.get("name"):
                extras["tool"] = m["name"]
            steps.append(Step(agent=caller or last_agent, content=content, kind=StepKind.TOOL_RESULT, role="tool",
                              tool_name=name or m.get("name"), parent_span_id=cid, status="ok",
                              attributes=extras or None))
            continue
        if role == "system":
            if m.get("name") or m.get("agent"):
                extras["name"] = m.get("name") or m.get("agent")
            steps.append(Step(agent=None, content=content, kind=StepKind.MESSAGE, role="system",
                              attributes=extras or None))
            continue
        kind, target = StepKind.MESSAGE, None
        if not (m.get("name") or m.get("agent")) and is_magentic_role(raw_role):
            r = parse_role(raw_role)
            agent, role, kind, target = r.agent, r.role, r.kind, r.target
            extras["source_role"] = raw_role
            if r.note and not r.target and r.kind == StepKind.MESSAGE:
                extras["note"] = r.note  # "(thought)": the agent's own reasoning
        else:
            agent = m.get("name") or m.get("agent") or role
            if role not in STANDARD_ROLES:  # a speaker's name in the role field ("WebSurfer")
                extras["source_role"], role = raw_role, "assistant"
        last_agent = agent if role != "user" else last_agent
        tool_calls = m.get("tool_calls") or []
        if content or not tool_calls:
            steps.append(Step(agent=agent, content=content, kind=kind, role=role, target_agent=target,
                              status="completed" if kind == StepKind.TERMINATION else None,
                              attributes=extras or None))
        for c in tool_calls:
            if not isinstance(c, dict):
                raise IngestError(str(path), where(j), "a tool call is not an object")
            fn = c.get("function") or {}
            name = fn.get("name") or c.get("name")
            cid = c.get("id")
            if cid:
                calls[cid] = (name, agent)
            args = fn.get("arguments", c.get("arguments"))
            steps.append(Step(agent=agent, content=None, kind=StepKind.TOOL_CALL, role=role,
                              tool_name=name, tool_args=as_text(args), span_id=cid))
        if task is None and role == "user" and content:
            task = content
    return steps, task
