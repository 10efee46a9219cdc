"""AutoGen core event log (``autogen_core.events`` / ``autogen_agentchat.events`` loggers).

A log file of JSON lines in any of three shapes (docs/formats/autogen.md, "autogen-events"), mixed freely:
- the bare record, as ``logging.FileHandler`` writes it: ``{"type": "LLMCall", ...}``;
- the same after a ``"<date> <time> <logger> <LEVEL> "`` prefix (asctime, taken as UTC);
- a JSON handler's envelope ``{"ts": <epoch>, "logger", "level", "event": <record>}``.
Lines that are not JSON objects (agentchat events logged as pydantic reprs, warnings
such as "tool_choice parameter specified but is ignored") are skipped and counted in
``metadata.skipped_lines``; a line that starts like a JSON object but does not parse is
an error (a truncated or corrupted record), naming the line.

Records used:
- ``LLMCall`` / ``LLMStreamEnd`` -> ``llm_call`` steps: the agent from ``agent_id``
  (``<name>_<team uuid>/<team uuid>``), tokens from ``prompt_tokens`` /
  ``completion_tokens``, the reply as content, the prompt in ``attributes.prompt``;
- ``Message`` envelopes published to the team's output topic carry the AgentChat messages
  (GroupChatStart's task messages, GroupChatMessage's message): they become steps exactly
  as in :class:`mast.ingest.autogen_common.MessageConverter` (tool call/result links, handoffs folded);
  the message's own ``models_usage`` is kept in attributes but not counted, because the
  LLMCall record already counts those tokens;
- a ``"Message could not be serialized"`` payload published to the output topic is the
  GroupChatTermination: a ``termination`` step (the reason itself is not in the log);
- an empty ``Message`` published by a team's manager to a participant's topic (its
  ``GroupChatRequestPublish``) right after a message of the manager's own (a
  MagenticOneGroupChat orchestrator's instruction) gives that message its recipient;
- ``ToolCall`` records (no call id) become tool call/result pairs only when the log has no
  ToolCallRequestEvent messages for the run; ``MessageHandlerException`` and
  ``MessageDropped`` become ``error`` steps.

One trace per team run, keyed by the team uuid inside agent ids and topics; records with
no team (a lone agent) form one trace together.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from mast.errors import IngestError
from mast.ingest._util import as_text, iso_utc, json_line, line_json, lines, strip_bom
from mast.ingest.autogen_common import FRAMEWORK, MessageConverter, is_agentchat_message
from mast.model import Step, StepKind, Trace

CORE_TYPES = {"LLMCall", "LLMStreamStart", "LLMStreamEnd", "ToolCall", "Message", "MessageDropped",
              "MessageHandlerException", "AgentConstructionException"}
_PREFIX_RX = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?)\s+(?P<logger>\S+)\s+"
                        r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+(?P<rest>.*)$", re.S)
_AGENT_RX = re.compile(r"^(?P<name>.*)_(?P<team>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
                       r"/(?P=team)$")
_TOPIC_RX = re.compile(r"^(?:output|group)_topic_(?P<team>[0-9a-f\-]{36})/")
_NOT_SERIALISED = "Message could not be serialized"


@dataclass
class _Line:
    lineno: int
    ts: str | None
    logger: str | None
    rec: Any


def parse_line(raw: bytes, lineno: int, path: Path, shared: bool = False) -> _Line | None:
    """One log line -> record, None for a non-JSON line; raise for a broken JSON record.

    ``shared``: decoded through :func:`~mast.ingest._util.line_json` (detection's first
    line, which other detectors decode too; the record is then read-only)."""
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if not text:
        return None
    ts = logger = None
    m = _PREFIX_RX.match(text)
    if m:
        ts, logger, text = iso_utc(m.group("ts")), m.group("logger"), m.group("rest").strip()
    if not text.startswith("{"):
        return None
    if shared:
        try:
            obj = line_json(text.encode("utf-8"))
        except (ValueError, RecursionError):
            obj = json_line(path, lineno, text)  # (raises the error that names the line)
    else:
        obj = json_line(path, lineno, text)
    if isinstance(obj, dict) and "event" in obj and ("ts" in obj or "logger" in obj) and "type" not in obj:
        ts = iso_utc(obj.get("ts")) or ts
        logger = obj.get("logger") or logger
        obj = obj["event"]
    return _Line(lineno, ts, logger, obj)


def is_core_record(obj: Any) -> bool:
    if not isinstance(obj, dict) or obj.get("type") not in CORE_TYPES:
        return False
    t = obj["type"]
    if t == "Message":
        return "payload" in obj and "delivery_stage" in obj
    if t in ("LLMCall", "LLMStreamEnd"):
        return "prompt_tokens" in obj or "response" in obj
    if t == "ToolCall":
        return "tool_name" in obj
    return True


def _team_of(*ids: Any) -> str | None:
    for v in ids:
        if not isinstance(v, str):
            continue
        m = _AGENT_RX.match(v) or _TOPIC_RX.match(v)
        if m:
            return m.group("team")
    return None


def agent_name(agent_id: Any) -> str | None:
    if not isinstance(agent_id, str):
        return None
    m = _AGENT_RX.match(agent_id)
    if m:
        return m.group("name")
    return agent_id.split("/", 1)[0] or agent_id


@dataclass
class _Run:
    team: str | None
    lines: list[_Line] = field(default_factory=list)
    terminated: bool = False


class AutoGenEventsImporter:
    name = "autogen-events"
    description = "AutoGen core event log (autogen_core.events JSON lines: LLMCall, Message, ToolCall)"
    example = '{"ts": 1795965320.76, "logger": "autogen_core.events", "level": "INFO", "py_type": "MessageEvent", "event": {…'

    def detect(self, path: Path, head: bytes) -> bool:
        rows = strip_bom(head).split(b"\n")
        if len(head) >= 64 * 1024 and len(rows) > 1:
            rows = rows[:-1]  # the last line of a full head may be cut
        for i, raw in enumerate(rows[:200], 1):
            try:
                ln = parse_line(raw, i, path, shared=i == 1)
            except IngestError:
                return False
            if ln is None:
                continue
            if is_core_record(ln.rec):
                return True
            if isinstance(ln.rec, dict) and (ln.logger or "").startswith("autogen_"):
                continue
            return False  # the first JSON record is something else
        return False

    def read(self, path: Path) -> Iterator[Trace]:
        runs: list[_Run] = []
        open_runs: dict[str | None, _Run] = {}
        skipped = 0
        n_records = 0
        for lineno, raw in lines(path):
            ln = parse_line(raw, lineno, path)
            if ln is None:
                if raw.strip():
                    skipped += 1
                continue
            rec = ln.rec
            if not isinstance(rec, dict):
                skipped += 1
                continue
            if not is_core_record(rec) and not is_agentchat_message(rec):
                if rec.get("type") in CORE_TYPES:
                    raise IngestError(str(path), f"line {lineno}",
                                      f"{rec['type']} record lacks its required fields")
                skipped += 1
                continue
            n_records += 1
            team = _team_of(rec.get("agent_id"), rec.get("sender"), rec.get("receiver"))
            if team is None and runs and (rec.get("type") == "Message" or is_agentchat_message(rec)):
                # Envelopes with no team in them and agentchat-logger records (which
                # carry no agent id) belong to the run being logged.
                team = runs[-1].team
            run = open_runs.get(team)
            if run is None or (run.terminated and _is_group_chat_start(rec)):
                run = _Run(team)
                runs.append(run)
                open_runs[team] = run
            run.lines.append(ln)
            if _is_termination(rec):
                run.terminated = True
        if n_records == 0:
            raise IngestError(str(path), None, "no AutoGen event records found (only non-JSON lines)")
        for i, run in enumerate(runs):
            yield self._trace(path, i, run, skipped)

    def _trace(self, path: Path, index: int, run: _Run, skipped: int) -> Trace:
        has_llm = any(ln.rec.get("type") in ("LLMCall", "LLMStreamEnd") for ln in run.lines)
        has_envelopes = any(_output_messages(ln.rec) is not None for ln in run.lines)
        conv = MessageConverter(path, keep_usage=not has_llm)
        has_tool_msgs = False
        tool_calls: list[_Line] = []
        for ln in run.lines:
            rec = ln.rec
            where = f"line {ln.lineno}"
            t = rec.get("type")
            msgs = _output_messages(rec)
            if msgs is not None:
                for m in msgs:
                    has_tool_msgs |= isinstance(m, dict) and m.get("type") == "ToolCallRequestEvent"
                    conv.add(m, where, ln.ts)
            elif is_agentchat_message(rec):
                # agentchat logger records repeat what the envelopes carry; used only without them.
                if not has_envelopes:
                    has_tool_msgs |= t == "ToolCallRequestEvent"
                    conv.add(rec, where, ln.ts)
            elif t in ("LLMCall", "LLMStreamEnd"):
                conv.steps.append(_llm_step(rec, ln))
            elif t == "ToolCall":
                tool_calls.append(ln)
                conv.steps.append(Step(agent=agent_name(rec.get("agent_id")), content=None, kind=StepKind.TOOL_CALL,
                                       role="assistant", tool_name=rec.get("tool_name"),
                                       tool_args=as_text(rec.get("arguments")), span_id=f"line-{ln.lineno}",
                                       started_at=ln.ts, attributes={"type": "ToolCall", "no_call_id": True}))
                conv.steps.append(Step(agent=agent_name(rec.get("agent_id")), content=as_text(rec.get("result")),
                                       kind=StepKind.TOOL_RESULT, role="tool", tool_name=rec.get("tool_name"),
                                       parent_span_id=f"line-{ln.lineno}", started_at=ln.ts, status="ok",
                                       attributes={"type": "ToolCall"}))
            elif t in ("MessageHandlerException", "MessageDropped", "AgentConstructionException"):
                conv.steps.append(Step(agent=agent_name(rec.get("agent_id") or rec.get("receiver")),
                                       content=as_text(rec.get("exception") or rec.get("payload")),
                                       kind=StepKind.ERROR, started_at=ln.ts, status="error",
                                       attributes={"type": t}))
            elif (to := _request_to(rec)) is not None:
                # MagenticOneGroupChat: the orchestrator's instruction, then its request to the
                # speaker it chose (its ledger's next_speaker): the instruction's recipient
                last = next((s for s in reversed(conv.steps) if s.kind == StepKind.MESSAGE), None)
                if last is not None and last.target_agent is None and last.agent == agent_name(rec.get("sender")):
                    last.target_agent = to
            elif _is_termination(rec):
                conv.steps.append(Step(agent=agent_name(rec.get("sender")), content="GroupChatTermination",
                                       kind=StepKind.TERMINATION, started_at=ln.ts,
                                       attributes={"type": "GroupChatTermination",
                                                   "note": "the runtime does not serialise the stop reason"}))
        steps = conv.steps
        if has_tool_msgs and tool_calls:
            # ToolCall records repeat the ToolCallRequest/Execution messages (without ids).
            steps = [s for s in steps if not (s.attributes or {}).get("type") == "ToolCall"]
        meta: dict[str, Any] = {"artefact": "core event log", "lines": [run.lines[0].lineno, run.lines[-1].lineno]}
        if run.team:
            meta["team_id"] = run.team
            meta["source_id"] = [run.team, run.lines[0].lineno]
        mgr = next((agent_name(ln.rec.get("sender")) for ln in run.lines
                    if ln.rec.get("type") == "Message" and (agent_name(ln.rec.get("sender")) or "").endswith("GroupChatManager")), None)
        if mgr:
            meta["team_manager"] = mgr
        if skipped:
            meta["skipped_lines"] = skipped
        if not run.terminated:
            meta["incomplete"] = True
        return Trace(system=None, framework=FRAMEWORK, source_format=self.name, source_path=str(path),
                     source_index=index, steps=steps, task=conv.task, metadata=meta)


def _payload(rec: dict) -> Any:
    p = rec.get("payload")
    if isinstance(p, str) and p.startswith("{"):
        try:
            return json.loads(p)
        except ValueError:
            return None
    return p


def _request_to(rec: dict) -> str | None:
    """The participant a group chat manager asks to speak (an empty ``GroupChatRequestPublish``
    published to that participant's topic, ``<name>_<team uuid>/<team uuid>``), else None."""
    if not (rec.get("type") == "Message" and str(rec.get("kind", "")).endswith("PUBLISH")
            and str(rec.get("delivery_stage", "")).endswith("SEND") and rec.get("payload") == "{}"):
        return None
    to = str(rec.get("receiver") or "")
    if not to or to.startswith(("output_topic_", "group_topic_")):
        return None
    return agent_name(to)


def _to_output_topic(rec: dict) -> bool:
    return (rec.get("type") == "Message" and str(rec.get("kind", "")).endswith("PUBLISH")
            and str(rec.get("delivery_stage", "")).endswith("SEND")
            and str(rec.get("receiver") or "").startswith("output_topic_"))


def _output_messages(rec: dict) -> list | None:
    """AgentChat messages a runtime envelope publishes to the output topic, else None."""
    if not _to_output_topic(rec):
        return None
    p = _payload(rec)
    if isinstance(p, dict):
        if isinstance(p.get("messages"), list):
            return p["messages"]
        if isinstance(p.get("message"), dict):
            return [p["message"]]
    return None


def _is_termination(rec: dict) -> bool:
    return _to_output_topic(rec) and rec.get("payload") == _NOT_SERIALISED


def _is_group_chat_start(rec: dict) -> bool:
    if not _to_output_topic(rec):
        return False
    p = _payload(rec)
    return isinstance(p, dict) and "messages" in p


def _llm_step(rec: dict, ln: _Line) -> Step:
    resp = rec.get("response") if isinstance(rec.get("response"), dict) else {}
    content = None
    choices = resp.get("choices") or []
    if choices and isinstance(choices[0], dict):
        msg = choices[0].get("message") or {}
        content = msg.get("content")
        if not content and msg.get("tool_calls"):
            content = as_text(msg["tool_calls"])
    elif "content" in resp:
        content = as_text(resp.get("content"))
    attrs: dict[str, Any] = {"type": rec.get("type")}
    if resp.get("model"):
        attrs["model"] = resp["model"]
    if rec.get("messages") is not None:
        attrs["prompt"] = rec["messages"]
    if rec.get("tools"):
        attrs["tools"] = [((t.get("function") or {}).get("name") if isinstance(t, dict) else t) for t in rec["tools"]]
    if choices and isinstance(choices[0], dict) and choices[0].get("finish_reason"):
        attrs["finish_reason"] = choices[0]["finish_reason"]
    return Step(agent=agent_name(rec.get("agent_id")), content=as_text(content), kind=StepKind.LLM_CALL,
                role="assistant", started_at=ln.ts, tokens_in=rec.get("prompt_tokens"),
                tokens_out=rec.get("completion_tokens"), span_id=resp.get("id"), attributes=attrs)
