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
  ``(termination condition)`` a termination step;
- the Responses API's input items, as the OpenAI Agents SDK's ``to_input_list()`` and its
  sessions keep a conversation, are read too: a ``function_call`` item is a tool call, a
  ``function_call_output`` its result (failed when it is the SDK's own failure text),
  ``reasoning`` a message with ``note: reasoning``, and a
  ``transfer_to_…`` call answered ``{"assistant": "<agent>"}`` (the SDK's handoff) a handoff to
  that agent, who is the author of the assistant messages after it, up to the next user
  message (a new turn starts at the first agent again; the items name no agent otherwise:
  before a turn's first handoff the author is ``assistant``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from mast.errors import IngestError
from mast.ingest._util import as_text
from mast.ingest.magentic_roles import STANDARD_ROLES, is_magentic_role, parse_role_cached as parse_role
from mast.model import Step, StepKind

ROLE_MAP = {"human": "user", "ai": "assistant", "function": "tool", "developer": "system"}
_OWN_KEYS = ("role", "name", "agent", "content", "tool_calls", "tool_call_id")


#: Responses API input items that are not messages (they have a ``type`` and no ``role``).
ITEM_TYPES = ("function_call", "function_call_output", "reasoning")
#: What the OpenAI Agents SDK answers the model when a function tool raised (its default
#: ``failure_error_function``): the call failed.
SDK_TOOL_ERROR = "An error occurred while running the tool."
#: The SDK names a handoff's tool ``transfer_to_<agent>`` and answers it ``{"assistant": name}``.
_HANDOFF_PREFIX = "transfer_to_"


def _handoff_target(name: str | None, output: Any) -> str | None:
    if not (isinstance(name, str) and name.startswith(_HANDOFF_PREFIX) and isinstance(output, str)):
        return None
    try:
        d = json.loads(output)
    except ValueError:
        return None
    return d["assistant"] if isinstance(d, dict) and isinstance(d.get("assistant"), str) else None


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
    current: str | None = None  # the agent a Responses API handoff handed the conversation to
    task = None
    for j, m in enumerate(messages):
        if not isinstance(m, dict):
            raise IngestError(str(path), where(j), f"expected a message object, found {type(m).__name__}")
        if "role" not in m and m.get("type") in ITEM_TYPES:
            current = _item_step(steps, calls, m, current)
            continue
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
            agent = m.get("name") or m.get("agent") or (current if role == "assistant" and current else role)
            if role not in STANDARD_ROLES:  # a speaker's name in the role field ("WebSurfer")
                extras["source_role"], role = raw_role, "assistant"
        last_agent = agent if role != "user" else last_agent
        if role == "user":
            current = None  # a user's turn starts a run again, at the agent it starts with
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


def _item_step(steps: list[Step], calls: dict[str, tuple[str | None, str | None]], m: dict,
               current: str | None) -> str | None:
    """The step of a Responses API item that is not a message; returns the conversation's agent after it."""
    agent = current or "assistant"
    kind = m["type"]
    if kind == "function_call":
        cid, name = m.get("call_id"), m.get("name")
        if cid:
            calls[cid] = (name, agent)
        if not (isinstance(name, str) and name.startswith(_HANDOFF_PREFIX)):
            steps.append(Step(agent=agent, content=None, kind=StepKind.TOOL_CALL, role="assistant", tool_name=name,
                              tool_args=as_text(m.get("arguments")), span_id=cid))
        return current
    if kind == "function_call_output":
        cid = m.get("call_id")
        name, caller = calls.get(cid, (None, None)) if cid else (None, None)
        target = _handoff_target(name, m.get("output"))
        if target:
            steps.append(Step(agent=caller or agent, content=as_text(m.get("output")), kind=StepKind.HANDOFF,
                              role="assistant", target_agent=target, span_id=cid))
            return target
        text = content_text(m.get("output"))
        steps.append(Step(agent=caller or agent, content=text, kind=StepKind.TOOL_RESULT, role="tool", tool_name=name,
                          parent_span_id=cid, status="error" if (text or "").startswith(SDK_TOOL_ERROR) else "ok"))
        return current
    # reasoning: its summary's text, the model's own
    summary = m.get("summary")
    text = "\n".join(p.get("text", "") for p in summary if isinstance(p, dict)) if isinstance(summary, list) else None
    steps.append(Step(agent=agent, content=text or None, kind=StepKind.MESSAGE, role="assistant",
                      attributes={"note": "reasoning"}))
    return current
