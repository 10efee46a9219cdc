"""LangChain messages as the LangGraph, LangSmith and OTel importers all meet them.

LangChain serialises a message three ways (docs/formats/langgraph-langsmith.md,
"Messages"): ``messages_to_dict`` (``{"type", "data"}``), ``dumpd`` (``{"lc": 1,
"type": "constructor", "id": [..., "AIMessage"], "kwargs"}``) and ``model_dump`` (flat,
with ``"type": "ai"``); a graph's input may also be ``{"role", "content"}`` dicts, which
LangChain coerces to messages.  :func:`lc_message` flattens all four to the ``model_dump``
shape; the other helpers read what every one of those importers needs from a message
(text, handoff target, role).  Turning a conversation into steps is each importer's own
business: LangGraph's node agents, LangSmith's run tree and OTel's spans differ.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mast.errors import IngestError
from mast.ingest._util import as_text
from mast.model import Step

_TYPE_BY_CLASS = {"HumanMessage": "human", "AIMessage": "ai", "ToolMessage": "tool", "SystemMessage": "system",
                  "FunctionMessage": "function", "ChatMessage": "chat", "RemoveMessage": "remove",
                  "AIMessageChunk": "AIMessageChunk", "HumanMessageChunk": "human", "ToolMessageChunk": "tool",
                  "SystemMessageChunk": "system"}
_MSG_TYPES = {"human", "ai", "tool", "system", "function", "chat", "AIMessageChunk", "remove"}
ROLE_BY_TYPE = {"human": "user", "ai": "assistant", "AIMessageChunk": "assistant", "tool": "tool", "system": "system",
                "function": "tool", "chat": None}
#: ``{"role", "content"}`` dicts as LangChain's ``convert_to_messages`` reads them.
_TYPE_BY_ROLE = {"user": "human", "human": "human", "assistant": "ai", "ai": "ai", "system": "system",
                 "developer": "system", "tool": "tool", "function": "function"}
_TRANSFER_RX = re.compile(r"^transfer_(?:back_)?to_(.+)$")


def step(**kw: Any) -> Step:
    """A Step whose agent and content default to None (most LangChain-derived steps lack one)."""
    kw.setdefault("content", None)
    kw.setdefault("agent", None)
    return Step(**kw)


class NotAMessage(ValueError):
    """A LangChain serialisation of a version mast does not read (refused, not guessed at)."""


def lc_message(obj: Any, roles: bool = False) -> dict | None:
    """Flatten one serialised LangChain message to model_dump shape, or None if it is not one.

    ``roles``: also take a ``{"role", "content"}`` dict, where a graph's *input* is read
    (never when detecting a file: any chat transcript has that shape).

    Raises :class:`NotAMessage` for an ``lc`` serialisation of an unknown newer version.
    """
    if not isinstance(obj, dict):
        return None
    if "lc" in obj and obj.get("type") == "constructor":
        if obj.get("lc") != 1:
            raise NotAMessage(f"LangChain serialisation version lc={obj.get('lc')!r} is newer than mast reads (1)")
        ids = obj.get("id") or []
        cls = ids[-1] if ids else ""
        if cls not in _TYPE_BY_CLASS:
            return None
        kw = dict(obj.get("kwargs") or {})
        kw.setdefault("type", _TYPE_BY_CLASS[cls])
        if cls == "AIMessageChunk":
            kw["type"] = "AIMessageChunk"
        return kw
    if isinstance(obj.get("data"), dict) and obj.get("type") in _MSG_TYPES and "content" in obj["data"]:
        d = dict(obj["data"])
        d["type"] = obj["type"] if obj["type"] != "ai" or d.get("type") != "AIMessageChunk" else "AIMessageChunk"
        return d
    if obj.get("type") in _MSG_TYPES and "content" in obj:
        return obj
    if roles and "type" not in obj and isinstance(obj.get("role"), str) and "content" in obj:
        # a message-like dict, the form LangGraph's docs use for graph input
        # (``{"messages": [{"role": "user", "content": ...}]}``); LangChain coerces it
        kind = _TYPE_BY_ROLE.get(obj["role"].lower())
        if kind is None:
            return None
        return {**{k: v for k, v in obj.items() if k != "role"}, "type": kind}
    return None


def text_of(content: Any) -> str | None:
    """Message content as text: content-block lists keep their text blocks."""
    if content is None or content == "":
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for b in content:
            if isinstance(b, str):
                parts.append(b)
            elif isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str):
                parts.append(b["text"])
        if parts and len(parts) == len(content):
            return "".join(parts) or None
    return as_text(content)


def as_message(obj: Any, roles: bool = False) -> dict | None:
    """:func:`lc_message` for places where a newer serialisation is just not a message.

    Inputs and outputs of runs and spans hold messages among other values: there, an
    unreadable message is skipped like any other non-message instead of failing the file.
    """
    try:
        return lc_message(obj, roles)
    except NotAMessage:
        return None


#: LangGraph's own nodes and channel writers: how a graph runs, never an agent.
_PLUMBING_RX = re.compile(r"^(?:__[A-Za-z0-9_]+__|ChannelWrite\b.*|ChannelRead\b.*|Branch<.*|_write|_route)$")


def is_plumbing(name: Any) -> bool:
    """Whether a node or run name is framework plumbing (``__start__``, ``__end__``,
    ``__interrupt__``, ``ChannelWrite<…>``, ``Branch<…>``), which must not become an agent."""
    return isinstance(name, str) and bool(_PLUMBING_RX.match(name.strip()))


def agent_name(name: Any) -> str | None:
    """``name`` as an agent's name, or None when it is empty or plumbing."""
    if name is None or is_plumbing(str(name)):
        return None
    return str(name) or None


def transfer_target(tool_name: str | None) -> str | None:
    """The agent a handoff tool (langgraph-supervisor, swarm) transfers to, or None."""
    m = _TRANSFER_RX.match(tool_name or "")
    return m.group(1) if m else None


def messages_in(path: Path, where: Any, items: Any, roles: bool = False) -> list[dict]:
    """A list of serialised messages, flattened; anything else in it is an error naming the message."""
    if not isinstance(items, list):
        raise IngestError(str(path), where, "expected a list of messages")
    out = []
    for j, it in enumerate(items):
        try:
            m = lc_message(it, roles)
        except NotAMessage as e:
            raise IngestError(str(path), f"{where}, message {j}" if where is not None else f"message {j}",
                              str(e), "Upgrade mast.") from None
        if m is None:
            raise IngestError(str(path), f"{where}, message {j}" if where is not None else f"message {j}",
                              "not a LangChain message (expected messages_to_dict, dumpd or model_dump form)")
        out.append(m)
    return out


def looks_like_message(obj: Any) -> bool:
    try:
        return lc_message(obj) is not None
    except NotAMessage:
        return True  # detected, refused with a clear error at read time
