"""LangGraph artefacts: final message lists and ``graph.stream()`` dumps.

``langgraph-messages``
    A JSON list of LangChain messages in any of the three serialisations found in the
    wild (docs/formats/langgraph-langsmith.md, "Messages"): ``messages_to_dict`` (``{"type", "data"}``), ``dumpd``
    (``{"lc": 1, "type": "constructor", "id": [..., "AIMessage"], "kwargs"}``) and
    ``model_dump`` (flat, with ``"type": "ai"``); also ``{"messages": [...]}`` (a state
    snapshot).  No timestamps exist in these.
``langgraph-stream``
    One stream part per line: v2 ``{"type": mode, "ns", "data"}``; v1 as the library
    yields it (``[mode, chunk]``, ``[ns, mode, chunk]``, ``[ns, chunk]``), or wrapped as
    ``{"ns"?, "mode"?, "payload"}``; bare ``debug`` events ``{"step", "timestamp",
    "type", "payload"}``.  Whole messages are taken from ``updates`` (deduplicated by
    message id, since a subgraph's messages reappear in its parent's update), else from
    ``messages`` (token chunks merged by id), else from the last ``values``.  ``debug``
    events give timestamps and node errors; a root checkpoint with ``next == []`` marks
    termination.
``langgraph-events``
    ``astream_events(version="v2")`` dumps, one event per line (see
    :class:`LangGraphEventsImporter`); no timestamps.

Message normalisation (:class:`MessageMapper`; the parsing of single messages is shared
with the LangSmith and OTel importers in :mod:`mast.ingest.langchain_messages`):
- agent = ``AIMessage.name``, else the graph node that produced it (``ns[0]`` before
  ``:``, or the ``updates`` key); human messages have no agent;
- AI text → ``message`` (tokens from ``usage_metadata`` on the first step of the message);
- ``tool_calls`` → ``tool_call`` steps (``span_id`` = call id); ``ToolMessage`` →
  ``tool_result`` with ``parent_span_id`` = ``tool_call_id``;
- a ``transfer_to_X`` / ``transfer_back_to_X`` call and its ToolMessage (langgraph-supervisor
  and swarm handoffs, ``__handoff_destination``) → one ``handoff`` step to ``X``;
- a final AI message without tool calls → ``termination``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import as_text, first_char, first_json, iso_z, iter_jsonl, line_json, load_json, strip_bom
from mast.ingest.langchain_messages import (ROLE_BY_TYPE, NotAMessage, lc_message, looks_like_message, messages_in,
                                            step, text_of, transfer_target)
from mast.model import Outcome, Step, StepKind, Trace

FRAMEWORK = "langgraph"

_STREAM_MODES = {"values", "updates", "messages", "custom", "checkpoints", "tasks", "debug"}

#: ``ToolMessage.status`` ("success" | "error") as a step status: one vocabulary for every format
_TOOL_STATUS = {"success": "ok", "error": "error"}


class MessageMapper:
    """Turn normalised LangChain messages into steps (see the module docstring)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.seen: set[str] = set()
        self.call_agent: dict[str, str | None] = {}
        self.call_name: dict[str, str] = {}
        self.handoff_calls: set[str] = set()
        self.last_ai: dict | None = None
        self.last_agent: str | None = None
        self.task: str | None = None
        self.cur_agent: str | None = None
        self.last_target: str | None = None

    def add(self, m: dict, agent: str | None = None, ts: str | None = None, llm: bool = False) -> None:
        """Map one message; ``llm``: an AI message as the chat model returned it (a model call).

        A model call is an ``llm_call`` step (its text, tokens, status ``ok``) before its tool
        calls and handoffs, as the LangSmith and OTel importers store the same reply; an AI
        message only seen in a state or a node's update stays a ``message``.
        """
        mid = m.get("id")
        if mid:
            if mid in self.seen:
                return
            self.seen.add(mid)
        t = m.get("type")
        if t == "remove":
            return
        role = ROLE_BY_TYPE.get(t, m.get("role"))
        content = text_of(m.get("content"))
        attrs = {k: v for k, v in (("message_id", mid), ("model", (m.get("response_metadata") or {}).get("model_name")),
                                   ("finish_reason", (m.get("response_metadata") or {}).get("finish_reason")))
                 if v}
        if t in ("human", "system", "chat"):
            # The graph's input reaches a subgraph-aware stream only with the parent's
            # update, after the first node's own messages: the task always comes first.
            at = 0 if t == "human" and self.task is None and content else len(self.steps)
            self.steps.insert(at, step(agent=m.get("name") if t == "chat" else None, role=role, kind=StepKind.MESSAGE,
                                   content=content, started_at=ts, attributes=attrs or None))
            if t == "human" and self.task is None and content:
                self.task = content
            return
        if t in ("tool", "function"):
            cid = m.get("tool_call_id")
            if cid and cid in self.handoff_calls:
                return  # folded into the handoff step
            rm = m.get("response_metadata") or {}
            dest = rm.get("__handoff_destination")
            who = self.call_agent.get(cid) if cid else None
            who = who or agent
            if dest and not (cid and cid in self.call_name):
                self.last_target = str(dest)
                self.steps.append(step(agent=who, kind=StepKind.HANDOFF, target_agent=str(dest), role="tool",
                                       tool_name=m.get("name"), content=content, started_at=ts, span_id=cid))
                return
            self.steps.append(step(agent=who, role="tool", kind=StepKind.TOOL_RESULT, content=content,
                                   tool_name=m.get("name") or self.call_name.get(cid or ""), parent_span_id=cid,
                                   started_at=ts, status=_TOOL_STATUS.get(m.get("status")), attributes=attrs or None))
            return
        # AI message (whole or merged chunk)
        who = m.get("name") or agent
        if who and self.cur_agent and who != self.cur_agent and self.last_target != who:
            # hand-written graphs move between agents by edges or Command(goto=…): no tool call
            self.steps.append(step(agent=self.cur_agent, kind=StepKind.HANDOFF, target_agent=who, started_at=ts,
                                   attributes={"implicit": True}))
        if who and who != self.cur_agent:
            self.cur_agent = who
            self.last_target = None
        usage = m.get("usage_metadata") or {}
        tin, tout = usage.get("input_tokens"), usage.get("output_tokens")
        first = len(self.steps)
        calls = [c for c in (m.get("tool_calls") or []) if isinstance(c, dict)]
        if llm or content:
            self.steps.append(step(agent=who, role="assistant", kind=StepKind.LLM_CALL if llm else StepKind.MESSAGE,
                                   content=content, started_at=ts, status="ok" if llm else None,
                                   attributes=attrs or None))
        for c in calls:
            name = c.get("name")
            cid = c.get("id")
            target = transfer_target(name)
            args = c.get("args")
            if target:
                if cid:
                    self.handoff_calls.add(cid)
                self.last_target = target
                self.steps.append(step(agent=who, role="assistant", kind=StepKind.HANDOFF, target_agent=target,
                                       tool_name=name, tool_args=as_text(args) if args else None, span_id=cid,
                                       started_at=ts, attributes=attrs or None))
            else:
                if cid:
                    self.call_agent[cid] = who
                    self.call_name[cid] = name
                self.steps.append(step(agent=who, role="assistant", kind=StepKind.TOOL_CALL, tool_name=name,
                                       tool_args=as_text(args), span_id=cid, started_at=ts, attributes=attrs or None))
        if len(self.steps) == first:  # an empty AI message still happened
            self.steps.append(step(agent=who, role="assistant", kind=StepKind.MESSAGE, content=None,
                                   started_at=ts, attributes=attrs or None))
        if tin is not None or tout is not None:
            self.steps[first].tokens_in = tin
            self.steps[first].tokens_out = tout
        self.last_ai = m
        if who:
            self.last_agent = who

    def terminate(self, ts: str | None = None, force: bool = False) -> None:
        """Add a termination step when the conversation ended on a final answer."""
        m = self.last_ai
        if m is None:
            return
        final = not (m.get("tool_calls") or [])
        if final or force:
            self.steps.append(step(agent=m.get("name") or self.last_agent, kind=StepKind.TERMINATION,
                                   content=text_of(m.get("content")) if final else None, started_at=ts,
                                   status="completed"))


class LangGraphMessagesImporter:
    name = "langgraph-messages"
    description = "LangChain/LangGraph message list (messages_to_dict, dumpd or model_dump form)"
    example = '[{"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "HumanMessage"], "kwargs": {…'

    def detect(self, path: Path, head: bytes) -> bool:
        c = first_char(head)
        if c == "[":
            return looks_like_message(first_json(head))
        if c == "{":
            text = strip_bom(head).decode("utf-8", "replace")
            m = re.match(r'\s*\{\s*"messages"\s*:\s*\[', text)
            if not m:
                return False
            return looks_like_message(json.JSONDecoder().raw_decode(text[m.end():].lstrip())[0])
        return False

    def read(self, path: Path) -> Iterator[Trace]:
        data = load_json(path)
        meta: dict = {}
        if isinstance(data, dict):
            if "messages" not in data:
                raise IngestError(str(path), None, "missing required field: messages")
            meta = {k: v for k, v in data.items() if k != "messages" and isinstance(v, (str, int, float, bool))}
            data = data["messages"]
        msgs = messages_in(path, None, data)
        mapper = MessageMapper()
        for m in msgs:
            mapper.add(m)
        mapper.terminate()
        yield Trace(system=None, framework=FRAMEWORK, source_format=self.name, source_path=str(path),
                    source_index=0, steps=mapper.steps, task=mapper.task, metadata=meta)


# -- stream dumps -------------------------------------------------------------------------

def _ns_list(ns: Any) -> list[str]:
    if ns is None:
        return []
    if isinstance(ns, str):
        return [p for p in ns.split("|") if p]
    if isinstance(ns, (list, tuple)):
        return [str(p) for p in ns]
    raise ValueError("namespace is not a list")


def _part(obj: Any) -> tuple[list[str], str | None, Any] | None:
    """Normalise one stream line to (ns, mode, data); None if it is not a stream part."""
    if isinstance(obj, dict):
        if "type" in obj and "ns" in obj and "data" in obj:
            return _ns_list(obj["ns"]), obj["type"], obj["data"]
        if "payload" in obj and ("mode" in obj or "ns" in obj):
            return _ns_list(obj.get("ns")), obj.get("mode"), obj["payload"]
        if {"step", "timestamp", "type", "payload"} <= obj.keys() and obj["type"] in ("checkpoint", "task", "task_result"):
            return [], "debug", obj
        return None
    if isinstance(obj, list):
        if len(obj) == 3 and isinstance(obj[0], list) and isinstance(obj[1], str):
            return _ns_list(obj[0]), obj[1], obj[2]
        if len(obj) == 2 and isinstance(obj[0], str) and obj[0] in _STREAM_MODES:
            return [], obj[0], obj[1]
        if len(obj) == 2 and isinstance(obj[0], list) and all(isinstance(x, str) for x in obj[0]):
            return _ns_list(obj[0]), None, obj[1]
    return None


def _bare_updates(obj: Any) -> bool:
    """``stream_mode="updates"`` without subgraphs yields ``{node: {"messages": [...]}}`` itself."""
    return (isinstance(obj, dict) and bool(obj) and all(
        isinstance(v, dict) and isinstance(v.get("messages"), list) for v in obj.values()))


def _agent_of_ns(ns: list[str]) -> str | None:
    return ns[0].split(":", 1)[0] if ns else None


class _Chunks:
    """Merge AIMessageChunk token chunks (``messages`` mode) into whole messages by id."""

    def __init__(self) -> None:
        self.open: dict[str, dict] = {}

    def add(self, m: dict) -> dict | None:
        mid = m.get("id") or "?"
        cur = self.open.get(mid)
        if cur is None:
            cur = {"type": "ai", "id": m.get("id"), "name": m.get("name"), "content": "", "tool_calls": [],
                   "_tc": {}, "response_metadata": {}, "usage_metadata": None}
            self.open[mid] = cur
        c = m.get("content")
        if isinstance(c, str):
            cur["content"] += c
        elif c:
            cur["content"] += text_of(c) or ""
        for tc in m.get("tool_call_chunks") or []:
            idx = tc.get("index", len(cur["_tc"]))
            slot = cur["_tc"].setdefault(idx, {"name": None, "args": "", "id": None})
            slot["name"] = slot["name"] or tc.get("name")
            slot["id"] = slot["id"] or tc.get("id")
            slot["args"] += tc.get("args") or ""
        cur["response_metadata"].update(m.get("response_metadata") or {})
        if m.get("usage_metadata"):
            cur["usage_metadata"] = m["usage_metadata"]
        if m.get("name"):
            cur["name"] = m["name"]
        if m.get("chunk_position") == "last" or cur["response_metadata"].get("finish_reason"):
            return self.close(mid)
        return None

    def close(self, mid: str) -> dict:
        cur = self.open.pop(mid)
        for slot in cur.pop("_tc").values():
            try:
                args = json.loads(slot["args"]) if slot["args"] else {}
            except ValueError:
                args = slot["args"]
            cur["tool_calls"].append({"name": slot["name"], "args": args, "id": slot["id"]})
        return cur

    def rest(self) -> list[dict]:
        return [self.close(k) for k in list(self.open)]


class LangGraphStreamImporter:
    name = "langgraph-stream"
    description = "LangGraph graph.stream() dump (v2 {type, ns, data} parts; v1 debug/updates/messages)"
    example = '{"type": "checkpoints", "ns": [], "data": {"config": {"configurable": {"thread_id": "…"}}, …'

    def detect(self, path: Path, head: bytes) -> bool:
        c = first_char(head)
        if c not in "[{":
            return False
        line = strip_bom(head).lstrip().split(b"\n", 1)[0].strip()
        try:
            obj = line_json(line)
        except ValueError:
            # a first part longer than the head (a big state snapshot): sniff the v2 envelope
            return b"\n" not in line and bool(re.match(
                rb'\{\s*"type"\s*:\s*"(values|updates|messages|custom|checkpoints|tasks|debug)"\s*,\s*"ns"\s*:', line))
        p = _part(obj)
        if p is None:
            return _bare_updates(obj) and not any(k in obj for k in ("messages", "resourceSpans"))
        ns, mode, data = p
        if mode is not None and mode not in _STREAM_MODES:
            return isinstance(obj, dict) and "ns" in obj and "data" in obj  # newer mode: refused at read
        if mode is None:
            return isinstance(data, dict)
        return True

    def read(self, path: Path) -> Iterator[Trace]:
        parts: list[tuple[str, list[str], str, Any]] = []
        for i, obj in iter_jsonl(path):
            where = f"line {i + 1}"
            try:
                p = _part(obj)
            except ValueError as e:
                raise IngestError(str(path), where, str(e)) from None
            if p is None and _bare_updates(obj):
                p = ([], "updates", obj)
            if p is None:
                raise IngestError(str(path), where, "not a LangGraph stream part "
                                  "(expected {type, ns, data}, [mode, chunk], [ns, mode, chunk] or a debug event)")
            ns, mode, data = p
            if mode is None:
                mode = "updates"
            if mode not in _STREAM_MODES:
                raise IngestError(str(path), where, f"unknown stream mode {mode!r} (newer LangGraph?)",
                                  "Upgrade mast, or dump with a known mode.")
            parts.append((where, ns, mode, data))
        runs: list[list] = [[]]
        for p in parts:
            where, ns, mode, data = p
            if (runs[-1] and not ns and _is_input_checkpoint(mode, data)
                    and any(q[2] in ("updates", "messages") for q in runs[-1])):
                runs.append([])
            runs[-1].append(p)
        for idx, run in enumerate(r for r in runs if r):
            yield self._run(path, idx, run)

    def _run(self, path: Path, index: int, run: list) -> Trace:
        has_updates = any(p[2] == "updates" for p in run)
        has_messages = any(p[2] == "messages" for p in run)
        mapper = MessageMapper()
        chunks = _Chunks()
        ts_by_ns: dict[str, str] = {}
        last_ts = None
        ended = False
        thread = None
        last_values = None
        first_values = None
        saw_cp = False
        outcome = Outcome.UNKNOWN
        for where, ns, mode, data in run:
            nskey = "|".join(ns)
            agent = _agent_of_ns(ns)
            if mode == "debug":
                if not isinstance(data, dict) or "type" not in data or "payload" not in data:
                    raise IngestError(str(path), where, "debug event without type/payload")
                ts = iso_z(data.get("timestamp"))
                if ts:
                    last_ts = ts
                    if data["type"] == "task":
                        ts_by_ns[nskey] = ts
                pl = data["payload"] or {}
                if data["type"] == "task_result" and pl.get("error"):
                    mapper.steps.append(step(agent=agent or pl.get("name"), kind=StepKind.ERROR,
                                             content=as_text(pl["error"]), started_at=ts, status="error",
                                             attributes={"node": pl.get("name")}))
                if data["type"] == "checkpoint":
                    saw_cp = True
                    thread = thread or _thread(pl)
                    first_values = first_values or _with_human(pl.get("values"))
                    if not ns and pl.get("next") == [] and (pl.get("metadata") or {}).get("source") != "input":
                        ended = True
                continue
            if mode == "checkpoints":
                if isinstance(data, dict):
                    saw_cp = True
                    first_values = first_values or _with_human(data.get("values"))
                    thread = thread or _thread(data)
                    if not ns and data.get("next") == [] and (data.get("metadata") or {}).get("source") != "input":
                        ended = True
                continue
            if mode == "tasks":
                if isinstance(data, dict) and data.get("error"):
                    mapper.steps.append(step(agent=agent or data.get("name"), kind=StepKind.ERROR,
                                             content=as_text(data["error"]), status="error",
                                             attributes={"node": data.get("name")}))
                continue
            ts = ts_by_ns.get(nskey, last_ts)
            if mode == "updates":
                if not isinstance(data, dict):
                    raise IngestError(str(path), where, "updates chunk is not an object {node: update}")
                for node, upd in data.items():
                    who = agent or (None if node.startswith("__") else node)
                    if node == "__interrupt__":
                        mapper.steps.append(step(agent=who, kind=StepKind.EVENT, content=as_text(upd),
                                                 started_at=ts, attributes={"node": node}))
                        continue
                    msgs = _update_messages(upd)
                    if msgs is None:
                        continue
                    for m in messages_in(path, where, msgs):
                        if m.get("type") == "AIMessageChunk":
                            m = dict(m, type="ai")
                        mapper.add(m, who, ts)
                continue
            if mode == "messages":
                if has_updates:
                    continue
                if not isinstance(data, (list, tuple)) or len(data) != 2:
                    raise IngestError(str(path), where, "messages chunk is not a [message, metadata] pair")
                meta = data[1] if isinstance(data[1], dict) else {}
                who = agent or meta.get("lc_agent_name") or meta.get("langgraph_node")
                m = messages_in(path, where, [data[0]])[0]
                if m.get("type") == "AIMessageChunk":
                    m = chunks.add(m)
                    if m is None:
                        continue
                mapper.add(m, who, ts)
                continue
            if mode == "values":
                if not ns:
                    last_values = (where, data)
                    first_values = first_values or _with_human(data)
                continue
            # custom: user-defined payloads
            mapper.steps.append(step(agent=agent, kind=StepKind.EVENT, content=as_text(data), started_at=ts,
                                     attributes={"stream_mode": mode}))
        for m in chunks.rest():
            mapper.add(m, None, last_ts)
        if not has_updates and not has_messages and last_values is not None:
            where, data = last_values
            msgs = _update_messages(data)
            if msgs:
                for m in messages_in(path, where, msgs):
                    mapper.add(m, None, None)
        if mapper.task is None and isinstance(first_values, dict):
            # the graph's input is in the first root state, not in any node's update
            for m in messages_in(path, "values", _update_messages(first_values) or [], roles=True):
                if m.get("type") == "human":
                    mapper.add(m, None, None)
                    break
        if ended or not saw_cp:
            mapper.terminate(last_ts)
        if any(s.kind == StepKind.ERROR for s in mapper.steps) and not ended:
            outcome = Outcome.FAILURE
        return Trace(system=None, framework=FRAMEWORK, source_format=self.name, source_path=str(path),
                     source_index=index, steps=mapper.steps, task=mapper.task, outcome=outcome,
                     metadata={k: v for k, v in (("source_id", thread), ("first_record", run[0][0])) if v})


def _update_messages(upd: Any) -> list | None:
    if isinstance(upd, dict):
        msgs = upd.get("messages")
        if isinstance(msgs, dict):
            return [msgs]
        return msgs if isinstance(msgs, list) else None
    if isinstance(upd, list):  # a node returning several updates (Command list)
        out: list = []
        for u in upd:
            got = _update_messages(u)
            if got:
                out.extend(got)
        return out or None
    return None


def _with_human(values: Any) -> Any:
    msgs = _update_messages(values) if isinstance(values, dict) else None
    ok = any(isinstance(m, dict) and (m.get("type") == "human" or (m.get("kwargs") or {}).get("type") == "human"
                                      or (m.get("data") and m.get("type") == "human")) for m in msgs or [])
    return values if ok else None


def _thread(cp: dict) -> str | None:
    conf = ((cp.get("config") or {}).get("configurable") or {})
    return conf.get("thread_id")


def _is_input_checkpoint(mode: str, data: Any) -> bool:
    pl = data.get("payload") if mode == "debug" and isinstance(data, dict) and data.get("type") == "checkpoint" else (
        data if mode == "checkpoints" else None)
    return isinstance(pl, dict) and (pl.get("metadata") or {}).get("source") == "input"


class LangGraphEventsImporter:
    """``astream_events(version="v2")`` dumps: one event per line.

    Whole messages come from ``on_chat_model_end`` (the AIMessage: an ``llm_call`` step with
    its tokens, the kind LangSmith and OTel exports of the same run give it) and ``on_tool_end``
    (the ToolMessage; a transfer tool's ``Command`` output is the handoff already taken
    from the AI message's tool call); the agent from ``metadata.lc_agent_name``, else the
    first segment of ``langgraph_checkpoint_ns``; the root chain's input gives the task and
    its end the termination.  These events carry no timestamps.
    """

    name = "langgraph-events"
    description = "LangChain/LangGraph astream_events(version=\"v2\") JSONL (on_chat_model_end, on_tool_end, ...)"
    example = '{"event": "on_chain_start", "data": {"input": {"messages": […]}}, "name": "LangGraph", "run_id": …'

    def detect(self, path: Path, head: bytes) -> bool:
        if first_char(head) != "{":
            return False
        obj = line_json(strip_bom(head).lstrip().split(b"\n", 1)[0])
        return (isinstance(obj, dict) and str(obj.get("event", "")).startswith("on_")
                and "run_id" in obj and "parent_ids" in obj)

    def read(self, path: Path) -> Iterator[Trace]:
        runs: list[list[tuple[str, dict]]] = []
        for i, ev in iter_jsonl(path):
            where = f"line {i + 1}"
            if not isinstance(ev, dict) or not str(ev.get("event", "")).startswith("on_") or "run_id" not in ev:
                raise IngestError(str(path), where, "not an astream_events event (missing event/run_id)")
            if not isinstance(ev.get("parent_ids", []), list):
                raise IngestError(str(path), where, "parent_ids is not a list")
            if not ev.get("parent_ids") and ev["event"] == "on_chain_start":
                runs.append([])
            if not runs:
                runs.append([])
            runs[-1].append((where, ev))
        for idx, run in enumerate(runs):
            yield self._run(path, idx, run)

    def _run(self, path: Path, index: int, run: list[tuple[str, dict]]) -> Trace:
        mapper = MessageMapper()
        root_id = root_name = None
        ended = False
        for where, ev in run:
            kind = ev["event"]
            md = ev.get("metadata") or {}
            ns = md.get("langgraph_checkpoint_ns") or md.get("checkpoint_ns") or ""
            agent = md.get("lc_agent_name") or (str(ns).split("|", 1)[0].split(":", 1)[0] or None)
            data = ev.get("data") or {}
            if not ev.get("parent_ids"):
                if kind == "on_chain_start":
                    root_id, root_name = ev["run_id"], ev.get("name")
                    inp = data.get("input")
                    for m in messages_in(path, where, _update_messages(inp) or [], roles=True) if isinstance(inp, dict) else []:
                        mapper.add(m, None, None)
                elif kind == "on_chain_end" and ev["run_id"] == root_id:
                    ended = True
                continue
            if kind == "on_chat_model_end":
                out = data.get("output")
                msgs = messages_in(path, where, [out]) if out is not None else []
                for m in msgs:
                    mapper.add(dict(m, type="ai") if m.get("type") == "AIMessageChunk" else m, agent, None, llm=True)
            elif kind == "on_chain_end" and md.get("langgraph_node") == ev.get("name"):
                # a node's own update: messages written by hand-written nodes (and the
                # supervisor's synthesized handoff-back pair) exist nowhere else
                out = data.get("output")
                if isinstance(out, dict) and isinstance(out.get("update"), dict):
                    out = out["update"]
                msgs = _update_messages(out) if isinstance(out, (dict, list)) else None
                for m in messages_in(path, where, msgs or []):
                    mapper.add(dict(m, type="ai") if m.get("type") == "AIMessageChunk" else m,
                               agent or ev.get("name"), None)
            elif kind == "on_tool_end":
                out = data.get("output")
                try:
                    m = lc_message(out)
                except NotAMessage as e:
                    raise IngestError(str(path), where, str(e)) from None
                if m is not None:
                    mapper.add(m, agent, None)
        if ended:
            mapper.terminate()
        # the root chain is the graph: its name is the system's, as LangSmith's root run names it
        # ("LangGraph", a compiled graph's default, names nothing)
        system = str(root_name) if root_name and root_name != "LangGraph" else None
        return Trace(system=system, framework=FRAMEWORK, source_format=self.name, source_path=str(path),
                     source_index=index, steps=mapper.steps, task=mapper.task,
                     metadata={"source_id": root_id} if root_id else {})
