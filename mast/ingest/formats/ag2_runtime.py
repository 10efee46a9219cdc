"""AG2 / AutoGen 0.2 classic ``runtime_logging``: the SQLite database and the file log.

Both loggers record the same things (docs/formats/ag2.md), so both are read into one
record stream and turned into steps by one builder:

- ``events.received_message`` -> the conversation.  ``source_name`` is the *receiver*,
  ``json_state.sender`` the sender.  Group-chat rebroadcasts (``chat_manager`` -> each
  participant) are dropped, so every message appears once; speaker-selection side chats
  (``checking_agent`` <-> ``speaker_selection_agent``) are not conversation: the selected
  name becomes an ``event`` step (``target_agent`` = the speaker).  A message dict with
  ``tool_calls`` gives ``tool_call`` steps (``span_id`` = call id), one with
  ``tool_responses`` gives ``tool_result`` steps (``parent_span_id`` = call id);
  ``transfer_to_<agent>`` calls and their results are folded into one ``handoff`` step.
- ``chat_completions`` (file log: records with ``invocation_id``) -> ``llm_call`` steps
  with tokens from ``response.usage`` (the file log's response is a Python repr: its
  ``CompletionUsage(...)`` is parsed), ``cost``, start and end times.
- ``function_calls`` -> matched to the tool results (by function name and arguments, in
  order) to add the executor and the return value; one with no matching message becomes
  a ``tool_result`` step of its own.
- ``reply_func_executed`` with ``check_termination_and_human_reply`` final and no reply, or
  the group chat's ``run_chat`` final -> ``termination``.

Timestamps are UTC without a zone in both loggers.  One trace per logging session
(``session_id``); the SQLite ``version`` table must say 1 (the only version ever shipped):
another version is refused rather than misread.  The agent roster (name, class, system
message, model config) goes to ``metadata.agents``; credentials in it are redacted by
the store.
"""

from __future__ import annotations

import ast
import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import as_text, iso_utc, json_line, lines, sqlite_probe, sqlite_reading, strip_bom
from mast.ingest.autogen_common import ag2_tool_status, collapse_transfer_handoffs, json_or_text, not_none_text
from mast.model import Step, StepKind, Trace

FRAMEWORK = "ag2"
REQUIRED_TABLES = ("chat_completions", "agents", "events", "function_calls")
SUPPORTED_DB_VERSION = 1
_SELECTION_AGENTS = {"checking_agent", "speaker_selection_agent"}
_SESSION_RX = re.compile(r"Started new session with Session ID:\s*(\S+)")
_USAGE_RX = re.compile(r"usage=CompletionUsage\((?P<body>[^()]*)")
_MODEL_RX = re.compile(r"\bmodel='(?P<m>[^']*)'")


@dataclass
class _Agent:
    name: str
    cls: str | None = None
    agent_id: Any = None
    wrapper_id: Any = None
    session: str | None = None
    init_args: Any = None


@dataclass
class _Rec:
    """One logged record, whatever logger wrote it."""
    kind: str  # "event" | "completion" | "function"
    order: int
    ts: str | None
    data: dict
    where: str


@dataclass
class _Session:
    sid: str | None
    agents: list[_Agent] = field(default_factory=list)
    recs: list[_Rec] = field(default_factory=list)
    skipped: int = 0


# --------------------------------------------------------------------------- readers
def read_sqlite(path: Path) -> list[_Session]:
    with sqlite_reading(path) as (con, tables):
        missing = [t for t in REQUIRED_TABLES if t not in tables]
        if missing:
            raise IngestError(str(path), None, "not an AG2 runtime_logging database: missing table(s) "
                              + ", ".join(missing))
        if "version" in tables:
            row = con.execute("SELECT version_number FROM version").fetchone()
            if row is not None and row[0] != SUPPORTED_DB_VERSION:
                raise IngestError(str(path), "version", f"runtime_logging schema version {row[0]} is newer than "
                                  f"this mast reads (version {SUPPORTED_DB_VERSION})",
                                  "Upgrade mast, or export the conversation as ChatResult JSON.")
        con.row_factory = sqlite3.Row
        return _sqlite_sessions(path, con)


def _cols(con, table: str) -> set[str]:
    return {r[1] for r in con.execute(f"PRAGMA table_info({table})")}


def _need_cols(path: Path, con, table: str, cols: tuple[str, ...]) -> None:
    have = _cols(con, table)
    missing = [c for c in cols if c not in have]
    if missing:
        raise IngestError(str(path), f"table {table}", "missing required column(s): " + ", ".join(missing))


def _sqlite_sessions(path: Path, con) -> list[_Session]:
    _need_cols(path, con, "events", ("event_name", "source_id", "source_name", "json_state", "timestamp"))
    _need_cols(path, con, "chat_completions", ("invocation_id", "session_id", "source_name", "request",
                                               "response", "cost", "start_time", "end_time"))
    _need_cols(path, con, "agents", ("agent_id", "session_id", "name", "class"))
    _need_cols(path, con, "function_calls", ("source_name", "function_name", "args", "returns", "timestamp"))
    agents: list[_Agent] = []
    for r in con.execute("SELECT * FROM agents ORDER BY id"):
        agents.append(_Agent(name=r["name"], cls=r["class"], agent_id=r["agent_id"],
                             wrapper_id=r["wrapper_id"] if "wrapper_id" in r.keys() else None,
                             session=r["session_id"], init_args=json_or_text(r["init_args"]) if "init_args" in r.keys() else None))
    order = 0
    recs: list[tuple[str | None, _Rec]] = []
    by_agent = {a.agent_id: a.session for a in agents}
    for r in con.execute("SELECT rowid AS rid, * FROM events ORDER BY id"):
        state = _state(path, f"events row {r['rid']}", r["json_state"])
        recs.append((by_agent.get(r["source_id"]), _Rec("event", order, iso_utc(r["timestamp"]), {
            "event_name": r["event_name"], "source_name": r["source_name"], "source_id": r["source_id"],
            "state": state}, f"events row {r['rid']}")))
        order += 1
    for r in con.execute("SELECT rowid AS rid, * FROM chat_completions ORDER BY id"):
        where = f"chat_completions row {r['rid']}"
        req = _state(path, where, r["request"])
        resp = json_or_text(r["response"])
        recs.append((r["session_id"], _Rec("completion", order, iso_utc(r["start_time"]), {
            "invocation_id": r["invocation_id"], "source_name": r["source_name"], "request": req,
            "response": resp, "is_cached": r["is_cached"] if "is_cached" in r.keys() else None, "cost": r["cost"],
            "end_time": iso_utc(r["end_time"])}, where)))
        order += 1
    for r in con.execute("SELECT rowid AS rid, * FROM function_calls ORDER BY rowid"):
        recs.append((by_agent.get(r["source_id"]) if "source_id" in r.keys() else None,
                     _Rec("function", order, iso_utc(r["timestamp"]), {
                         "source_name": r["source_name"], "function_name": r["function_name"],
                         "args": json_or_text(r["args"]), "returns": json_or_text(r["returns"])},
                         f"function_calls row {r['rid']}")))
        order += 1
    return _split_sessions(agents, recs)


def _split_sessions(agents: list[_Agent], recs: list[tuple[str | None, _Rec]]) -> list[_Session]:
    """Group records by session; records whose session is unknown go to the session
    whose time span contains them (or the only/last one)."""
    sids: list[str | None] = []
    for a in agents:
        if a.session not in sids:
            sids.append(a.session)
    for s, _ in recs:
        if s is not None and s not in sids:
            sids.append(s)
    if not sids:
        sids = [None]
    sessions = {s: _Session(s, [a for a in agents if a.session == s]) for s in sids}
    spans: dict[str | None, list[str]] = {s: [] for s in sids}
    for s, r in recs:
        if s is not None and r.ts:
            spans[s].append(r.ts)
    starts = sorted((min(v), s) for s, v in spans.items() if v)
    for s, r in recs:
        if s is None:
            if len(sids) == 1:
                s = sids[0]
            else:
                s = sids[-1]
                for start, sid in starts:
                    if r.ts and r.ts >= start:
                        s = sid
        sessions[s].recs.append(r)
    return [sessions[s] for s in sids if sessions[s].recs]


def _state(path: Path, where: str, raw: Any) -> Any:
    if raw is None or isinstance(raw, (dict, list)):
        return raw
    try:
        return json.loads(raw)
    except (ValueError, TypeError) as e:
        raise IngestError(str(path), where, f"field is not valid JSON: {e}") from None


def read_file_log(path: Path) -> list[_Session]:
    sessions: list[_Session] = []
    cur: _Session | None = None
    order = 0
    n = 0
    for lineno, raw in lines(path):
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            continue
        m = _SESSION_RX.search(text)
        if m and not text.startswith("{"):
            cur = _Session(m.group(1))
            sessions.append(cur)
            continue
        if cur is None:
            cur = _Session(None)
            sessions.append(cur)
        if not text.startswith("{"):
            cur.skipped += 1  # "[file_logger] Failed to log ..." and other plain text
            continue
        where = f"line {lineno}"
        rec = json_line(path, lineno, text)
        if not isinstance(rec, dict):
            raise IngestError(str(path), where, "expected a JSON object")
        n += 1
        if "agent_name" in rec and "agent_type" in rec:
            cur.agents.append(_Agent(name=rec["agent_name"], cls=rec.get("agent_type"), agent_id=rec.get("id"),
                                     wrapper_id=rec.get("wrapper_id"), session=rec.get("session_id"),
                                     init_args=_roster_args(rec.get("args"))))
            if cur.sid is None and rec.get("session_id"):
                cur.sid = rec["session_id"]
        elif "event_name" in rec:
            _need(path, where, rec, "source_name", "json_state", "timestamp")
            cur.recs.append(_Rec("event", order, iso_utc(rec["timestamp"]), {
                "event_name": rec["event_name"], "source_name": rec["source_name"],
                "source_id": rec.get("source_id"), "state": _state(path, where, rec["json_state"])}, where))
        elif "invocation_id" in rec:
            _need(path, where, rec, "source_name", "request", "response", "start_time")
            cur.recs.append(_Rec("completion", order, iso_utc(rec["start_time"]), {
                "invocation_id": rec["invocation_id"], "source_name": rec["source_name"],
                "request": rec["request"], "response": rec["response"], "is_cached": rec.get("is_cached"),
                "cost": rec.get("cost"), "end_time": iso_utc(rec.get("end_time"))}, where))
        elif "input_args" in rec and "returns" in rec:
            _need(path, where, rec, "source_name", "timestamp")
            cur.recs.append(_Rec("function", order, iso_utc(rec["timestamp"]), {
                "source_name": rec["source_name"], "function_name": rec.get("function_name"),
                "args": json_or_text(rec["input_args"]), "returns": json_or_text(rec["returns"])}, where))
        elif "client_id" in rec or ("wrapper_id" in rec and "json_state" in rec):
            pass  # model client / wrapper configuration
        else:
            raise IngestError(str(path), where, "not an AG2 runtime_logging record (unknown keys: "
                              + ", ".join(sorted(rec)[:6]) + ")")
        order += 1
    if n == 0:
        raise IngestError(str(path), None, "no AG2 runtime_logging records found")
    return [s for s in sessions if s.recs]


def _need(path: Path, where: str, rec: dict, *keys: str) -> None:
    missing = [k for k in keys if k not in rec]
    if missing:
        raise IngestError(str(path), where, "missing required field(s): " + ", ".join(missing))


def _roster_args(args: Any) -> Any:
    """The file logger dumps the whole constructor state; keep what describes the agent."""
    if not isinstance(args, dict):
        return None
    keep = {k: args[k] for k in ("system_message", "llm_config", "description", "human_input_mode")
            if k in args}
    return keep or None


# --------------------------------------------------------------------------- builder
def _usage(resp: Any) -> tuple[int | None, int | None, str | None, str | None]:
    """(prompt tokens, completion tokens, model, reply text) from a logged response."""
    if isinstance(resp, dict):
        if "response" in resp and len(resp) == 1:  # string responses: {"response": "<str>"}
            return None, None, None, as_text(resp["response"])
        u = resp.get("usage") or {}
        text = None
        ch = resp.get("choices") or []
        if ch and isinstance(ch[0], dict):
            msg = ch[0].get("message") or {}
            text = msg.get("content") or (as_text(msg.get("tool_calls")) if msg.get("tool_calls") else None)
        return u.get("prompt_tokens"), u.get("completion_tokens"), resp.get("model"), text
    if isinstance(resp, str):
        m = _USAGE_RX.search(resp)
        tin = tout = None
        if m:
            kv = dict(re.findall(r"(\w+)=(\d+)", m.group("body")))
            tin = int(kv["prompt_tokens"]) if "prompt_tokens" in kv else None
            tout = int(kv["completion_tokens"]) if "completion_tokens" in kv else None
        mm = _MODEL_RX.search(resp)
        return tin, tout, mm.group("m") if mm else None, _repr_content(resp)
    return None, None, None, None


def _repr_content(resp: str) -> str | None:
    m = re.search(r"message=ChatCompletionMessage\(content=(?P<v>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|None)", resp)
    if not m or m.group("v") == "None":
        return None
    try:
        return ast.literal_eval(m.group("v"))
    except (ValueError, SyntaxError):
        return None


def build_steps(path: Path, sess: _Session) -> tuple[list[Step], str | None]:
    managers = {a.name for a in sess.agents if a.cls == "GroupChatManager"}
    # The file logger often fails to log agents: fall back on the conventional name.
    if not any(a.cls == "GroupChatManager" for a in sess.agents):
        managers |= {r.data["source_name"] for r in sess.recs if r.kind == "event"
                     and (r.data.get("state") or {}).get("reply_func_name") == "run_chat"}
        managers.add("chat_manager")
    recs = sorted(sess.recs, key=lambda r: (r.ts or "", r.order))
    steps: list[Step] = []
    task: str | None = None
    names: set[str] = {a.name for a in sess.agents}
    funcs: list[_Rec] = []
    for r in recs:
        d = r.data
        if r.kind == "completion":
            tin, tout, model, text = _usage(d["response"])
            attrs: dict[str, Any] = {"invocation_id": d.get("invocation_id")}
            if model:
                attrs["model"] = model
            if d.get("is_cached"):
                attrs["is_cached"] = True
            req = d.get("request")
            if isinstance(req, dict) and req.get("messages") is not None:
                attrs["prompt"] = req["messages"]
            steps.append(Step(agent=d["source_name"], content=text, kind=StepKind.LLM_CALL, role="assistant",
                              span_id=d.get("invocation_id"), started_at=r.ts, ended_at=d.get("end_time"),
                              tokens_in=tin, tokens_out=tout,
                              cost_usd=float(d["cost"]) if isinstance(d.get("cost"), (int, float)) else None,
                              attributes=attrs))
            continue
        if r.kind == "function":
            funcs.append(r)
            continue
        state = d.get("state")
        if not isinstance(state, dict):
            raise IngestError(str(path), r.where, "json_state is not an object")
        ev = d["event_name"]
        receiver = d["source_name"]
        if ev == "received_message":
            if "message" not in state or "sender" not in state:
                raise IngestError(str(path), r.where, "received_message lacks message or sender")
            sender = state["sender"]
            msg = state["message"]
            if sender in _SELECTION_AGENTS or receiver in _SELECTION_AGENTS:
                if sender == "speaker_selection_agent" and isinstance(msg, str):
                    mgr = next(iter(sorted(managers & names)), None) or "speaker_selection_agent"
                    steps.append(Step(agent=mgr, content=f"next speaker: {msg}", kind=StepKind.EVENT,
                                      target_agent=msg.strip(), started_at=r.ts,
                                      attributes={"type": "speaker_selection"}))
                continue
            if sender in managers and receiver not in managers:
                continue  # group-chat rebroadcast of a message already seen by the manager
            names.add(sender)
            names.add(receiver)
            status = None if state.get("valid", True) else "invalid"
            new = _message_steps(sender, receiver, msg, r.ts, status)
            if task is None:
                task = next((s.content for s in new if s.kind is StepKind.MESSAGE and s.content), None)
                if new and task is not None:
                    new[0].role = "user"
            steps.extend(new)
        elif ev == "reply_func_executed":
            fn = state.get("reply_func_name")
            if state.get("final") and ((fn == "check_termination_and_human_reply" and state.get("reply") is None)
                                       or fn == "run_chat"):
                steps.append(Step(agent=receiver, content=f"{fn}: conversation ended", kind=StepKind.TERMINATION,
                                  started_at=r.ts, attributes={"reply_func": fn}))
        else:
            steps.append(Step(agent=receiver, content=as_text(state), kind=StepKind.EVENT, started_at=r.ts,
                              attributes={"type": ev}))
    _match_functions(steps, funcs)
    # A group chat logs run_chat's end once per nesting level; keep the last termination
    # of a run of consecutive ones.
    steps = [s for i, s in enumerate(steps) if not (s.kind is StepKind.TERMINATION and i + 1 < len(steps)
                                                    and steps[i + 1].kind is StepKind.TERMINATION)]
    steps = collapse_transfer_handoffs(steps, names)
    return steps, task


def _message_steps(sender: str, receiver: str, msg: Any, ts: str | None, status: str | None) -> list[Step]:
    if isinstance(msg, str) or msg is None:
        return [Step(agent=sender, content=msg, kind=StepKind.MESSAGE, role="assistant", target_agent=receiver,
                     started_at=ts, status=status)]
    if not isinstance(msg, dict):
        return [Step(agent=sender, content=as_text(msg), kind=StepKind.MESSAGE, role="assistant",
                     target_agent=receiver, started_at=ts, status=status)]
    out: list[Step] = []
    calls = msg.get("tool_calls") or []
    responses = msg.get("tool_responses") or []
    text = not_none_text(msg.get("content"))
    if responses:
        for tr in responses:
            out.append(Step(agent=sender, content=as_text(tr.get("content")), kind=StepKind.TOOL_RESULT, role="tool",
                            parent_span_id=tr.get("tool_call_id"), target_agent=receiver, started_at=ts,
                            status=status or ag2_tool_status(tr.get("content"))))
        return out
    if msg.get("role") == "tool" or msg.get("role") == "function":
        return [Step(agent=sender, content=text, kind=StepKind.TOOL_RESULT, role="tool",
                     tool_name=msg.get("name"), target_agent=receiver, started_at=ts,
                     status=status or ag2_tool_status(text))]
    if text or not (calls or msg.get("function_call")):
        out.append(Step(agent=sender, content=text, kind=StepKind.MESSAGE, role="assistant", target_agent=receiver,
                        started_at=ts, status=status))
    for c in calls:
        fn = c.get("function") or {}
        out.append(Step(agent=sender, content=None, kind=StepKind.TOOL_CALL, role="assistant",
                        tool_name=fn.get("name"), tool_args=as_text(fn.get("arguments")), span_id=c.get("id"),
                        target_agent=receiver, started_at=ts, status=status))
    fc = msg.get("function_call")
    if isinstance(fc, dict):
        out.append(Step(agent=sender, content=None, kind=StepKind.TOOL_CALL, role="assistant",
                        tool_name=fc.get("name"), tool_args=as_text(fc.get("arguments")), target_agent=receiver,
                        started_at=ts, status=status))
    return out


def _norm_args(v: Any) -> str:
    v = json_or_text(v)
    return json.dumps(v, sort_keys=True, default=str)


def _match_functions(steps: list[Step], funcs: list[_Rec]) -> None:
    """Attach each logged function execution to its tool result (no ids are logged)."""
    calls = {s.span_id: s for s in steps if s.kind is StepKind.TOOL_CALL and s.span_id}
    results = [s for s in steps if s.kind is StepKind.TOOL_RESULT]
    used: set[int] = set()
    for f in funcs:
        d = f.data
        fname, fargs = d.get("function_name"), _norm_args(d.get("args"))
        match = None
        for exact in (True, False):
            for s in results:
                if id(s) in used:
                    continue
                call = calls.get(s.parent_span_id)
                cname = call.tool_name if call else s.tool_name
                if fname and cname != fname and not (
                        fname == "transfer_to_target" and (cname or "").startswith("transfer_to_")):
                    # AG2 patterns log every handoff tool as its inner transfer_to_target.
                    continue
                if exact and (call is None or _norm_args(call.tool_args) != fargs):
                    continue
                match = s
                break
            if match:
                break
        if match is not None:
            used.add(id(match))
            # logged only when the function returned: a result text that merely looks
            # like AG2's failure answer ("Error: ...") is the function's own return value
            if match.status == "error":
                match.status = "ok"
            attrs = dict(match.attributes or {})
            attrs["executed_by"] = d["source_name"]
            attrs["executed_at"] = f.ts
            match.attributes = attrs
            if match.tool_name is None:
                match.tool_name = calls[match.parent_span_id].tool_name if match.parent_span_id in calls else fname
        else:
            steps.append(Step(agent=d["source_name"], content=as_text(d.get("returns")), kind=StepKind.TOOL_RESULT,
                              role="tool", tool_name=fname, tool_args=as_text(d.get("args")), started_at=f.ts,
                              status="ok", attributes={"type": "function_call", "unmatched": True}))
    for s in results:
        if s.tool_name is None and s.parent_span_id in calls:
            s.tool_name = calls[s.parent_span_id].tool_name


def _roster(agents: list[_Agent]) -> list[dict]:
    out = []
    seen = set()
    for a in agents:
        if (a.name, a.cls) in seen:
            continue
        seen.add((a.name, a.cls))
        entry: dict[str, Any] = {"name": a.name, "class": a.cls}
        ia = a.init_args if isinstance(a.init_args, dict) else {}
        for k in ("system_message", "description", "llm_config", "human_input_mode"):
            if ia.get(k) not in (None, "", False):
                entry[k] = ia[k]
        out.append(entry)
    return out


class _RuntimeBase:
    framework = FRAMEWORK

    def _traces(self, path: Path, sessions: list[_Session], artefact: str) -> Iterator[Trace]:
        if not sessions:
            raise IngestError(str(path), None, "the runtime log holds no logged conversation")
        for i, sess in enumerate(sessions):
            steps, task = build_steps(path, sess)
            meta: dict[str, Any] = {"artefact": artefact, "agents": _roster(sess.agents)}
            if sess.sid:
                meta["session_id"] = sess.sid
                meta["source_id"] = sess.sid
            if sess.skipped:
                meta["skipped_lines"] = sess.skipped
            yield Trace(system=None, framework=FRAMEWORK, source_format=self.name, source_path=str(path),
                        source_index=i, steps=steps, task=task, metadata=meta)


class AG2RuntimeDbImporter(_RuntimeBase):
    name = "ag2-runtime-db"
    description = "AG2 / AutoGen 0.2 runtime_logging SQLite database (chat_completions, events, ...)"
    example = 'SQLite format 3\\x00 … tables chat_completions, agents, events, function_calls'

    def detect(self, path: Path, head: bytes) -> bool:
        tables = sqlite_probe(path, head, lambda con: {r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}) or set()
        return "chat_completions" in tables and ("events" in tables or "agents" in tables)

    def read(self, path: Path) -> Iterator[Trace]:
        yield from self._traces(path, read_sqlite(path), "runtime_logging sqlite")


class AG2RuntimeLogImporter(_RuntimeBase):
    name = "ag2-runtime-log"
    description = "AG2 / AutoGen 0.2 runtime_logging file log (JSON lines + 'Started new session' lines)"
    example = 'Started new session with Session ID: 551e661c-…\\n{"id": 1404…, "agent_name": "user_proxy", "session_id": …'

    def detect(self, path: Path, head: bytes) -> bool:
        text = strip_bom(head).decode("utf-8", "replace")
        rows = text.split("\n")
        if rows and _SESSION_RX.match(rows[0].strip()):
            return True
        for ln in rows[:50]:
            ln = ln.strip()
            if not ln.startswith("{"):
                if ln.startswith("[file_logger]"):
                    return True
                continue
            try:
                rec = json.loads(ln)
            except ValueError:
                return False
            if not isinstance(rec, dict):
                return False
            keys = set(rec)
            return bool({"invocation_id", "request", "response", "source_name"} <= keys
                        or {"event_name", "json_state", "source_name"} <= keys
                        or {"agent_name", "agent_type", "session_id"} <= keys
                        or {"input_args", "returns", "source_name"} <= keys)
        return False

    def read(self, path: Path) -> Iterator[Trace]:
        yield from self._traces(path, read_file_log(path), "runtime_logging file")
